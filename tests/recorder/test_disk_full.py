"""A full disk while recording: reported as a state, nothing corrupt indexed, and recording
resumes by itself when space returns — freed by the owner, or by retention deleting old unheld
footage. The disk is a small tmpfs mounted for the test (far below the 64 MiB a recorder used
to wait for after a full disk)."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.recorder import RecorderStatus
from agent.store import ClipStore, SegmentRow, SegmentState
from agent.store.model import from_us
from agent.store.retention import NOTHING_DELETABLE
from tests.recorder.conftest import (
    assert_store_consistent,
    camera_config,
    is_recording,
    low_res_camera,
    probe,
    recording,
    stamps,
    store_config,
    wait_for,
)
from tests.support import tmpfs
from tests.support.camsim import CamsimRun


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs, unmounted (lazily, whatever happened) after the test."""
    with tmpfs.small_disk(tmp_path, size="6m", mode="0700", name="disk") as mount:
        yield mount


def _fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as handle:
        block = b"\0" * 65536
        while (free := shutil.disk_usage(disk).free) > leave:
            handle.write(block[: min(len(block), free - leave)])
            handle.flush()
    return filler


async def test_disk_full_is_reported_then_recording_resumes(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path, small_disk: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    root = small_disk / "store"
    # Recent footage only (keep_recent is 10 min): retention may not make room, so the
    # recorder waits for the owner and says why.
    config = store_config(min_free=1_000_000)
    async with recording([camera_config(cam)], tmp_path, root=root, store=config) as rig:
        await wait_for(is_recording(rig), 30, what="recording")
        await asyncio.sleep(2)
        filled_at = time.time()
        filler = await asyncio.to_thread(_fill, small_disk, 120_000)
        await wait_for(lambda: rig.state().status is RecorderStatus.DISK_FULL, 60, what="disk_full")
        state = rig.state()
        assert state.offline_since is not None and not state.online
        assert "space" in (state.last_error or "").lower() or "full" in (state.last_error or "")
        await wait_for(
            lambda: rig.state().last_error == NOTHING_DELETABLE, 30, what="nothing deletable"
        )
        await asyncio.sleep(4)  # it keeps waiting, without crashing, while the disk stays full
        assert rig.state().status is RecorderStatus.DISK_FULL
        assert rig.state().restarts == 0
        # The store was not emptied to make room: nothing recent was deleted.
        assert not rig.store.segments("cam1", states=[SegmentState.EXPIRED])
        freed_at = time.time()
        filler.unlink()
        took = await wait_for(is_recording(rig), 30, what="recording after space returned")
        print(f"recording resumed {took:.2f} s after space returned")
        await asyncio.sleep(3)
    await asyncio.to_thread(assert_store_consistent, rig.store)
    rows = rig.store.segments("cam1", states=list(SegmentState))
    gap = await _footage_gap(rig.store, root, filled_at)
    full_for = freed_at - filled_at
    print(f"footage gap {gap:.2f} s for a disk full {full_for:.2f} s: {gap - full_for:.2f} s more")
    assert gap - full_for < 10
    assert len(rows) >= 2  # one cut by the full disk, one after
    for row in rows:
        await probe(root / "segments" / row.path)


async def _footage_gap(store: ClipStore, root: Path, since: float) -> float:
    """The longest stretch without a recorded frame from `since` (a wall time just before the
    disk filled) on: from the camera's own SEI capture times in the kept files, and, where
    retention has since deleted the footage before the failure, the end its tombstone records."""
    rows = store.segments("cam1", states=list(SegmentState))
    times: list[float] = []
    for row in rows:
        if row.state is SegmentState.EXPIRED:
            times.append(row.end_us / 1_000_000)
        else:
            times += [s.capture_time for s in await stamps(root / "segments" / row.path)]
    times = sorted(times)
    start = max([t for t in times if t < since] or [since])
    later = [t for t in times if t >= start]
    assert len(later) > 1, "no footage around the failure"
    return max(b - a for a, b in itertools.pairwise(later))


def _check_after_retention(
    store: ClipStore, root: Path
) -> tuple[list[SegmentRow], list[SegmentRow]]:
    """Index and files agree; expired rows are the oldest ones and their files are gone."""
    report = store.verify("cam1")
    assert report.ok, [str(p) for p in report.problems]
    live = store.segments("cam1")
    expired = store.segments("cam1", states=[SegmentState.EXPIRED])
    assert all(r.state in (SegmentState.COMPLETE, SegmentState.RECOVERED) for r in live)
    for row in expired:
        assert "free_space" in row.note and not (root / "segments" / row.path).exists()
    return live, expired


async def test_min_free_below_the_old_threshold_resumes_by_itself(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path, small_disk: Path
) -> None:
    """Issue 11 item 1: store.min_free alone decides "enough room to record". Retention frees
    down to it and the recorder resumes at it, with nobody deleting the filler."""
    cam = run_camsim(low_res_camera())[0]
    root = small_disk / "store"
    config = store_config(min_free=600_000, keep_recent=timedelta(seconds=5))
    async with recording([camera_config(cam)], tmp_path, root=root, store=config) as rig:
        await wait_for(is_recording(rig), 30, what="recording")

        def closed() -> int:
            return len(rig.store.segments("cam1", states=[SegmentState.COMPLETE]))

        await wait_for(lambda: closed() >= 2, 60, what="two closed segments")
        filled_at = time.time()
        filler = await asyncio.to_thread(_fill, small_disk, 100_000)
        await wait_for(lambda: rig.state().status is RecorderStatus.DISK_FULL, 60, what="disk_full")
        took = await wait_for(is_recording(rig), 60, what="recording with the filler still there")
        print(f"recording resumed {took:.2f} s after disk_full, filler in place")
        assert filler.exists() and rig.state().restarts == 0
        await asyncio.sleep(3)
    live, expired = await asyncio.to_thread(_check_after_retention, rig.store, root)
    assert expired and max(r.start_us for r in expired) < min(r.start_us for r in live)
    for row in live:
        await probe(root / "segments" / row.path)
    gap = await _footage_gap(rig.store, root, filled_at)
    print(f"footage gap {gap:.2f} s across the full disk")
    assert gap < 10


async def test_disk_filled_to_100_percent_by_another_process_recovers(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path, small_disk: Path
) -> None:
    """Issue 11 item 2: `dd` takes every block; the agent deletes old unheld footage (never the
    held segment) and records again by itself."""
    cam = run_camsim(low_res_camera())[0]
    root = small_disk / "store"
    config = store_config(min_free=600_000, keep_recent=timedelta(seconds=5))
    async with recording([camera_config(cam)], tmp_path, root=root, store=config) as rig:
        await wait_for(is_recording(rig), 30, what="recording")

        def closed() -> list[SegmentRow]:
            return rig.store.segments("cam1", states=[SegmentState.COMPLETE])

        await wait_for(lambda: len(closed()) >= 3, 90, what="three closed segments")
        first = closed()[0]
        rig.store.place_hold("req-1", "cam1", from_us(first.start_us), from_us(first.end_us))
        filler = small_disk / "filler"
        filled_at = time.time()
        done = await asyncio.to_thread(
            subprocess.run,
            ["dd", "if=/dev/zero", f"of={filler}", "bs=64k"],
            capture_output=True,
            text=True,
        )
        assert done.returncode != 0 and "No space left" in done.stderr
        await wait_for(lambda: rig.state().status is RecorderStatus.DISK_FULL, 60, what="disk_full")
        took = await wait_for(is_recording(rig), 60, what="recording with the disk still filled")
        print(f"recording resumed {took:.2f} s after disk_full, filler in place")
        assert filler.exists()
        await asyncio.sleep(3)
    live, expired = await asyncio.to_thread(_check_after_retention, rig.store, root)
    assert expired and live[0].path == first.path  # the held segment survived, and is the oldest
    assert (root / "segments" / first.path).is_file()
    unheld = [r for r in live if r.path != first.path]
    assert max(r.start_us for r in expired) < min(r.start_us for r in unheld)
    for row in live:
        await probe(root / "segments" / row.path)
    gap = await _footage_gap(rig.store, root, filled_at)
    print(f"footage gap {gap:.2f} s across the 100 % full disk")
    assert gap < 10
