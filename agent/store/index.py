"""The SQLite index of segments, holds and quarantined files.

WAL mode with a busy timeout, so one writer process per camera, the daemon's retention and the
owner's CLI can all use it at once; every multi-statement change is one `BEGIN IMMEDIATE`
transaction. A connection is opened per process and thread (a forked worker never reuses its
parent's). Times are integer microseconds since the Unix epoch (`*_us`); media times are in the
segment's own track timescale.

Segment states:
    recording    being written; `bytes`, `frames`, `end_us` follow each fragment written
    complete     closed normally; `sha256` is the hash of the whole file
    recovered    cut at its last complete fragment after a crash; hashed then
    expired      deleted by retention; the row stays as a tombstone for verification
    quarantined  unreadable or gone while recording; its file (if any) was moved aside
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.store.errors import IndexUnavailable

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
_SQLITE_FULL = 13

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    session TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('recording', 'complete', 'recovered', 'expired', 'quarantined')),
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    timescale INTEGER NOT NULL CHECK (timescale > 0),
    first_pts INTEGER NOT NULL,
    end_pts INTEGER NOT NULL,
    anchor_pts INTEGER NOT NULL,
    anchor_us INTEGER NOT NULL,
    drift_us INTEGER NOT NULL DEFAULT 0,
    codec TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    frames INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    init_bytes INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT,
    prev_sha256 TEXT,
    created_us INTEGER NOT NULL,
    closed_us INTEGER,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS segments_camera_start ON segments (camera, start_us);
CREATE INDEX IF NOT EXISTS segments_state_start ON segments (state, start_us);
CREATE INDEX IF NOT EXISTS segments_state_bytes ON segments (state, bytes);
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS holds_camera ON holds (camera, start_us);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    original TEXT NOT NULL,
    moved_to TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_us INTEGER NOT NULL
);
"""


class SegmentState(StrEnum):
    RECORDING = "recording"
    COMPLETE = "complete"
    RECOVERED = "recovered"
    EXPIRED = "expired"
    QUARANTINED = "quarantined"


#: States whose file should be on disk and holds footage.
LIVE_STATES = (SegmentState.RECORDING, SegmentState.COMPLETE, SegmentState.RECOVERED)
CLOSED_STATES = (SegmentState.COMPLETE, SegmentState.RECOVERED)


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class SegmentRow:
    id: int
    camera: str
    path: str
    session: str
    state: SegmentState
    start_us: int
    end_us: int
    timescale: int
    first_pts: int
    end_pts: int
    anchor_pts: int
    anchor_us: int
    drift_us: int
    codec: str
    width: int
    height: int
    frames: int
    bytes: int
    init_bytes: int
    sha256: str | None
    prev_sha256: str | None
    created_us: int
    closed_us: int | None
    note: str

    def wall_us(self, pts: int) -> int:
        """Agent wall-clock time of a presentation time of this segment (exact anchor map)."""
        return self.anchor_us + (pts - self.anchor_pts) * 1_000_000 // self.timescale

    def pts_at(self, wall_us: int) -> int:
        return self.anchor_pts + (wall_us - self.anchor_us) * self.timescale // 1_000_000


@dataclass(frozen=True)
class HoldRow:
    id: str
    camera: str
    start_us: int
    end_us: int
    reason: str
    created_us: int


@dataclass(frozen=True)
class QuarantineRow:
    id: int
    original: str
    moved_to: str
    reason: str
    at_us: int


SEGMENT_COLUMNS = ", ".join(SegmentRow.__dataclass_fields__)


def segment_row(row: sqlite3.Row) -> SegmentRow:
    values = dict(row)
    values["state"] = SegmentState(values["state"])
    return SegmentRow(**values)


