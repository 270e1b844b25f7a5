"""Runs inside a private mount namespace (as root) for tests/owner_page/test_page_boundary.py:
real users and groups (in a scratch copy of /etc), a site running as the service user
`rtcc-edge`, and the owner's page (`rtcc-edge owner serve`) run twice: as the service user
(which must not be able to act as the owner through it) and as `rtcc-edge-page`, the page's
own user in the rtcc-edge and rtcc-edge-owner groups (which may). Each page is driven over
HTTP as a browser would; what each answered, and the ledger, go to `<work>/result.json`.

    unshare --mount --propagation private PYTHON -m tests.owner_page.page_boundary_driver WORK
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

from agent.ledger import read_entries
from tests.control.owner_boundary_driver import PYTHON, REPO, as_user, isolate, sh, wait_for_socket
from tests.support.broker import free_port
from tests.support.owner_page import CSRF_FIELD, OWNER_PASSWORD, owner_jar

ALERT = re.compile(r'role="alert">(.*?)</p>', re.S)
ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": "/tmp"}


def users() -> None:
    sh("groupadd", "--system", "rtcc-edge")
    sh("useradd", "--system", "-g", "rtcc-edge", "-M", "-d", "/nonexistent", "rtcc-edge")
    sh("groupadd", "--system", "rtcc-edge-owner")
    sh("useradd", "--system", "-g", "rtcc-edge", "-G", "rtcc-edge-owner", "-M",
       "-d", "/nonexistent", "rtcc-edge-page")  # fmt: skip


def setpriv(user: str, *command: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        # Both users' primary group is rtcc-edge (as the installer makes them).
        ["setpriv", f"--reuid={user}", "--regid=rtcc-edge", "--init-groups", *command],
        env=ENV,
        cwd="/",
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def page_config(site_config: Path, name: str, port: int) -> Path:
    path = site_config.with_name(f"{name}.toml")
    page = f'\n[owner_page]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    path.write_text(site_config.read_text() + page)
    path.chmod(0o644)
    return path


def alert(text: str) -> str:
    found = ALERT.search(text)
    return html.unescape(" ".join(found.group(1).split())) if found else ""


async def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the page exited with {process.returncode}")
            try:
                async with http.get(url + "/login") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the page never answered")
            await asyncio.sleep(0.2)


async def csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        match = CSRF_FIELD.search(await response.text())
    assert match is not None, url
    return match.group(1)


async def drive(url: str, request_id: str) -> dict[str, Any]:
    """Sign in, approve `request_id`, pause for an hour, open Activity and Cameras."""
    answers: dict[str, Any] = {}
    async with aiohttp.ClientSession(cookie_jar=owner_jar()) as http:
        token = await csrf(http, url + "/login")
        async with http.post(
            url + "/login",
            data={"csrf": token, "password": OWNER_PASSWORD},
            headers={"Origin": url},
            allow_redirects=False,
        ) as response:
            answers["sign_in"] = response.status
        token = await csrf(http, url + "/requests")
        for name, path, form in (
            ("approve", f"/requests/{request_id}/approve", {}),
            ("pause", "/pause", {"duration": "1h"}),
        ):
            async with http.post(
                url + path, data={"csrf": token, **form}, headers={"Origin": url}
            ) as response:
                text = await response.text()
                answers[name] = {
                    "status": response.status,
                    "alert": alert(text),
                    "done": "Approved:" in text or "Sharing is paused until" in text,
                    "traceback": "Traceback" in text,
                }
        for name, path in (("activity", "/activity"), ("cameras", "/cameras")):
            async with http.get(url + path) as response:
                text = await response.text()
                answers[name] = {
                    "status": response.status,
                    "alert": alert(text),
                    "intact": "The record of every request is intact" in text,
                    "no_footage_shown": "this page may not show footage" in text,
                }
    return answers


def main(work: Path) -> None:
    isolate(work)
    users()
    site_dir = work / "site"
    config = site_dir / "agent.toml"
    state = site_dir / "state"
    owner_dir = site_dir / "owner"
    run_dir = site_dir / "run"
    # The installer's layout: state and run directories the service owns, the owner directory
    # root:rtcc-edge-owner 2775 (the service user is "other": read only). The state directory
    # is the service's alone here: the page needs nothing from it, all comes over the socket.
    for path, mode in ((state, 0o700), (run_dir, 0o750)):
        shutil.chown(path, "rtcc-edge", "rtcc-edge")
        path.chmod(mode)
        for child in path.rglob("*"):
            shutil.chown(child, "rtcc-edge", "rtcc-edge")
    owner_dir.mkdir()
    shutil.chown(owner_dir, "root", "rtcc-edge-owner")
    owner_dir.chmod(0o2775)
    subprocess.run(
        [PYTHON, "-m", "agent", "--config", str(config), "owner", "passwd", "--stdin"],
        input=OWNER_PASSWORD + "\n", text=True, check=True, capture_output=True, env=ENV,
    )  # fmt: skip
    # So that the page run as the service user gets as far as signing in (the installer keeps
    # the hash from it): the boundary must hold further in, where the owner acts.
    (owner_dir / "page-password").chmod(0o644)
    pending_file = state / "pending.json"
    logs = {name: (work / f"{name}.log").open("wb") for name in ("site", "service", "page")}
    site = setpriv(
        "rtcc-edge", PYTHON, "-m", "tests.owner_page.page_site", str(config), str(pending_file),
        log=logs["site"],
    )  # fmt: skip
    pages: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {}
    try:
        wait_for_socket(run_dir / "control.sock", site)
        while not pending_file.exists():
            time.sleep(0.1)
        first, second = json.loads(pending_file.read_text())
        result["pending"] = [first, second]
        for name, user in (("service", "rtcc-edge"), ("page", "rtcc-edge-page")):
            port = free_port("127.0.0.1")
            url = f"http://127.0.0.1:{port}"
            serve = (PYTHON, "-m", "agent", "owner", "serve")
            process = setpriv(
                user, *serve, "--config", str(page_config(config, name, port)), log=logs[name]
            )
            pages.append(process)
            asyncio.run(wait_up(url, process))
            result[name] = asyncio.run(drive(url, first))
            result[f"{name}_ledger"] = [
                {"kind": entry.kind, "by": entry.data.get("by")}
                for entry in read_entries(state / "ledger")
            ]
        result["page_uid"] = int(as_user(None, "id", "-u", "rtcc-edge-page")["out"])
    finally:
        for process in [*pages, site]:
            process.terminate()
            process.wait(timeout=30)
        for name, log in logs.items():
            log.close()
            result[f"{name}_log"] = (work / f"{name}.log").read_text(errors="replace")[-4000:]
        (work / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
