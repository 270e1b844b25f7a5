"""What the owner sees of each camera: `rtcc-edge status` and `rtcc-edge store status`, through
the real CLI, against a real daemon that records a camsim camera but is not enrolled."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.daemon.conftest import Daemon, low_res_camera, write_config
from tests.support.camsim import CamsimRun

ONVIF_ONLY = """
[[cameras]]
id = "lobby"
name = "Lobby (ONVIF only)"
onvif_url = "http://127.0.0.1:9/onvif/device_service"
"""


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=False,
    )


def status_json(config: Path, *args: str) -> dict[str, Any]:
    done = cli(config, *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def wait_for(
    read: Callable[[], dict[str, Any]], want: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        seen = read()
        if want(seen):
            return seen
        assert time.monotonic() < deadline, f"never {what}: {json.dumps(seen, indent=1)}"
        time.sleep(0.5)


def by_camera(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["camera"]: row for row in rows}


def test_owner_sees_each_cameras_state_without_enrolling(
    run_camsim: Callable[..., CamsimRun], daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    cams = run_camsim(low_res_camera())
    config = write_config(tmp_path / "agent.toml", tmp_path / "state", list(cams), extra=ONVIF_ONLY)
    daemon = daemons(config)
    daemon.wait_recording()

    # The daemon records but is not enrolled: it answers, and says so.
    status = wait_for(
        lambda: status_json(config, "status"),
        lambda s: by_camera(s["recorders"])["cam1"]["last_frame"] is not None,
        "a frame written",
    )
    assert status["enrolled"] is False
    assert status["link"]["state"] == "not_enrolled"
    rows = by_camera(status["recorders"])
    cam1, lobby = rows["cam1"], rows["lobby"]
    assert cam1["state"] == "recording" and cam1["since"] and cam1["last_error"] is None
    assert cam1["bar_days"] == 2.0 and cam1["meets_bar"] is False
    # A camera that does not answer is a camera fault, retried with the backoff (issue 11).
    assert lobby["state"] in ("reconnecting", "offline") and "rtsp_url" in lobby["last_error"]
    # The owner's page shows each camera's last check (none ran here) and the disk's room.
    assert status["checks"]["cam1"] == {"verdict": "unknown", "advice": [], "checked": None}
    disk = status["disk"]
    assert disk["readable"] is True and disk["free"] > 0 and isinstance(disk["filling"], bool)
    text = cli(config, "status")
    assert text.returncode == 0, text.stderr
    for words in ("not enrolled", "recording", "of 2 d", "rtsp_url"):
        assert words in text.stdout, text.stdout
    assert "reconnecting" in text.stdout or "offline" in text.stdout, text.stdout
    refused = cli(config, "requests")
    assert refused.returncode == 1 and "not enrolled" in refused.stderr, refused.stderr

    store = status_json(config, "store", "status")
    assert store["daemon"]["running"] is True
    assert store["daemon"]["link"]["state"] == "not_enrolled"
    cameras = by_camera(store["cameras"])
    assert cameras["cam1"]["state"] == "recording" and cameras["cam1"]["last_frame"]
    assert cameras["lobby"]["state"] in ("reconnecting", "offline")

    # The camera goes away: both commands say so, with the error, as it happens.
    cams[0].faults.unplug()
    lost = wait_for(
        lambda: status_json(config, "store", "status"),
        lambda s: by_camera(s["cameras"])["cam1"]["state"] in ("reconnecting", "offline"),
        "reconnecting after the unplug",
    )
    unplugged = by_camera(lost["cameras"])["cam1"]
    assert unplugged["last_error"], unplugged
    assert unplugged["since"] >= cam1["since"]
    assert by_camera(status_json(config, "status")["recorders"])["cam1"]["state"] in (
        "reconnecting",
        "offline",
    )
    cams[0].faults.replug()
    wait_for(
        lambda: status_json(config, "status"),
        lambda s: by_camera(s["recorders"])["cam1"]["state"] == "recording",
        "recording again after the replug",
    )

    daemon.stop()
    after = status_json(config, "store", "status")
    assert after["daemon"] == {"running": False, "pid": None, "link": None}
    stopped = by_camera(after["cameras"])["cam1"]
    assert stopped["state"] == "stopped" and "not running" in stopped["last_error"]
    assert stopped["footage_days"] > 0 and stopped["bar_days"] == 2.0
    text = cli(config, "store", "status")
    assert text.returncode == 0 and "not running" in text.stdout, text.stdout + text.stderr
    gone = cli(config, "status")
    assert gone.returncode == 2 and "not running" in gone.stderr
