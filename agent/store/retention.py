"""Retention: delete the oldest closed segments, across cameras, to respect three limits.

* age: a segment whose footage ended more than `store.max_age` ago goes;
* byte budget: while the live segments (open ones included) add up to more than
  `store.max_bytes`, the oldest closed segment goes;
* free space: while the store's disk has less than `store.min_free` available, likewise — but
  never footage that ended less than `store.keep_recent` ago. When only held footage and
  footage that recent is left, the pass stops and says so (`NOTHING_DELETABLE`): a disk filled
  by something else stops recording instead of emptying the store.

`store.min_free` is the one number for "enough room to record": retention frees down to it and a
recorder stopped by a full disk records again once it is free (see `agent.recorder.worker`).

A segment overlapping any hold on its camera is never touched. The hold check is part of the
very UPDATE that tombstones a segment (`_EXPIRE`), inside a `BEGIN IMMEDIATE` transaction, and a
hold is placed in one too: a hold placed while a pass runs either commits first (and the UPDATE
sees it) or waits for the pass's commit (and then covers a segment already deleted before it
existed). Open (`recording`) segments are never deleted, so right after a pass the store is
within budget except for the segments still being written — at most one per camera — which is
the bound the writers keep by running a pass each time they close a segment.

A deleted segment keeps its row as an `expired` tombstone (reason in `note`) so that
verification can tell a retention delete from a missing file. Normally the tombstone is
committed first and the file unlinked after, so a crash in between leaves an expired file that
the next start sweeps. On a disk so full that the index cannot grow its write-ahead log by the
one page a tombstone needs (SQLITE_FULL at COMMIT), that order can never make progress, so the
pass switches order for that segment: the UPDATE (hold check included) runs, the file is
unlinked while the transaction still holds the index's write lock, then the COMMIT — which now
finds room. A crash inside that window (between the unlink and the commit) leaves a `complete`
row without its file, which `store verify` reports as missing: the one cost of this order.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from agent.config import StoreConfig
from agent.log import get_logger
from agent.store.errors import IndexUnavailable
from agent.store.index import (
    SEGMENT_COLUMNS,
    Index,
    SegmentRow,
    SegmentState,
    now_us,
    segment_row,
)
from agent.store.layout import Layout
from agent.store.model import ExpiredSegment, RetentionReport, from_us

log = get_logger(__name__)


def available_bytes(path: Path) -> int:
    """Bytes an unprivileged process can still write on the file system holding `path`."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


_UNHELD = """
s.state IN ('complete', 'recovered')
AND NOT EXISTS (
    SELECT 1 FROM holds h
    WHERE h.camera = s.camera AND h.start_us < s.end_us AND h.end_us > s.start_us)
"""
_BATCH = 64

#: What a pass (and a recorder stopped by a full disk) says when freeing space is impossible.
NOTHING_DELETABLE = "the disk is full and nothing more may be deleted"

# The hold check is in the statement that deletes (see the module's docstring).
_EXPIRE = """
UPDATE segments SET state = 'expired', note = ?
WHERE id = ? AND state IN ('complete', 'recovered')
  AND NOT EXISTS (
    SELECT 1 FROM holds h
    WHERE h.camera = segments.camera
      AND h.start_us < segments.end_us AND h.end_us > segments.start_us)
RETURNING path
"""
# Tries of the free-the-file-first order before a pass gives up on a segment (something else may
# take the space between our unlink and our commit).
_FULL_DISK_TRIES = 3


_LIVE_BYTES = (
    "SELECT COALESCE(SUM(bytes), 0) AS n FROM segments "
    "WHERE state IN ('recording', 'complete', 'recovered')"
)
_OPEN_BYTES = "SELECT COALESCE(SUM(bytes), 0) AS n FROM segments WHERE state = 'recording'"
_HELD_COUNT = """
SELECT COUNT(*) AS n FROM segments s
WHERE s.state IN ('complete', 'recovered')
  AND EXISTS (
    SELECT 1 FROM holds h
    WHERE h.camera = s.camera AND h.start_us < s.end_us AND h.end_us > s.start_us)
"""


def _number(index: Index, sql: str) -> int:
    return int(index.query(sql)[0]["n"])


