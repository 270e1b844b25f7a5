"""Recording a camsim camera for real and cutting windows out of what was recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.recorder.conftest import (
    FAST,
    LATENCY,
    assert_store_consistent,
    camera_config,
    check_window,
    export,
    is_recording,
    low_res_camera,
    probe,
    recording,
    stamps,
    ts,
    wait_for,
)
from tests.support.camsim import CamsimRun


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()))


@pytest.mark.slow
async def test_record_90s_and_export_windows(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    async with recording([camera_config(cam)], tmp_path) as rig:
        await wait_for(is_recording(rig), 30, what="recording")
        await wait_for(lambda: bool(rig.store.segments("cam1")), 10, what="a first segment")
        origin = rig.store.segments("cam1")[0].start_us / 1e6

        # Export while recording: a window ending just behind the live edge.
        await _sleep_until(origin + 45)
        start, end = ts(origin + 33.3), ts(time.time() - 1.5)
        clip = tmp_path / "while-recording.mp4"
        result = await export(rig, start, end, clip)
        check_window(result, await stamps(clip), start, end, await probe(clip))
        assert result.gaps == ()
        assert rig.state().online  # recording went on meanwhile

        await _sleep_until(origin + 92)
        state = rig.state()
        assert state.online and state.restarts == 0
        assert state.bytes_written > 0 and state.codec == "h264" and state.width == 320

    await asyncio.to_thread(assert_store_consistent, rig.store)
    segments = rig.store.segments("cam1")
    assert len(segments) >= 9  # 10 s segments
    for segment in segments:
        await probe(rig.root / "segments" / segment.path)

    for n, (a, b) in enumerate([(5.3, 17.7), (20.0, 20.5), (31.1, 58.9), (70.05, 88.8)]):
        start, end = ts(origin + a), ts(origin + b)
        clip = tmp_path / f"window-{n}.mp4"
        result = await export(rig, start, end, clip)
        clip_stamps = await stamps(clip)
        check_window(result, clip_stamps, start, end, await probe(clip))
        assert result.gaps == (), result.gaps
        numbers = [s.frame_number for s in clip_stamps]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "a frame is missing"


async def test_reading_in_batches_keeps_wall_clock_exact_and_stop_loses_nothing(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    """The worker lets packets queue up between reads (`read_batch`); the wall-clock times the
    store gives each frame must not move with it, and a stop must record what had queued."""
    cam = run_camsim(low_res_camera())[0]
    # Naps as long as a fragment allows, so that anything read late would show.
    settings = dataclasses.replace(FAST, read_batch=1.0)
    async with recording([camera_config(cam)], tmp_path, settings=settings) as rig:
        await wait_for(is_recording(rig), 30, what="recording")
        await wait_for(
            lambda: len(rig.store.segments("cam1")) >= 2, 30, what="a second segment to open"
        )
        await asyncio.sleep(2.3)
        stopped = time.time()
    await asyncio.to_thread(assert_store_consistent, rig.store)
    segments = rig.store.segments("cam1")
    for segment in segments:
        clip_stamps = await stamps(rig.root / "segments" / segment.path)
        # The index's time of a segment's first frame against the camera's own capture time:
        # later by the loopback's delivery (about a frame), never by a nap.
        late = segment.start_us / 1e6 - clip_stamps[0].capture_time
        assert -0.02 < late < LATENCY, f"{segment.path} starts {late:+.3f} s off its frames"
    last = (await stamps(rig.root / "segments" / segments[-1].path))[-1].capture_time
    assert last >= stopped - LATENCY, f"the last {stopped - last:.3f} s before the stop are lost"
