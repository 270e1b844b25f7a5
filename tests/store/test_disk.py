"""A real, small disk (tmpfs): filling up while recording, and the free-space reserve."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import StoreConfig
from agent.store import (
    ClipStore,
    DiskFullError,
    SegmentRow,
    SegmentState,
    StoreWriteError,
    retention,
)
from agent.store.errors import IndexUnavailable
from agent.store.model import from_us
from agent.store.retention import NOTHING_DELETABLE, available_bytes
from camsim.sei import FrameStamp
from tests.store.conftest import SpecAt, check_segment
from tests.support import tmpfs
from tests.support.media import MediaSpec, encode_stamped, feed, stamped_source


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs mounted under tmp_path, unmounted whatever happens."""
    with tmpfs.small_disk(tmp_path, size="24m", mode="0755", name="disk") as mount:
        yield mount


def _fill(path: Path, leave: int) -> None:
    """Write zeros into `path` until only about `leave` bytes are free on its disk."""
    block = b"\0" * (256 * 1024)
    with path.open("wb") as handle:
        while available_bytes(path.parent) > leave + len(block):
            handle.write(block)
            handle.flush()


def _config(**changes: object) -> StoreConfig:
    values: dict[str, object] = {
        "segment_seconds": 10,
        "max_age": timedelta(days=30),
        "min_free": 0,
        "max_bytes": 10**12,
    }
    values.update(changes)
    return StoreConfig.model_validate(values)


def test_disk_full_while_recording_then_space_returns(
    small_disk: Path, media_dir: Path, spec_at: SpecAt
) -> None:
    store = ClipStore(small_disk / "store", config=_config())
    spec = spec_at(0, seconds=60, width=640, height=360, bitrate=2_000_000)
    filler = small_disk / "filler"
    _fill(filler, leave=2_500_000)
    fed: list[FrameStamp] = []
    with stamped_source(encode_stamped(media_dir, spec)) as source:
        writer = store.open_writer("cam1", source.stream)
        with pytest.raises(StoreWriteError) as failure:
            feed(writer, source, after=lambda p: fed.append(p.stamp))
        assert isinstance(failure.value, DiskFullError)
        assert failure.value.errno == errno.ENOSPC
        assert writer.closed
        stopped_at = fed[-1].frame_number
        # Nothing incomplete is indexed as good.
        for row in store.segments("cam1", states=[SegmentState.COMPLETE, SegmentState.RECOVERED]):
            check_segment(store, row)
        # Space returns: a new writer settles what the failure left and records on.
        filler.unlink()
        with store.open_writer("cam1", source.stream) as again:
            feed(again, source)
    rows = store.segments("cam1")
    assert {r.state for r in rows} <= {SegmentState.COMPLETE, SegmentState.RECOVERED}
    numbers: list[int] = []
    for row in rows:
        numbers += [s.frame_number for s in check_segment(store, row)]
    assert numbers == sorted(numbers) and numbers[-1] == spec.frames - 1
    # What is missing is the footage around the failure: at most what was buffered when it hit
    # (a fragment) plus the wait for the next keyframe after recording resumed.
    missing = sorted(set(range(spec.frames)) - set(numbers))
    assert missing and missing[0] >= stopped_at - 2 * spec.fps
    assert missing[-1] < stopped_at + spec.gop
    assert store.verify().ok
    store.close()


def test_disk_full_mid_fragment_closes_the_segment_at_its_last_fragment(
    small_disk: Path, media_dir: Path, spec_at: SpecAt
) -> None:
    """The segment file's write fails (the index still has room): the torn fragment is cut off
    and the segment is indexed complete, right away, with what it really holds."""
    store = ClipStore(small_disk / "store", config=_config())
    spec = spec_at(0, seconds=30, width=640, height=360, bitrate=2_000_000)
    filler = small_disk / "filler"
    with stamped_source(encode_stamped(media_dir, spec)) as source:
        writer = store.open_writer("cam1", source.stream)
        feed(writer, source, until=lambda p: p.stamp.frame_number == 15 * 14 + 3)
        _fill(filler, leave=64 * 1024)  # less than a fragment (~130 KB), enough for the index
        with pytest.raises(DiskFullError) as failure:
            feed(writer, source)
    assert failure.value.errno == errno.ENOSPC and failure.value.segment is not None
    rows = store.segments("cam1")
    assert [r.state for r in rows] == [SegmentState.COMPLETE, SegmentState.COMPLETE]
    assert rows[1].path == failure.value.segment
    stamps = check_segment(store, rows[1])  # truncated at its last complete fragment
    assert stamps[0].frame_number == 150 and 15 * 14 <= stamps[-1].frame_number + 1 <= 15 * 16
    assert store.verify().ok
    filler.unlink()
    store.close()


