"""Runs inside a private mount namespace (as root) for tests/owner_page/test_camera_boundary.py:
real users (in a scratch copy of /etc), a real `rtcc-edge run` as the service user `rtcc-edge`
recording a camsim camera, and the owner's page (`rtcc-edge owner serve`) run as
`rtcc-edge-page` (in the rtcc-edge and rtcc-edge-owner groups), then as the service user.

The layout is the one that matters here: the secret key is in the state directory, the service
user's alone (0700), so the page's user cannot read it and must have camera passwords sealed by
the daemon; the configuration is in a directory of the owner group's (2775), the file
group-writable, so the owner's page may replace it and the service user may not. What each page
answered, the key's readability and the configuration afterwards go to `<work>/result.json`.

    unshare --mount --propagation private PYTHON -m tests.owner_page.camera_boundary_driver WORK
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from agent.config import load_config
from agent.secretbox import KEY_FILE, SecretBox
from tests.control.owner_boundary_driver import PYTHON, as_user, isolate, wait_for_socket
from tests.owner_page.page_boundary_driver import alert, csrf, setpriv, users, wait_up
from tests.support.broker import free_port
from tests.support.camsim import CameraHandle, camera, run_cameras
from tests.support.owner_page import OWNER_PASSWORD, owner_jar

LOW_RES = {"width": 320, "height": 240, "fps": 15, "gop": 15, "bitrate": 300_000}
CAMERA_PASSWORD = "Till-Pa55-after-the-visit"


def _config(site: Path, cam: CameraHandle, port: int) -> str:
    return (
        f'state_dir = "{site / "state"}"\n'
        '[site]\nid = "corner"\nname = "Corner Grocery"\n'
        "[store]\nsegment_seconds = 10\nmin_free = 0\n"
        f'[control]\nsocket = "{site / "run" / "control.sock"}"\n'
        f'owner_dir = "{site / "owner"}"\n'
        f'[owner_page]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
        "\n[[cameras]]\n"
        f'id = "door"\nname = "Front door"\nrtsp_url = "{cam.rtsp_url("main")}"\n'
        f'username = "{cam.username}"\nsecret = "the password before the visit"\n'
    )


async def drive(url: str, cam: CameraHandle) -> dict[str, Any]:
    """Sign in; give the door camera its new password; add its second stream as a camera."""
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
        token = await csrf(http, url + "/cameras/door/settings")
        for name, path, form in (
            ("password", "/cameras/door/password", {"password": CAMERA_PASSWORD}),
            (
                "add",
                "/cameras/add",
                {
                    "how": "rtsp",
                    "rtsp": cam.rtsp_url("sub"),
                    "username": cam.username,
                    "password": CAMERA_PASSWORD,
                    "name": "Till",
                },
            ),
        ):
            async with http.post(
                url + path, data={"csrf": token, **form}, headers={"Origin": url}
            ) as response:
                text = await response.text()
                done = (
                    text.split('role="status">', 1)[1].split("</p>", 1)[0]
                    if ('role="status">' in text)
                    else ""
                )
                answers[name] = {"status": response.status, "alert": alert(text), "done": done}
    return answers


def _recording(site: Path, camera_id: str, daemon: subprocess.Popen[bytes]) -> bool:
    from agent.recorder import RecorderStatus, read_state_file

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and daemon.poll() is None:
        state = read_state_file(site / "state" / "recorders.json")
        current = state.cameras.get(camera_id) if state is not None else None
        if current is not None and current.status is RecorderStatus.RECORDING:
            return True
        time.sleep(0.2)
    return False


def main(work: Path) -> None:
    isolate(work)
    users()
    site = work / "site"
    result: dict[str, Any] = {}
    with run_cameras(camera("generic", id="till", password=CAMERA_PASSWORD, main=LOW_RES)) as cams:
        cam = cams["till"]
        etc, state, run_dir, owner_dir = (site / n for n in ("etc", "state", "run", "owner"))
        for path in (etc, state, run_dir, owner_dir):
            path.mkdir(parents=True)
        # The service's own directories; the owner group's for the configuration and choices.
        for path, mode in ((state, 0o700), (run_dir, 0o750)):
            shutil.chown(path, "rtcc-edge", "rtcc-edge")
            path.chmod(mode)
        for path in (etc, owner_dir):
            shutil.chown(path, "root", "rtcc-edge-owner")
            path.chmod(0o2775)
        port = free_port("127.0.0.1")
        config = etc / "agent.toml"
        config.write_text(_config(site, cam, port))
        shutil.chown(config, "root", "rtcc-edge-owner")
        config.chmod(0o664)
        subprocess.run(
            [PYTHON, "-m", "agent", "--config", str(config), "owner", "passwd", "--stdin"],
            input=OWNER_PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        (owner_dir / "page-password").chmod(0o644)  # the service user gets as far as signing in
        logs = {n: (work / f"{n}.log").open("wb") for n in ("daemon", "page", "service")}
        daemon = setpriv(
            "rtcc-edge", PYTHON, "-m", "agent", "--config", str(config), "run",
            log=logs["daemon"],
        )  # fmt: skip
        processes = [daemon]
        try:
            wait_for_socket(run_dir / "control.sock", daemon)
            url = f"http://127.0.0.1:{port}"
            for name, user in (("service", "rtcc-edge"), ("page", "rtcc-edge-page")):
                page = setpriv(
                    user, PYTHON, "-m", "agent", "owner", "serve", "--config", str(config),
                    log=logs[name],
                )  # fmt: skip
                processes.append(page)
                asyncio.run(wait_up(url, page))
                before = config.read_text()
                result[name] = asyncio.run(drive(url, cam))
                result[f"{name}_changed_the_file"] = config.read_text() != before
                page.terminate()
                page.wait(timeout=30)
            loaded = load_config(config)
            box = SecretBox.load(state)
            result["secrets"] = {
                c.id: box.decrypt(c.secret.get_secret_value())
                for c in loaded.cameras
                if c.secret is not None and c.secret.get_secret_value().startswith("enc:v1:")
            }
            result["plain_in_file"] = CAMERA_PASSWORD in config.read_text()
            result["page_reads_key"] = as_user("rtcc-edge-page", "cat", str(state / KEY_FILE))[
                "code"
            ]
            result["recording"] = {c: _recording(site, c, daemon) for c in ("door", "till")}
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=60)
            for name, log in logs.items():
                log.close()
                result[f"{name}_log"] = (work / f"{name}.log").read_text(errors="replace")[-4000:]
            (work / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
