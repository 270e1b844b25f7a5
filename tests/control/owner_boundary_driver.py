"""Runs inside a private mount namespace (as root) for tests/control/test_owner_boundary.py:
real users and groups (in a scratch copy of /etc), a site running as the service user, and the
owner CLI run as the service user, as an owner-group member and as root. Writes what each
command answered to `<work>/result.json`.

    unshare --mount --propagation private PYTHON -m tests.control.owner_boundary_driver WORK
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def isolate(work: Path) -> None:
    """Scratch /etc (users and groups stay here), and an interpreter other users can reach
    (it lives under /root, which is 0700)."""
    sh("cp", "-a", "/etc", str(work / "etc"))
    sh("mount", "--bind", str(work / "etc"), "/etc")
    real = Path(os.path.realpath(PYTHON))
    top = Path("/", *real.parts[1:3])  # e.g. /root/.pyenv
    if top.parent == Path("/root"):
        keep = work / "interpreter"
        keep.mkdir()
        sh("mount", "--bind", str(top), str(keep))
        sh("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/root")
        top.mkdir()
        sh("mount", "--bind", str(keep), str(top))


def users() -> None:
    sh("groupadd", "--system", "rtcc-edge")
    sh("useradd", "--system", "-g", "rtcc-edge", "-M", "-d", "/nonexistent", "rtcc-edge")
    sh("groupadd", "--system", "rtcc-edge-owner")
    sh("useradd", "-M", "-G", "rtcc-edge,rtcc-edge-owner", "alice")  # the shop's owner
    sh("useradd", "-M", "-G", "rtcc-edge", "bob")  # reads footage, is not the owner


def as_user(user: str | None, *command: str) -> dict[str, Any]:
    prefix = (
        [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": "/tmp", "COLUMNS": "200"}
    done = subprocess.run(
        [*prefix, *command], capture_output=True, text=True, timeout=120, env=env, cwd="/"
    )
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr}


def cli(user: str | None, config: Path, *args: str) -> dict[str, Any]:
    return as_user(user, PYTHON, "-m", "agent", "--config", str(config), *args)


RAW = (
    "import json, socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.connect(sys.argv[1])\n"
    "s.sendall(sys.argv[2].encode() + b'\\n')\n"
    "print(s.makefile().readline())\n"
)


def raw(user: str, path: Path, request: dict[str, Any]) -> dict[str, Any]:
    done = as_user(user, PYTHON, "-c", RAW, str(path), json.dumps(request))
    return json.loads(done["out"]) if done["code"] == 0 else done


def wait_for_socket(path: Path, site: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if site.poll() is not None:
            raise RuntimeError(f"the site exited with {site.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(path))
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the site's control socket never appeared")


def main(work: Path) -> None:
    isolate(work)
    users()
    site_dir = work / "site"
    config = site_dir / "agent.toml"
    state = site_dir / "state"
    owner_dir = site_dir / "owner"
    run_dir = site_dir / "run"
    # What the installer sets up: state and run directories the service owns, the owner
    # directory root:rtcc-edge-owner 2775 (the service user is "other": read only).
    for path in (state, run_dir):
        shutil.chown(path, "rtcc-edge", "rtcc-edge")
        for child in path.rglob("*"):
            shutil.chown(child, "rtcc-edge", "rtcc-edge")
    owner_dir.mkdir()
    shutil.chown(owner_dir, "root", "rtcc-edge-owner")
    owner_dir.chmod(0o2775)
    pending_file = state / "pending.json"
    site = subprocess.Popen(
        ["setpriv", "--reuid=rtcc-edge", "--regid=rtcc-edge", "--init-groups",
         PYTHON, "-m", "tests.control.owner_site", str(config), str(pending_file)],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": "/tmp"},
        cwd="/",
        stdout=open(work / "site.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    result: dict[str, Any] = {}
    try:
        socket_path = run_dir / "control.sock"
        wait_for_socket(socket_path, site)
        while not pending_file.exists():
            time.sleep(0.1)
        first, second = json.loads(pending_file.read_text())
        result["pending"] = [first, second]
        service = "rtcc-edge"
        result["service"] = {
            "status": cli(service, config, "status", "--json"),
            "requests": cli(service, config, "requests", "--json"),
            "pause": cli(service, config, "pause"),
            "sharing_set": cli(service, config, "sharing", "set", "side-door", "private"),
            "approve": cli(service, config, "approve", first[:8]),
            "deny": cli(service, config, "deny", first[:8]),
            "live_stop": cli(service, config, "live", "stop", first[:8]),
            "raw_pause": raw(service, socket_path, {"v": 1, "cmd": "pause", "args": {}}),
            "raw_approve": raw(
                service, socket_path, {"v": 1, "cmd": "approve", "args": {"id": first}}
            ),
            "raw_sharing_set": raw(
                service,
                socket_path,
                {"v": 1, "cmd": "sharing_set", "args": {"camera": "side-door", "mode": "private"}},
            ),
            "write_owner_dir": as_user(service, "touch", str(owner_dir / "owner-policy.json")),
        }  # fmt: skip
        result["bob"] = {
            "status": cli("bob", config, "status", "--json"),
            "raw_resume": raw("bob", socket_path, {"v": 1, "cmd": "resume", "args": {}}),
        }
        result["after_refusals"] = cli(None, config, "status", "--json")
        result["owner"] = {
            "pause": cli("alice", config, "pause", "--for", "2h"),
            "status": cli("alice", config, "status", "--json"),
            "resume": cli("alice", config, "resume"),
            "sharing_set": cli("alice", config, "sharing", "set", "side-door", "private"),
            "approve": cli("alice", config, "approve", first[:8]),
        }
        result["root"] = {
            "deny": cli(None, config, "deny", second[:8], "--reason", "not this one"),
            "sharing_set": cli(None, config, "sharing", "set", "side-door", "integrated"),
        }
        result["final"] = cli(None, config, "status", "--json")
        owner_file = owner_dir / "owner-policy.json"
        info = owner_file.stat()
        result["owner_file"] = {
            "mode": info.st_mode & 0o7777,
            "uid": info.st_uid,
            "content": json.loads(owner_file.read_text()),
            "alice_uid": int(as_user(None, "id", "-u", "alice")["out"]),
        }
        result["requests"] = cli(None, config, "requests", "--all", "--json")
    finally:
        site.terminate()
        site.wait(timeout=30)
        result["site_log"] = (work / "site.log").read_text()[-4000:]
        (work / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