class Index:
    """Typed access to the store's SQLite file."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not create and not path.exists():
            raise FileNotFoundError(path)
        self._local = threading.local()
        try:
            # executescript commits on its own; every statement is idempotent.
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise self._unavailable(exc, "open") from exc
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True
        )
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a power cut may lose the last transactions, never corrupt; the
        # transactions that must survive one ask for `durable=True` (see `transaction`).
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        return db

    @property
    def db(self) -> sqlite3.Connection:
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:
            local.db = self._connect()
            local.pid = pid
        db: sqlite3.Connection = local.db
        return db

    def close(self) -> None:
        local = self._local
        if getattr(local, "pid", None) == os.getpid():
            local.db.close()
        local.pid = None

    def _unavailable(self, exc: sqlite3.Error, what: str) -> IndexUnavailable:
        full = getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL
        return IndexUnavailable(
            f"cannot {what} the store index {self.path}: {exc}",
            errno=errno.ENOSPC if full else None,
        )

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction; any SQLite error becomes IndexUnavailable.

        `durable`: the commit fsyncs the write-ahead log (`synchronous = FULL` for this
        transaction), so a power cut cannot take it back, nor any commit before it. Used where
        losing the row would orphan a file: a segment opened, closed, recovered, quarantined.
        """
        db = self.db
        try:
            if durable:
                db.execute("PRAGMA synchronous = FULL")
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._unavailable(exc, "write") from exc
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._unavailable(exc, "write") from exc
            raise
        finally:
            if durable:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA synchronous = NORMAL")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._unavailable(exc, "read") from exc

    # -- segments -------------------------------------------------------------------------

    def insert_segment(self, db: sqlite3.Connection, **values: Any) -> int:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = db.execute(
            f"INSERT INTO segments ({columns}) VALUES ({marks})",  # noqa: S608 (our own names)
            tuple(str(v) if isinstance(v, SegmentState) else v for v in values.values()),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def update_segment(self, db: sqlite3.Connection, segment_id: int, **values: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in values)
        db.execute(
            f"UPDATE segments SET {assignments} WHERE id = ?",  # noqa: S608 (our own names)
            (*(str(v) if isinstance(v, SegmentState) else v for v in values.values()), segment_id),
        )

    def progress_segment(self, segment_id: int, **values: Any) -> None:
        """One UPDATE of a recording segment, committed on its own (autocommit): the writer
        calls this once per fragment, so it skips an explicit BEGIN/COMMIT round."""
        try:
            self.update_segment(self.db, segment_id, **values)
        except sqlite3.Error as exc:
            raise self._unavailable(exc, "write") from exc

    def segment(self, segment_id: int) -> SegmentRow | None:
        rows = self.query(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?", (segment_id,))  # noqa: S608
        return segment_row(rows[0]) if rows else None

    def segments(
        self,
        *,
        camera: str | None = None,
        states: Sequence[SegmentState] | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        after_id: int | None = None,
        order: str = "start_us, id",
    ) -> list[SegmentRow]:
        """Segments overlapping [start_us, end_us) (either bound optional), in `order`."""
        where: list[str] = []
        params: list[Any] = []
        if camera is not None:
            where.append("camera = ?")
            params.append(camera)
        if states is not None:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(str(s) for s in states)
        if start_us is not None:
            where.append("end_us > ?")
            params.append(start_us)
        if end_us is not None:
            where.append("start_us < ?")
            params.append(end_us)
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        if order not in ("start_us, id", "id"):
            raise ValueError(f"unsupported order {order!r}")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.query(
            f"SELECT {SEGMENT_COLUMNS} FROM segments {clause} ORDER BY {order}",  # noqa: S608
            params,
        )
        return [segment_row(r) for r in rows]

    def first_segment_after(self, camera: str, start_us: int) -> SegmentRow | None:
        """The earliest live segment of `camera` starting after `start_us`."""
        rows = self.query(
            f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE camera = ? AND start_us > ? "  # noqa: S608
            "AND state IN ('recording', 'complete', 'recovered') "
            "ORDER BY start_us, id LIMIT 1",
            (camera, start_us),
        )
        return segment_row(rows[0]) if rows else None

    def chain_head(self, db: sqlite3.Connection, camera: str) -> str | None:
        """The hash the next segment of `camera` links to: the newest hashed segment's
        (segments re-adopted from quarantine stand outside the chain, see `readopt`)."""
        row = db.execute(
            "SELECT sha256 FROM segments WHERE camera = ? AND sha256 IS NOT NULL "
            "AND note NOT LIKE 're-adopted%' ORDER BY id DESC LIMIT 1",
            (camera,),
        ).fetchone()
        return None if row is None else str(row["sha256"])

    def has_path(self, rel: str) -> bool:
        return bool(self.query("SELECT 1 FROM segments WHERE path = ?", (rel,)))

    def known_paths(self) -> set[str]:
        return {str(r["path"]) for r in self.query("SELECT path FROM segments")}

    def cameras(self) -> list[str]:
        return [str(r["camera"]) for r in self.query("SELECT DISTINCT camera FROM segments")]

    # -- holds ----------------------------------------------------------------------------

    def holds(self, camera: str | None = None) -> list[HoldRow]:
        if camera is None:
            rows = self.query("SELECT * FROM holds ORDER BY start_us, id")
        else:
            rows = self.query(
                "SELECT * FROM holds WHERE camera = ? ORDER BY start_us, id", (camera,)
            )
        return [HoldRow(**dict(r)) for r in rows]

    # -- quarantine -----------------------------------------------------------------------

    def add_quarantine(
        self, db: sqlite3.Connection, original: str, moved_to: str, reason: str
    ) -> None:
        db.execute(
            "INSERT INTO quarantine (original, moved_to, reason, at_us) VALUES (?, ?, ?, ?)",
            (original, moved_to, reason, now_us()),
        )

    def quarantined(self) -> list[QuarantineRow]:
        return [
            QuarantineRow(**dict(r)) for r in self.query("SELECT * FROM quarantine ORDER BY id")
        ]
