"""A real, small disk (tmpfs): filling up while recording, and the free-space reserve."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import StoreConfig
from agent.store import ClipStore, DiskFullError, SegmentState, StoreWriteError
from agent.store.retention import available_bytes
from camsim.sei import FrameStamp
from tests.store.conftest import SpecAt, check_segment
from tests.support import tmpfs
from tests.support.media import encode_stamped, feed, stamped_source


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
