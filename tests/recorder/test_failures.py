"""A recorder survives what cameras and machines do: worker crashes, a camera unplugged, a
hung worker, a wrong password, a restart budget spent."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.recorder import RecorderStatus
from agent.store import SegmentState
from tests.recorder.conftest import (
    FAST,
    FRAME,
    Rig,
    assert_store_consistent,
    camera_config,
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


async def test_worker_killed_mid_segment_loses_at_most_a_fragment(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    async with recording([camera_config(cam)], tmp_path) as rig:
        await wait_for(is_recording(rig), 30, what="recording")
        started = time.time()
        await asyncio.sleep(5.5)  # the 10 s segment is half written
        pid = rig.supervisor.worker_pid("cam1")
        assert pid is not None
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        await wait_for(
            lambda: rig.state().restarts >= 1 and rig.state().online, 30, what="a new worker"
        )
        resumed = time.time() - killed
        print(f"recording resumed {resumed:.2f} s after kill -9 of the worker")
        state = rig.state()
        assert "SIGKILL" in (state.last_exit or "")
        assert state.pid != pid
        await asyncio.sleep(3)
    await asyncio.to_thread(assert_store_consistent, rig.store)
    rows = rig.store.segments("cam1", states=list(SegmentState))
    assert any(r.state is SegmentState.RECOVERED for r in rows), "the cut segment was recovered"
    for row in rows:
        await probe(rig.root / "segments" / row.path)
    clip = tmp_path / "around-the-kill.mp4"
    result = await export(rig, ts(started), ts(killed + resumed + 2), clip)
    await probe(clip)
    assert len(result.gaps) == 1, result.gaps
    before = [s.capture_time for s in await stamps(clip) if s.capture_time <= killed]
    lost = killed - before[-1]
    print(f"footage lost to kill -9: {lost:.3f} s")
    # A fragment (1 s) is the unit written; the writer also holds back one frame, and libav
    # returns a frame when the next one begins: allow those two frames on top. A worker that
    # reads in batches writes a due fragment when it wakes, which a loaded machine delays:
    # bench/crash_loss.py measured 0.32-0.91 s, the issue 0.33-1.19 s on a busier machine.
    assert lost <= 1.0 + 2 * FRAME + 0.25


@pytest.mark.slow
async def test_camera_unplugged_20s_leaves_a_gap_and_recording_resumes(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    async with recording([camera_config(cam)], tmp_path) as rig:
        await wait_for(is_recording(rig), 30, what="recording")
        started = time.time()
        await asyncio.sleep(4)
        unplugged = time.time()
        cam.faults.unplug()
        await wait_for(lambda: not rig.state().online, 15, what="the loss to be noticed")
        await wait_for(
            lambda: rig.state().status is RecorderStatus.OFFLINE, 15, what="offline status"
        )
        state = rig.state()
        assert state.offline_since is not None
        assert abs(state.offline_since.timestamp() - unplugged) < 5
        await asyncio.sleep(2.5)  # heartbeats keep coming: the status must not flap
        assert rig.state().status is RecorderStatus.OFFLINE
        assert rig.state().since == state.since
        await asyncio.sleep(max(0.0, unplugged + 20 - time.time()))
        replugged = time.time()
        cam.faults.replug()
        took = await wait_for(is_recording(rig), 30, what="recording to resume")
        print(f"recording resumed {took:.2f} s after the camera came back")
        assert rig.state().restarts == 0  # the worker reconnected by itself
        assert rig.state().offline_since is None
        await asyncio.sleep(3)
        end = time.time()
    await asyncio.to_thread(assert_store_consistent, rig.store)
    coverage = rig.store.coverage("cam1", ts(started), ts(end))
    assert len(coverage.gaps) == 1, [(g.start.isoformat(), g.seconds) for g in coverage.gaps]
    gap = coverage.gaps[0]
    assert abs(gap.start.timestamp() - unplugged) < 1.5
    assert replugged - 0.5 < gap.end.timestamp() < replugged + took + 1
    clip = tmp_path / "across-the-gap.mp4"
    result = await export(rig, ts(started + 1), ts(end - 1), clip)
    await probe(clip)
    assert len(result.gaps) == 1
    assert result.gaps[0].seconds > 19
    clip_stamps = await stamps(clip)
    holes = [b.capture_time - a.capture_time for a, b in itertools.pairwise(clip_stamps)]
    assert max(holes) > 19  # the clip's timeline keeps the hole where it was


async def test_hung_worker_is_killed_by_the_watchdog_and_counts_as_a_crash(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    # A stalled camera is the worker's business (test_camera_faults.py); a worker that stops
    # answering altogether (hung in libav or on a dead disk: here, SIGSTOP) is the watchdog's.
    cam = run_camsim(low_res_camera())[0]
    async with recording([camera_config(cam)], tmp_path) as rig:
        await wait_for(is_recording(rig), 30, what="recording")
        pid = rig.supervisor.worker_pid("cam1")
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        await wait_for(
            lambda: rig.state().restarts >= 1, FAST.watchdog_seconds + 20, what="the watchdog"
        )
        state = rig.state()
        assert "watchdog" in (state.last_exit or ""), state.last_exit
        assert "SIGKILL" in (state.last_exit or "")
        assert state.pid != pid
        await wait_for(is_recording(rig), 30, what="recording by a new worker")
        await asyncio.sleep(2)
    await asyncio.to_thread(assert_store_consistent, rig.store)


async def test_wrong_password_is_reported_without_the_password(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    wrong = "Not-The-Pa55word"
    async with recording([camera_config(cam, password=wrong)], tmp_path) as rig:
        await wait_for(lambda: bool(rig.state().last_error), 30, what="an error")
        state = rig.state()
        assert state.status in (RecorderStatus.RECONNECTING, RecorderStatus.OFFLINE)
        assert "401" in (state.last_error or "")
        assert wrong not in (state.last_error or "")
        assert cam.rtsp_url("main") in (state.last_error or "")  # the URL, without userinfo
        assert state.restarts == 0  # retried inside the worker, not a crash loop


def _restarted_more_than(rig: Rig, n: int) -> Callable[[], bool]:
    return lambda: rig.state().restarts > n


async def test_restart_budget_then_slow_retry(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    settings = FAST.__class__(**{**FAST.__dict__, "restart_budget": 3})
    async with recording([camera_config(cam)], tmp_path, settings=settings) as rig:
        for n in range(3):
            await wait_for(
                lambda: rig.supervisor.worker_pid("cam1") is not None, 30, what=f"worker {n}"
            )
            pid = rig.supervisor.worker_pid("cam1")
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await wait_for(_restarted_more_than(rig, n), 30, what=f"restart {n}")
        state = rig.state()
        assert state.status is RecorderStatus.FAILED
        assert state.restarts == 3 and "SIGKILL" in (state.last_exit or "")
        # Failed is not final: it retries every `failed_retry` seconds.
        await wait_for(is_recording(rig), settings.failed_retry + 30, what="the slow retry")
