"""SIGHUP (what `systemctl reload` sends) applies a changed configuration to a running
`rtcc-edge run` (issue 15): the recorder of a camera that did not change keeps its worker and
records without a gap (from the footage's SEI capture times), a changed camera restarts, a
removed one stops, an added one starts; a configuration that is not valid is refused with a
sentence in the log and the one in use stays; SIGHUP never ends the daemon."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from agent.config import StoreConfig
from agent.recorder import RecorderStatus
from agent.store import ClipStore
from camsim.persona import StreamName
from camsim.sei import stamps_in_file
from tests.daemon.conftest import Daemon, low_res_camera
from tests.support.camsim import CameraHandle, CamsimRun
from tests.support.ffprobe import ffprobe

HEAD = """state_dir = "{state}"
[site]
id = "site-1"
name = "Test site"
[store]
segment_seconds = 10
min_free = 0
[log]
level = "info"
format = "console"
[control]
socket = "{socket}"
"""


def _camera(camera_id: str, name: str, cam: CameraHandle, stream: StreamName) -> str:
    return (
        f'\n[[cameras]]\nid = "{camera_id}"\nname = "{name}"\n'
        f'rtsp_url = "{cam.rtsp_url(stream)}"\n'
        f'username = "{cam.username}"\nsecret = "{cam.password}"\n'
    )


def _wait_for(daemon: Daemon, words: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while words not in daemon.log():
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log()
        assert time.monotonic() < deadline, f"no {words!r} in the log\n{daemon.log()}"
        time.sleep(0.1)


def _wait_recording(daemon: Daemon, camera: str, timeout: float = 60) -> None:
    """Like `Daemon.wait_recording`, for a camera the state file may not list yet."""
    deadline = time.monotonic() + timeout
    while True:
        state = daemon.state()
        current = state.cameras.get(camera) if state is not None else None
        if current is not None and current.status is RecorderStatus.RECORDING:
            return
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log()
        assert time.monotonic() < deadline, f"{camera} not recording\n{daemon.log()}"
        time.sleep(0.1)


def _pid(daemon: Daemon, camera: str) -> int | None:
    state = daemon.state()
    assert state is not None
    return state.cameras[camera].pid


def test_sighup_applies_changes_and_unchanged_cameras_record_without_a_gap(
    run_camsim: Callable[..., CamsimRun], daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    a, b = run_camsim(low_res_camera(id="a"), low_res_camera(id="b"))
    path = tmp_path / "agent.toml"
    head = HEAD.format(state=tmp_path / "state", socket=tmp_path / "control.sock")
    path.write_text(
        head
        + _camera("cam1", "Door", a, "main")
        + _camera("cam2", "Yard", b, "main")
        + _camera("cam3", "Till", b, "sub")
    )
    daemon = daemons(path)
    for camera in ("cam1", "cam2", "cam3"):
        daemon.wait_recording(camera)
    started = time.time()
    time.sleep(2)
    workers = {camera: _pid(daemon, camera) for camera in ("cam1", "cam2", "cam3")}

    # A configuration that does not load: refused, said in a sentence, nothing changes.
    good = path.read_text()
    path.write_text(good + '\n[[cameras]]\nid = "Bad Id!"\n')
    daemon.signal(signal.SIGHUP)
    _wait_for(daemon, "config_reload_refused")
    assert "the one in use stays" in daemon.log()
    assert {c: _pid(daemon, c) for c in workers} == workers

    # cam1 renamed only (kept), cam2 to another stream (restarted), cam3 gone, cam4 new.
    path.write_text(
        head + _camera("cam1", "Front door", a, "main") + _camera("cam2", "Yard", b, "sub")
    )
    path.write_text(path.read_text() + _camera("cam4", "Aisle", a, "sub"))
    daemon.signal(signal.SIGHUP)
    _wait_for(daemon, "config_reloaded")
    _wait_recording(daemon, "cam4")
    _wait_recording(daemon, "cam2")
    state = daemon.state()
    assert state is not None
    assert "cam3" not in state.cameras
    assert state.cameras["cam1"].pid == workers["cam1"]  # the same worker, never restarted
    assert state.cameras["cam2"].pid not in (None, workers["cam2"])
    time.sleep(3)
    ended = time.time()
    assert daemon.process is not None and daemon.process.poll() is None  # SIGHUP never ends it
    daemon.stop()
    assert daemon.process.returncode == 0, daemon.log()
    assert state.cameras["cam1"].status is RecorderStatus.RECORDING

    with ClipStore(tmp_path / "state" / "store", config=StoreConfig(min_free=0)) as store:
        assert store.verify("cam1").ok
        clip = tmp_path / "cam1-across-the-reloads.mp4"
        result = store.extract(
            "cam1", datetime.fromtimestamp(started, UTC), datetime.fromtimestamp(ended, UTC), clip
        )
    ffprobe(clip)
    assert not result.gaps
    times = [s.capture_time for s in stamps_in_file(str(clip))]
    steps = [later - earlier for earlier, later in itertools.pairwise(times)]
    print(f"cam1 across two reloads: {len(times)} frames, largest step {max(steps):.3f} s")
    assert times[0] <= started + 1 and times[-1] >= ended - 2
    assert max(steps) < 0.5  # 15 fps: one frame is 0.067 s; a restart loses seconds
