"""Retention by byte budget and by age, holds, tombstones. (Free space: see test_disk.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.store import ClipStore, InvalidWindow, SegmentRow, SegmentState, retention
from agent.store.model import from_us
from tests.store.conftest import Record, SpecAt
from tests.support.media import encode_stamped, stamped_source

SEGMENT = 10  # seconds


def _record_two_cameras(store: ClipStore, media_dir: Path, spec_at: SpecAt, seconds: float) -> int:
    """Record cam1 and cam2 at once (packets interleaved as two workers would write them),
    checking after every packet that closed segments stay within the budget. Returns the
    largest open-segment total seen."""
    one, two = spec_at(0, seconds=seconds), spec_at(0.03, seconds=seconds, first_frame=50_000)
    worst_open = 0
    with (
        stamped_source(encode_stamped(media_dir, one)) as a,
        stamped_source(encode_stamped(media_dir, two)) as b,
        store.open_writer("cam1", a.stream) as wa,
        store.open_writer("cam2", b.stream) as wb,
    ):
        for pa, pb in zip(a.packets(), b.packets(), strict=True):
            wa.write(pa.packet, pa.stamp.capture_us + 20_000)
            wb.write(pb.packet, pb.stamp.capture_us + 20_000)
            live = store.segments()
            closed = sum(r.bytes for r in live if r.state is not SegmentState.RECORDING)
            opened = [r for r in live if r.state is SegmentState.RECORDING]
            assert closed <= store.config.max_bytes
            assert len(opened) <= 2  # so at most one open segment per camera on top
            worst_open = max(worst_open, sum(r.bytes for r in opened))
    return worst_open


def test_byte_budget_removes_oldest_first_across_cameras(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    segment_bytes = 10 * 15 * 1300  # ~a 10 s segment of the test pattern
    store.config = store.config.model_copy(update={"max_bytes": 3 * segment_bytes})
    _record_two_cameras(store, media_dir, spec_at, 70)
    live = store.segments()
    expired = store.segments(states=[SegmentState.EXPIRED])
    assert sum(r.bytes for r in live) <= store.config.max_bytes
    assert expired and live
    # Oldest first across cameras: everything kept is newer than everything deleted.
    assert max(r.start_us for r in expired) <= min(r.start_us for r in live)
    assert {r.camera for r in live} == {"cam1", "cam2"}
    for row in expired:  # tombstones: the file is gone, the row (and its hash) stays
        assert not store.layout.segment(row.path).exists()
        assert row.sha256 and "budget" in row.note
    report = store.verify()
    assert report.ok and report.tombstones == len(expired)


def test_a_held_window_survives_until_released(
    store: ClipStore, record: Record, spec_at: SpecAt
) -> None:
    spec = spec_at(0, seconds=60)
    hold_start, hold_end = from_us(spec.start_us + 12_000_000), from_us(spec.start_us + 25_000_000)
    store.place_hold("req-1", "cam1", hold_start, hold_end, reason="case 24-113")
    store.place_hold("req-1", "cam1", hold_start, hold_end, reason="case 24-113")  # idempotent
    assert [h.id for h in store.holds()] == ["req-1"]
    store.config = store.config.model_copy(update={"max_bytes": 1})
    record(store, "cam1", spec)
    kept = store.segments("cam1")
    # The two segments overlapping the hold, and nothing else, are left.
    assert [(r.start_us - spec.start_us) // 1_000_000 for r in kept] == [10, 20]
    report = store.enforce_retention()
    assert report.over_budget and report.held == 2 and not report.expired
    assert store.release_hold("req-1") is True
    assert store.release_hold("req-1") is False
    report = store.enforce_retention()
    assert len(report.expired) == 2 and store.segments("cam1") == []


def test_a_hold_on_another_camera_does_not_protect(
    store: ClipStore, record: Record, spec_at: SpecAt
) -> None:
    spec = spec_at(0, seconds=25)
    record(store, "cam1", spec)
    store.place_hold("req-2", "cam2", from_us(spec.start_us), from_us(spec.end_us))
    store.config = store.config.model_copy(update={"max_bytes": 1})
    assert len(store.enforce_retention().expired) == 3


def test_age(store: ClipStore, record: Record, spec_at: SpecAt) -> None:
    spec = spec_at(0, seconds=40)
    record(store, "cam1", spec)
    # Pretend it is 30 days and 25 s after the recording started.
    now = from_us(spec.start_us) + store.config.max_age + timedelta(seconds=25)
    report = store.enforce_retention(now=now)
    assert [e.reason for e in report.expired] == ["age", "age"]
    assert [(r.start_us - spec.start_us) // 1_000_000 for r in store.segments("cam1")] == [20, 30]


def test_hold_arguments_are_checked(store: ClipStore) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidWindow):
        store.place_hold("h", "cam1", start, start)
    with pytest.raises(InvalidWindow):
        store.place_hold("h", "cam1", start.replace(tzinfo=None), start + timedelta(1))
    with pytest.raises(ValueError, match="camera id"):
        store.place_hold("h", "Cam 1", start, start + timedelta(1))
    with pytest.raises(ValueError, match="hold id"):
        store.place_hold("", "cam1", start, start + timedelta(1))
    with pytest.raises(ValueError, match="hold id"):
        store.place_hold("x" * 201, "cam1", start, start + timedelta(1))
    assert store.holds() == []
    store.place_hold("h", "cam1", start, start + timedelta(hours=1), reason="first")
    store.place_hold("h", "cam1", start, start + timedelta(hours=2), reason="widened")
    [hold] = store.holds("cam1")
    assert hold.end == start + timedelta(hours=2) and hold.reason == "widened"


def test_a_hold_placed_during_a_pass_is_honoured(
    store: ClipStore, record: Record, spec_at: SpecAt
) -> None:
    """Issue 11 item 4: the pass has chosen its segments when a request holds one of them,
    through another connection; the delete re-checks holds in its own statement."""
    spec = spec_at(0, seconds=35)
    record(store, "cam1", spec)
    store.config = store.config.model_copy(update={"max_bytes": 1})
    other = ClipStore(store.root, config=store.config)  # the link's own connection
    placed: list[str] = []

    def hold_the_second(row: SegmentRow) -> None:
        if (row.start_us - spec.start_us) // 1_000_000 == 10 and not placed:
            other.place_hold("req-9", "cam1", from_us(row.start_us), from_us(row.end_us - 1))
            placed.append(row.path)

    report = retention.enforce(
        store.index, store.layout, store.config, before_delete=hold_the_second
    )
    other.close()
    assert placed, "the pass never chose the segment the hold covers"
    assert placed[0] not in {e.name for e in report.expired}
    assert [r.path for r in store.segments("cam1")] == placed
    assert store.layout.segment(placed[0]).is_file()
    assert len(report.expired) == 3  # the others went
    assert store.verify().ok
