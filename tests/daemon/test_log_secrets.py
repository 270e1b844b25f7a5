"""Issue 12 item 7: the daemon's log never holds a camera password, wherever the owner put it
(the `secret` setting, a URL's userinfo, `?user=…&password=…` in its query)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

from agent.recorder import RecorderStatus
from tests.daemon.conftest import Daemon, low_res_camera, write_config
from tests.support.camsim import CamsimRun

QUERY_PASSWORD = "Cheap&Cam-Pass 7"
USERINFO_PASSWORD = "Userinfo@Pass-31"


def _wait_failed(daemon: Daemon, camera: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = daemon.state()
        if state is not None and camera in state.cameras:
            status = state.cameras[camera]
            if status.status is not RecorderStatus.RECORDING and status.last_error:
                return status.last_error
        time.sleep(0.2)
    raise AssertionError(f"{camera} never failed\n{daemon.log()}")


def test_the_daemon_log_holds_no_camera_password(
    run_camsim: Callable[..., CamsimRun], daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    cams = run_camsim(low_res_camera())
    cam = cams[0]
    base = cam.rtsp_url("main")
    query = f"{base}?user=admin&password={quote(QUERY_PASSWORD, safe='')}"
    userinfo = base.replace("rtsp://", f"rtsp://admin:{quote(USERINFO_PASSWORD, safe='')}@")
    extra = (
        # The camera refuses both (404 for the query form, 401 for the wrong password), so the
        # recorders fail and their errors, which quote the URL, go to the log.
        f'[[cameras]]\nid = "cheap"\nname = "Cheap"\nrtsp_url = "{query}"\n'
        f'[[cameras]]\nid = "typed"\nname = "Typed"\nrtsp_url = "{userinfo}"\n'
    )
    config = write_config(tmp_path / "agent.toml", tmp_path / "state", [cam], extra=extra)
    config.write_text(config.read_text().replace('level = "info"', 'level = "debug"'))
    daemon = daemons(config)
    daemon.wait_recording("cam1")
    errors = [_wait_failed(daemon, "cheap"), _wait_failed(daemon, "typed")]
    daemon.stop()
    log = daemon.log_path.read_text(errors="replace")
    assert "recorder_started" in log and "cheap" in log  # the log did talk about them
    assert "password=[redacted]" in log
    state = (tmp_path / "state" / "recorders.json").read_text()
    for password in (QUERY_PASSWORD, USERINFO_PASSWORD, cam.password):
        for form in {password, quote(password, safe=""), quote_plus(password), quote(password)}:
            assert form not in log, form
            assert form not in state, form
            assert all(form not in error for error in errors)