def test_free_space_reserve(small_disk: Path, media_dir: Path, spec_at: SpecAt) -> None:
    reserve = 16 * 1024 * 1024  # of 24 MB: leaves ~8 MB for footage
    store = ClipStore(small_disk / "store", config=_config(min_free=reserve))
    spec = spec_at(0, seconds=120, width=640, height=360, bitrate=2_000_000)
    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam1", source.stream) as writer,
    ):
        feed(writer, source)
    report = store.enforce_retention()
    assert available_bytes(small_disk) >= reserve
    assert not report.notes
    expired = store.segments("cam1", states=[SegmentState.EXPIRED])
    kept = store.segments("cam1")
    assert expired and kept and all("free_space" in r.note for r in expired)
    assert max(r.start_us for r in expired) < min(r.start_us for r in kept)
    assert kept[-1].end_us >= spec.end_us  # the newest footage is what is kept
    store.close()


def _fill_to_the_brim(path: Path) -> None:
    """Another process's file taking every last block of the disk (100 % full)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for block in (1024 * 1024, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * block)
    finally:
        os.close(fd)
    assert available_bytes(path.parent) == 0


def _record_segments(store: ClipStore, media_dir: Path, spec: MediaSpec) -> list[SegmentRow]:
    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam1", source.stream) as writer,
    ):
        feed(writer, source)
    return store.segments("cam1")


def test_a_disk_filled_to_100_percent_recovers(
    small_disk: Path, media_dir: Path, spec_at: SpecAt
) -> None:
    """Issue 11 item 2: with not one block free the index cannot take a tombstone; retention
    still deletes the oldest unheld segment (and never the held one) and the index is usable
    again afterwards."""
    store = ClipStore(small_disk / "store", config=_config(min_free=1_000_000))
    spec = spec_at(0, seconds=50, width=640, height=360, bitrate=1_000_000)
    rows = _record_segments(store, media_dir, spec)
    assert len(rows) == 5
    store.place_hold("req-1", "cam1", from_us(rows[0].start_us), from_us(rows[0].end_us))
    # An empty write-ahead log: the next index write needs new blocks of the disk.
    store.index.query("PRAGMA wal_checkpoint(TRUNCATE)")
    _fill_to_the_brim(small_disk / "filler")
    with pytest.raises(IndexUnavailable, match="full"):
        store.place_hold("req-2", "cam1", from_us(rows[1].start_us), from_us(rows[1].end_us))
    report = store.enforce_retention()
    assert [e.name for e in report.expired] == [r.path for r in rows[1 : 1 + len(report.expired)]]
    assert report.expired and all(e.reason == "free_space" for e in report.expired)
    assert available_bytes(small_disk) >= 1_000_000
    kept = store.segments("cam1")
    assert kept[0] == rows[0] and store.layout.segment(rows[0].path).is_file()
    assert kept == [rows[0], *rows[1 + len(report.expired) :]]
    for row in store.segments("cam1", states=[SegmentState.EXPIRED]):
        assert not store.layout.segment(row.path).exists()
    store.place_hold("req-2", "cam1", from_us(kept[-1].start_us), from_us(kept[-1].end_us))
    assert store.verify().ok
    store.close()


def test_an_outside_fill_does_not_empty_the_store(
    small_disk: Path, media_dir: Path, spec_at: SpecAt
) -> None:
    """Issue 11 item 3: oldest unheld first; footage newer than `keep_recent` and held footage
    are kept, and the pass says that nothing more may be deleted."""
    store = ClipStore(small_disk / "store", config=_config(min_free=8_000_000))
    spec = spec_at(0, seconds=60, width=640, height=360, bitrate=1_000_000)
    rows = _record_segments(store, media_dir, spec)
    assert len(rows) == 6
    store.place_hold("req-1", "cam1", from_us(rows[1].start_us), from_us(rows[1].end_us))
    _fill(small_disk / "filler", leave=100_000)
    # "Now" is such that the last three segments are recent.
    now_us = rows[2].end_us + int(store.config.keep_recent.total_seconds() * 1_000_000)
    report = store.enforce_retention(now=from_us(now_us))
    assert [e.name for e in report.expired] == [rows[0].path, rows[2].path]
    assert [r.path for r in store.segments("cam1")] == [r.path for r in (rows[1], *rows[3:])]
    assert NOTHING_DELETABLE in report.notes
    assert available_bytes(small_disk) < 8_000_000
    assert not retention.can_make_room(store.index, store.config, now=now_us)
    # Time passes: the next segment is no longer recent and goes, oldest first.
    report = store.enforce_retention(now=from_us(rows[3].end_us + (now_us - rows[2].end_us)))
    assert [e.name for e in report.expired] == [rows[3].path]
    assert store.verify().ok
    store.close()
