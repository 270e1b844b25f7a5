"""Camera faults cost seconds, not minutes (issue 11): a stalled camera (connection up, no
video) and an unplugged one are camera faults handled inside the worker, never crashes; the
footage itself (camsim's SEI capture times read back from the segments) shows when recording
resumed and that every frame sits at its capture time."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.recorder import RecorderStatus
from tests.recorder.conftest import (
    FAST,
    Rig,
    assert_placed_at_capture_time,
    assert_store_consistent,
    camera_config,
    export,
    is_recording,
    low_res_camera,
    placements,
    probe,
    recording,
    resumed_after,
    stamps,
    ts,
    wait_for,
)
from tests.support.camsim import CamsimRun

# The production backoff (1 s doubling to 10 s): the bounds below must hold with it, not only
# with the tests' quick one.
REAL_BACKOFF = dataclasses.replace(FAST, reconnect_initial=1.0, reconnect_cap=10.0)
# Issue 11: footage resumes at most this long after a stalled camera sends video again...
STALL_RESUME_BOUND = 5.0
# ...and after an unplugged camera answers again.
UNPLUG_RESUME_BOUND = 3.0


def _not_recording(rig: Rig) -> Callable[[], bool]:
    return lambda: rig.state().status in (RecorderStatus.RECONNECTING, RecorderStatus.OFFLINE)


async def _probe_segments(rig: Rig) -> None:
    for row in rig.store.segments("cam1"):
        await probe(rig.root / "segments" / row.path)


@pytest.mark.slow
async def test_stall_while_streaming_is_a_camera_fault_and_resumes_within_5s(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    async with recording([camera_config(cam)], tmp_path, settings=REAL_BACKOFF) as rig:
        await wait_for(is_recording(rig), 30, what="recording")
        await asyncio.sleep(3)
        pid = rig.supervisor.worker_pid("cam1")
        stalled = time.time()
        cam.faults.stall()
        await wait_for(_not_recording(rig), 10, what="the stall to be noticed")
        assert "no video" in (rig.state().last_error or ""), rig.state().last_error
        # Far longer than the watchdog (4 s) and than the backoff's cap: several listening
        # windows and reconnections to a camera that still sends nothing.
        await asyncio.sleep(max(0.0, stalled + 25 - time.time()))
        state = rig.state()
        assert state.status in (RecorderStatus.RECONNECTING, RecorderStatus.OFFLINE)
        assert state.restarts == 0, state.last_exit  # not a crash: the same worker
        assert rig.supervisor.worker_pid("cam1") == pid
        unstalled = time.time()
        cam.faults.unstall()
        await wait_for(is_recording(rig), 20, what="recording after the stall")
        await asyncio.sleep(4)
        end = time.time()
        assert rig.state().restarts == 0
    await asyncio.to_thread(assert_store_consistent, rig.store)
    await _probe_segments(rig)
    placed = await placements(rig)
    resumed = resumed_after(placed, unstalled)
    print(f"stall of 25 s: recording resumed {resumed:.2f} s after the camera sent video again")
    assert resumed <= STALL_RESUME_BOUND
    assert_placed_at_capture_time(placed)
    # Exactly one hole, and it is the stall: no second one, none made up after the reconnect.
    clip = tmp_path / "across-the-stall.mp4"
    result = await export(rig, ts(stalled - 2), ts(end - 1), clip)
    await probe(clip)
    assert len(result.gaps) == 1, [(g.start.isoformat(), g.seconds) for g in result.gaps]
    gap = result.gaps[0]
    assert abs(gap.start.timestamp() - stalled) < 0.5
    assert abs(gap.end.timestamp() - (unstalled + resumed)) < 0.5
    captured = [s.capture_time for s in await stamps(clip)]
    holes = [b - a for a, b in itertools.pairwise(captured)]
    assert sorted(holes)[-2] < 0.5, "a second hole in the clip"


async def test_stall_at_open_is_timed_out_and_not_a_crash(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    cam.faults.stall()  # answers RTSP, never sends a frame
    async with recording([camera_config(cam)], tmp_path, settings=REAL_BACKOFF) as rig:
        await wait_for(_not_recording(rig), 15, what="the stalled open to be reported")
        assert "no video" in (rig.state().last_error or ""), rig.state().last_error
        await asyncio.sleep(10)  # two and a half watchdog windows
        assert rig.state().restarts == 0, rig.state().last_exit
        assert not rig.store.segments("cam1")
        unstalled = time.time()
        cam.faults.unstall()
        await wait_for(is_recording(rig), 20, what="recording after the stall")
        await asyncio.sleep(3)
    await asyncio.to_thread(assert_store_consistent, rig.store)
    await _probe_segments(rig)
    placed = await placements(rig)
    resumed = resumed_after(placed, unstalled)
    print(f"stalled at open: recording started {resumed:.2f} s after the camera sent video")
    assert resumed <= STALL_RESUME_BOUND
    assert_placed_at_capture_time(placed)


@pytest.mark.slow
async def test_unplugged_32s_recording_resumes_within_3s_of_the_camera_coming_back(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    async with recording([camera_config(cam)], tmp_path, settings=REAL_BACKOFF) as rig:
        await wait_for(is_recording(rig), 30, what="recording")
        await asyncio.sleep(3)
        unplugged = time.time()
        cam.faults.unplug()
        # 32 s: the backoff has reached its cap and is in the middle of a wait.
        await asyncio.sleep(max(0.0, unplugged + 32 - time.time()))
        assert rig.state().status is RecorderStatus.OFFLINE
        replugged = time.time()
        cam.faults.replug()
        await wait_for(is_recording(rig), 20, what="recording after the replug")
        await asyncio.sleep(3)
        assert rig.state().restarts == 0, rig.state().last_exit
    await asyncio.to_thread(assert_store_consistent, rig.store)
    await _probe_segments(rig)
    placed = await placements(rig)
    resumed = resumed_after(placed, replugged)
    print(f"unplugged 32 s: recording resumed {resumed:.2f} s after the camera came back")
    assert resumed <= UNPLUG_RESUME_BOUND
    assert_placed_at_capture_time(placed)