def enforce(
    index: Index,
    layout: Layout,
    config: StoreConfig,
    *,
    now: int | None = None,
    before_delete: Callable[[SegmentRow], None] | None = None,
) -> RetentionReport:
    """One retention pass; returns what was deleted and where the store stands.

    Cheap enough to run after every segment: two sums over an index, then only the rows that
    actually go are read. `before_delete` runs between choosing a segment and deleting it (tests
    use it to interleave a hold with the pass).
    """
    current = now_us() if now is None else now
    oldest_allowed = current - int(config.max_age.total_seconds() * 1_000_000)
    recent_from = current - int(config.keep_recent.total_seconds() * 1_000_000)
    total = before = _number(index, _LIVE_BYTES)
    free = available_bytes(layout.root)
    expired: list[ExpiredSegment] = []

    def drop(row: SegmentRow, reason: Literal["age", "budget", "free_space"]) -> None:
        nonlocal total, free
        if before_delete is not None:
            before_delete(row)
        if _expire(index, layout, row, reason):
            total -= row.bytes
            free = available_bytes(layout.root)
            expired.append(
                ExpiredSegment(
                    row.camera,
                    row.path,
                    row.bytes,
                    from_us(row.start_us),
                    from_us(row.end_us),
                    reason,
                )
            )

    for row in _candidates(index, "AND s.end_us < ?", (oldest_allowed,)):
        drop(row, "age")
    after = (0, 0)  # (start_us, id) of the last candidate looked at
    only_recent = False  # the free-space limit reached footage it may not delete
    while total > config.max_bytes or (free < config.min_free and not only_recent):
        batch = _candidates(index, "AND (s.start_us, s.id) > (?, ?)", after, limit=_BATCH)
        if not batch:
            break
        for row in batch:
            if total > config.max_bytes:
                drop(row, "budget")
            elif free < config.min_free and row.end_us <= recent_from:
                drop(row, "free_space")
            else:
                # Oldest first, always: what follows is newer still.
                only_recent = free < config.min_free
                break
        after = (batch[-1].start_us, batch[-1].id)
    held = 0
    notes: list[str] = []
    if total > config.max_bytes or free < config.min_free:
        held = _number(index, _HELD_COUNT)
        if total - _number(index, _OPEN_BYTES) > config.max_bytes:
            notes.append("closed segments exceed the byte budget: holds keep them")
        if free < config.min_free:
            notes.append(f"only {free} bytes free on the store's disk (reserve {config.min_free})")
            if not can_make_room(index, config, now=current):
                notes.append(NOTHING_DELETABLE)
    report = RetentionReport(
        expired=tuple(expired),
        bytes_before=before,
        bytes_after=total,
        free_after=free,
        held=held,
        over_budget=total > config.max_bytes,
        notes=tuple(notes),
    )
    if expired or notes:
        log.info(
            "retention_pass",
            expired=len(expired),
            freed=report.freed,
            bytes_after=total,
            free_after=free,
            held=held,
            notes=notes,
        )
    return report


def can_make_room(index: Index, config: StoreConfig, *, now: int | None = None) -> bool:
    """Whether a pass could still free space: some closed, unheld segment is old enough."""
    current = now_us() if now is None else now
    recent_from = current - int(config.keep_recent.total_seconds() * 1_000_000)
    return bool(_candidates(index, "AND s.end_us <= ?", (recent_from,), limit=1))


def _candidates(
    index: Index, extra: str, params: tuple[int, ...], *, limit: int | None = None
) -> list[SegmentRow]:
    """Closed segments no hold touches, oldest first, narrowed by `extra`."""
    # Built from this module's constants only; values go in as parameters.
    where = f"{_UNHELD} {extra} ORDER BY s.start_us, s.id"
    sql = f"SELECT {SEGMENT_COLUMNS} FROM segments s WHERE {where}"  # noqa: S608
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [segment_row(r) for r in index.query(sql, params)]


def _expire(index: Index, layout: Layout, row: SegmentRow, reason: str) -> bool:
    """Tombstone then unlink; False if a hold covers it now, or another process expired or
    changed it first. On a disk too full for the tombstone, frees the file first (see the
    module's docstring)."""
    note = f"expired by retention ({reason}) at {now_us()}"
    try:
        with index.transaction() as db:
            gone = db.execute(_EXPIRE, (note, row.id)).fetchall()
    except IndexUnavailable as exc:
        if exc.errno != errno.ENOSPC:
            log.error("retention_index_error", error=str(exc))
            return False
        return _expire_on_full_disk(index, layout, row, note)
    if not gone:
        return False
    _unlink(layout, row.path)
    return True


def _expire_on_full_disk(index: Index, layout: Layout, row: SegmentRow, note: str) -> bool:
    """Unlink inside the transaction, before its COMMIT, so that the COMMIT finds room."""
    unlinked = False
    for _ in range(_FULL_DISK_TRIES):
        try:
            with index.transaction() as db:
                gone = db.execute(_EXPIRE, (note, row.id)).fetchall()
                if not gone:
                    return unlinked
                # The write lock is ours until COMMIT: no hold can slip in before the unlink.
                unlinked = _unlink(layout, row.path) or unlinked
        except IndexUnavailable as exc:
            # The file may be gone with its row still `complete`: the next try (or pass)
            # finds the row again and tombstones it.
            log.warning("retention_full_disk", segment=row.path, error=str(exc))
            continue
        log.warning("retention_freed_before_commit", segment=row.path)
        return True
    return unlinked


def _unlink(layout: Layout, rel: str) -> bool:
    """Remove a segment's file; True if it is gone now."""
    try:
        path = layout.segment(rel)
    except ValueError:
        log.error("retention_bad_path", segment=rel)
        return False
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.error("retention_unlink_failed", segment=rel, error=str(exc))
        return False
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the day directory, once empty
    return True


def sweep_expired(index: Index, layout: Layout) -> None:
    """Unlink files of expired rows that a crash between tombstone and unlink left behind.

    Run at start-up (it stats every tombstone), not on every pass.
    """
    for row in index.segments(states=[SegmentState.EXPIRED]):
        try:
            path = layout.segment(row.path)
        except ValueError:
            continue
        if os.path.lexists(path):
            _unlink(layout, row.path)
