"""The daemon measures each camera's clock offset periodically and at each reconnect (issue 12,
item 8), against camsim cameras whose clocks are set off on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from agent.camera_info import read_camera_facts
from agent.config import CameraConfig
from agent.daemon.clock_watch import ClockWatch
from agent.recorder import RecorderStatus, StateBoard
from tests.daemon.conftest import Daemon, low_res_camera
from tests.support.camsim import CameraHandle, CamsimRun, camera, run_cameras

# camsim reports whole seconds (truncated) and the reading is taken at the middle of the round
# trip: within half a second and the round trip of the truth.
TOLERANCE = 1.0


def _config(cam: CameraHandle) -> CameraConfig:
    return CameraConfig(
        id=cam.id,
        name=cam.id,
        onvif_url=cam.onvif_url,
        rtsp_url=cam.rtsp_url("main"),
        username=cam.username,
        secret=cam.password,
    )


async def _until(condition: Callable[[], bool], what: str, *, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


def _offset(state: Path, camera_id: str) -> float | None:
    return read_camera_facts(state, camera_id).clock_offset_s


async def test_periodic_measurement_follows_the_camera_clock(tmp_path: Path) -> None:
    with run_cameras(camera("generic", clock_skew=42.0)) as cams:
        cam = cams[0]
        watch = ClockWatch([_config(cam)], state_dir=tmp_path, interval=0.3, min_spacing=0)
        await watch.start()
        try:
            await _until(lambda: watch.measured[cam.id] >= 1, "a first measurement")
            first = read_camera_facts(tmp_path, cam.id)
            assert first.clock_offset_s is not None and first.clock_measured is not None
            assert abs(first.clock_offset_s - 42.0) < TOLERANCE, first
            # The camera's clock is reset (a power cut, someone in its web page).
            cam.camera.device.clock_skew = -17.0
            await _until(
                lambda: abs((_offset(tmp_path, cam.id) or 0) + 17.0) < TOLERANCE,
                "the new offset",
            )
            later = read_camera_facts(tmp_path, cam.id)
            assert later.clock_measured is not None and later.clock_measured > first.clock_measured
        finally:
            await watch.stop()


async def test_a_reconnect_measures_again(tmp_path: Path) -> None:
    with run_cameras(camera("generic", clock_skew=42.0)) as cams:
        cam = cams[0]
        board = StateBoard([cam.id])
        watch = ClockWatch(
            [_config(cam)], state_dir=tmp_path, board=board, interval=3600, min_spacing=0
        )
        await watch.start()
        try:
            await _until(lambda: watch.measured[cam.id] == 1, "the measurement at start")
            board.update(cam.id, status=RecorderStatus.RECORDING)
            await _until(lambda: watch.measured[cam.id] == 2, "the one at the first recording")
            board.update(cam.id, bytes_written=1000)  # still recording: no new measurement
            cam.camera.device.clock_skew = 100.0
            board.update(cam.id, status=RecorderStatus.RECONNECTING)
            await asyncio.sleep(0.3)
            assert watch.measured[cam.id] == 2
            board.update(cam.id, status=RecorderStatus.RECORDING)
            await _until(lambda: watch.measured[cam.id] == 3, "the one after the reconnect")
            assert abs((_offset(tmp_path, cam.id) or 0) - 100.0) < TOLERANCE
        finally:
            await watch.stop()


async def test_a_camera_that_tells_the_time_only_when_logged_in(tmp_path: Path) -> None:
    with run_cameras(camera("generic", clock_skew=-300.0, add_quirks=["clock_needs_auth"])) as cams:
        cam = cams[0]
        watch = ClockWatch([_config(cam)], state_dir=tmp_path)
        reading = await watch.measure(_config(cam))
        assert reading.offset is not None and abs(reading.offset + 300.0) < TOLERANCE


async def test_an_unreachable_camera_keeps_its_last_offset(tmp_path: Path) -> None:
    with run_cameras(camera("generic", clock_skew=42.0)) as cams:
        cam = cams[0]
        watch = ClockWatch(
            [_config(cam)], state_dir=tmp_path, interval=0.2, min_spacing=0, within=1.0
        )
        await watch.start()
        try:
            await _until(lambda: watch.measured[cam.id] >= 1, "a first measurement")
            cam.faults.unplug()
            measured = read_camera_facts(tmp_path, cam.id).clock_measured
            await asyncio.sleep(1.5)  # a few failed attempts
            facts = read_camera_facts(tmp_path, cam.id)
            assert facts.clock_offset_s is not None and abs(facts.clock_offset_s - 42) < TOLERANCE
            assert facts.clock_measured == measured  # its date says how old it is
        finally:
            cam.faults.replug()
            await watch.stop()


def test_the_daemon_measures_at_start_and_at_each_reconnect(
    run_camsim: Callable[..., CamsimRun], daemons: Callable[..., Daemon], tmp_path: Path
) -> None:
    """`rtcc-edge run` with a camera whose clock is 42 s ahead: the offset is in camera-info.json
    once it records; the camera reboots with its clock 100 s ahead and breaks off the stream;
    the recorder reconnects and the offset is measured again (the ten-minute period cannot
    have caused it)."""
    cams = run_camsim(low_res_camera(clock_skew=42.0))
    cam = cams[0]
    state = tmp_path / "state"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'state_dir = "{state}"\n[site]\nid = "site-1"\nname = "Test site"\n'
        "[store]\nsegment_seconds = 10\nmin_free = 0\n"
        '[log]\nlevel = "info"\nformat = "console"\n'
        f'[[cameras]]\nid = "cam1"\nname = "Camera 1"\nrtsp_url = "{cam.rtsp_url("main")}"\n'
        f'onvif_url = "{cam.onvif_url}"\n'
        f'username = "{cam.username}"\nsecret = "{cam.password}"\n'
    )
    daemon = daemons(config)
    daemon.wait_recording()
    deadline = time.monotonic() + 30
    while (offset := _offset(state, "cam1")) is None or abs(offset - 42) >= TOLERANCE:
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.1)
    first = read_camera_facts(state, "cam1").clock_measured
    assert first is not None

    cam.camera.device.clock_skew = 100.0
    cam.faults.drop_after_frames = 5  # the stream breaks off; the recorder reconnects
    deadline = time.monotonic() + 60
    while (offset := _offset(state, "cam1")) is None or abs(offset - 100) >= TOLERANCE:
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.1)
    cam.faults.drop_after_frames = 0
    later = read_camera_facts(state, "cam1").clock_measured
    assert later is not None and later > first
    assert "camera_clock_measured" in daemon.log()
