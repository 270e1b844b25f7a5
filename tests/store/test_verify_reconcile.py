"""Verification of hashes and chains; start-up reconciliation of index and files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.store import ClipStore, SegmentState, WriterBusy
from agent.store.lock import CameraLock
from tests.store.conftest import Record, SpecAt, check_segment
from tests.support.media import encode_stamped, feed, stamped_source


@pytest.fixture
def recorded(store: ClipStore, record: Record, spec_at: SpecAt) -> ClipStore:
    record(store, "cam1", spec_at(0, seconds=50))
    record(store, "cam2", spec_at(0, seconds=20))
    assert store.verify().ok
    return store


def _kinds(store: ClipStore, camera: str | None = None) -> list[tuple[str, str]]:
    return sorted((p.kind, p.name) for p in store.verify(camera).problems)


def test_one_byte_changed_and_one_file_deleted_are_named(recorded: ClipStore) -> None:
    rows = recorded.segments("cam1")
    path = recorded.layout.segment(rows[1].path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    recorded.layout.segment(rows[3].path).unlink()
    assert _kinds(recorded) == [("altered", rows[1].path), ("missing", rows[3].path)]
    assert _kinds(recorded, "cam2") == []  # per camera


def test_retention_tombstones_are_not_errors(recorded: ClipStore) -> None:
    recorded.config = recorded.config.model_copy(update={"max_bytes": 500_000})
    expired = recorded.enforce_retention().expired
    assert expired
    report = recorded.verify()
    assert report.ok and report.tombstones == len(expired)
    assert report.checked == len(recorded.segments())


def test_chain_tampering_is_named(recorded: ClipStore) -> None:
    rows = recorded.segments("cam1")
    with recorded.index.transaction() as db:  # point segment 3 at segment 1
        db.execute("UPDATE segments SET prev_sha256 = ? WHERE id = ?", (rows[0].sha256, rows[2].id))
    assert _kinds(recorded) == [("out_of_order", rows[2].path)]
    with recorded.index.transaction() as db:  # undo, then drop segment 2 from the index
        db.execute("UPDATE segments SET prev_sha256 = ? WHERE id = ?", (rows[1].sha256, rows[2].id))
        db.execute("DELETE FROM segments WHERE id = ?", (rows[1].id,))
    assert _kinds(recorded) == [("chain_broken", rows[2].path), ("unindexed", rows[1].path)]


def test_reconcile_quarantines_unknown_files_and_reports_missing(recorded: ClipStore) -> None:
    seg = recorded.layout.segments
    stray = seg / "cam1" / "2026-01-01" / "cam1-1.mp4"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not a segment")
    (seg / "notes.txt").write_text("hello")
    (seg / "cam2" / "link.mp4").symlink_to("/etc/passwd")
    rows = recorded.segments("cam1")
    recorded.layout.segment(rows[0].path).unlink()
    with recorded.layout.segment(rows[1].path).open("ab") as handle:
        handle.write(b"extra")
    assert {p.kind for p in recorded.verify().problems} == {"unindexed", "missing", "altered"}

    report = recorded.reconcile()
    moved = {q.original: q for q in report.quarantined}
    assert set(moved) == {
        "segments/cam1/2026-01-01/cam1-1.mp4",
        "segments/notes.txt",
        "segments/cam2/link.mp4",
    }
    for item in moved.values():  # moved aside, never deleted (a symlink stays a symlink)
        assert os.path.lexists(item.moved_to) and item.moved_to.parent == recorded.layout.quarantine
    assert moved["segments/cam1/2026-01-01/cam1-1.mp4"].moved_to.read_bytes() == b"not a segment"
    assert moved["segments/cam2/link.mp4"].moved_to.is_symlink()
    assert report.missing == (rows[0].path,)
    assert report.mismatched == (rows[1].path,)
    assert not report.clean
    assert [q.reason for q in recorded.index.quarantined()] == [
        q.reason for q in report.quarantined
    ]
    assert {p.kind for p in recorded.verify().problems} == {"missing", "altered"}


def _open_segment_left_by_a_crash(store: ClipStore, media_dir: Path, spec_at: SpecAt) -> str:
    """A `recording` row and its file, as a writer killed mid-segment leaves them."""
    spec = spec_at(100, seconds=8)
    with stamped_source(encode_stamped(media_dir, spec)) as source:
        writer = store.open_writer("cam3", source.stream)
        feed(writer, source, until=lambda p: p.stamp.frame_number == 50)
        writer._lock.release()  # what the kernel does when the process dies
    [row] = store.segments("cam3")
    assert row.state is SegmentState.RECORDING
    return row.path


def test_an_unreadable_open_segment_is_quarantined(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    rel = _open_segment_left_by_a_crash(store, media_dir, spec_at)
    path = store.layout.segment(rel)
    path.write_bytes(path.read_bytes()[:600])  # not even the init segment survived
    report = store.reconcile()
    assert [q.original for q in report.quarantined] == [f"segments/{rel}"]
    [row] = store.segments("cam3", states=[SegmentState.QUARANTINED])
    assert "no complete fragment" in row.note and row.sha256 is None
    assert not path.exists()
    assert store.verify().ok  # reported when quarantined, a note for verify


def test_a_live_writer_is_left_alone(store: ClipStore, media_dir: Path, spec_at: SpecAt) -> None:
    spec = spec_at(200, seconds=15)
    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam4", source.stream) as writer,
    ):
        feed(writer, source, until=lambda p: p.stamp.frame_number == 40)
        report = store.reconcile()
        assert report.busy == ("cam4",) and report.clean
        [row] = store.segments("cam4")
        assert row.state is SegmentState.RECORDING
        status = {s.camera: s for s in store.status()}["cam4"]
        assert status.recording and status.writer_alive
        with pytest.raises(WriterBusy):
            CameraLock(store.layout.lock_file("cam4")).acquire()
        feed(writer, source)
    for row in store.segments("cam4"):
        check_segment(store, row)
    status = {s.camera: s for s in store.status()}["cam4"]
    assert not status.recording and not status.writer_alive
    assert status.segments == 2 and status.hours == pytest.approx(15 / 3600, abs=1e-4)
