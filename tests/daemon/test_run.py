"""`rtcc-edge run`: records, stops cleanly on SIGTERM/SIGINT, survives its own kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from agent.config import StoreConfig
from agent.recorder import RecorderStatus
from agent.store import ClipStore, SegmentState
from camsim.sei import stamps_in_file
from tests.daemon.conftest import Daemon, low_res_camera, write_config
from tests.support.camsim import CamsimRun
from tests.support.ffprobe import ffprobe

ONVIF_ONLY = """
[[cameras]]
id = "lobby"
name = "Lobby (ONVIF only)"
onvif_url = "http://127.0.0.1:9/onvif/device_service"
"""


def _store(tmp_path: Path) -> ClipStore:
    return ClipStore(tmp_path / "state" / "store", config=StoreConfig(min_free=0))


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_records_then_stops_cleanly(
    run_camsim: Callable[..., CamsimRun],
    daemons: Callable[..., Daemon],
    tmp_path: Path,
    stop_signal: int,
) -> None:
    cams = run_camsim(low_res_camera())
    config = write_config(tmp_path / "agent.toml", tmp_path / "state", list(cams), extra=ONVIF_ONLY)
    daemon = daemons(config)
    took = daemon.wait_recording()
    print(f"recording {took:.2f} s after `rtcc-edge run` started")
    time.sleep(3)
    state = daemon.state()
    assert state is not None
    lobby = state.cameras["lobby"]
    # It does not answer: a camera fault, retried with the backoff, not `failed` (issue 11).
    retrying = (RecorderStatus.RECONNECTING, RecorderStatus.OFFLINE)
    assert lobby.status in retrying and "rtsp_url" in (lobby.last_error or "")
    worker = state.cameras["cam1"].pid
    assert worker is not None
    daemon.signal(stop_signal)
    assert daemon.wait(60) == 0, daemon.log()
    assert _gone(worker, 10), "a recorder outlived the daemon"
    final = daemon.state()
    assert final is not None and final.cameras["cam1"].status is RecorderStatus.STOPPED
    with _store(tmp_path) as store:
        rows = store.segments("cam1", states=list(SegmentState))
        assert rows and all(r.state is SegmentState.COMPLETE for r in rows)  # closed, not cut
        assert store.verify("cam1").ok
        for row in rows:
            ffprobe(tmp_path / "state" / "store" / "segments" / row.path)


def test_kill_9_of_the_daemon_loses_at_most_a_fragment(
    run_camsim: Callable[..., CamsimRun], daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    cams = run_camsim(low_res_camera())
    config = write_config(tmp_path / "agent.toml", tmp_path / "state", list(cams))
    first = daemons(config, name="first")
    first.wait_recording()
    started = time.time()
    time.sleep(5.5)  # in the middle of a 10 s segment
    state = first.state()
    assert state is not None and state.cameras["cam1"].pid is not None
    worker = state.cameras["cam1"].pid
    killed = time.time()
    first.signal(signal.SIGKILL)
    first.wait(10)
    assert _gone(worker, 15), "the recorder outlived its daemon"

    second = daemons(config, name="second")
    took = second.wait_recording()
    resumed = time.time()
    print(f"recording resumed {took:.2f} s after the restart, {resumed - killed:.2f} s after kill")
    time.sleep(3)
    second.stop()
    assert second.process is not None and second.process.returncode == 0

    with _store(tmp_path) as store:
        report = store.verify("cam1")
        assert report.ok, [str(p) for p in report.problems]
        rows = store.segments("cam1", states=list(SegmentState))
        # The orphaned worker closes its segment itself (SIGTERM from the kernel when the fork
        # server goes); had it been killed too, the next writer would have recovered it.
        assert {r.state for r in rows} <= {SegmentState.COMPLETE, SegmentState.RECOVERED}
        clip = tmp_path / "around-the-kill.mp4"
        result = store.extract(
            "cam1",
            datetime.fromtimestamp(started, UTC),
            datetime.fromtimestamp(resumed + 2, UTC),
            clip,
        )
    ffprobe(clip)
    assert len(result.gaps) == 1
    before = [s.capture_time for s in stamps_in_file(str(clip)) if s.capture_time <= killed]
    lost = killed - before[-1]
    print(f"footage lost to kill -9 of the daemon: {lost:.3f} s")
    assert lost <= 1.0 + 2 / 15 + 0.05  # a 1 s fragment, plus the frames libav and the writer hold


def test_a_second_daemon_on_the_same_state_is_refused(
    run_camsim: Callable[..., CamsimRun], daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    cams = run_camsim(low_res_camera())
    config = write_config(tmp_path / "agent.toml", tmp_path / "state", list(cams))
    first = daemons(config)
    first.wait_recording()
    second = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "another rtcc-edge daemon is running" in second.stderr
    assert first.process is not None and first.process.poll() is None  # undisturbed
    first.wait_recording()


def test_bad_configuration_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[site]\nid = "Not Valid!"\nname = "x"\n')
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "site.id" in done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(tmp_path / "nope.toml"), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2


def test_unwritable_state_directory_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = tmp_path / "agent.toml"
    config.write_text(f'state_dir = "{blocker}/state"\n[site]\nid = "s"\nname = "x"\n')
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 1
    assert "state directory" in done.stderr
