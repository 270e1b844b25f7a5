"""A full disk while recording: reported as a state, nothing corrupt indexed, and recording
resumes by itself when space returns. The disk is a small tmpfs mounted for the test."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.recorder import RecorderStatus
from agent.store import SegmentState
from tests.recorder.conftest import (
    assert_store_consistent,
    camera_config,
    is_recording,
    low_res_camera,
    probe,
    recording,
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
    async with recording(
        [camera_config(cam)], tmp_path, root=root, store=store_config(min_free=0)
    ) as rig:
        await wait_for(is_recording(rig), 30, what="recording")
        await asyncio.sleep(2)
        filler = await asyncio.to_thread(_fill, small_disk, 120_000)
        await wait_for(lambda: rig.state().status is RecorderStatus.DISK_FULL, 60, what="disk_full")
        state = rig.state()
        assert state.offline_since is not None and not state.online
        assert "space" in (state.last_error or "").lower() or "full" in (state.last_error or "")
        await asyncio.sleep(4)  # it keeps trying, without crashing, while the disk stays full
        assert rig.state().status is RecorderStatus.DISK_FULL
        assert rig.state().restarts == 0
        filler.unlink()
        took = await wait_for(is_recording(rig), 30, what="recording after space returned")
        print(f"recording resumed {took:.2f} s after space returned")
        await asyncio.sleep(3)
    await asyncio.to_thread(assert_store_consistent, rig.store)
    rows = rig.store.segments("cam1", states=list(SegmentState))
    assert len(rows) >= 2  # one cut by the full disk, one after
    for row in rows:
        await probe(root / "segments" / row.path)
