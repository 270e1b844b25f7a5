"""The persisted delivery jobs (`<state_dir>/delivery.db`, SQLite): one row per clip or snapshot
being delivered, written before the first byte goes out and removed when the request ends.

After a daemon restart the request service starts every request that was accepted or approved
but not finished again; the row then says what was already done: the prepared file (its name
in the temporary directory — never a path a request chose), its SHA-256, the signed manifest,
the attempts made so far, when the job first started (the retry budget runs from there), and
the time before which the upload server asked not to be tried again (its `Retry-After`): a
restart honours it instead of forgetting it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

JOBS_FILE = "delivery.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    jti TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    camera TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    starts INTEGER NOT NULL DEFAULT 1,
    file TEXT,
    sha256 TEXT,
    bytes INTEGER,
    manifest TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before_us INTEGER
)
"""
# Added after the first release: a delivery.db written before it lacks the column.
_MIGRATIONS = {"not_before_us": "ALTER TABLE jobs ADD COLUMN not_before_us INTEGER"}


@dataclass(frozen=True)
class JobRow:
    jti: str
    kind: str
    camera: str
    created_us: int
    expires_us: int  # the request's expiry: no start after it
    starts: int  # 1 on the first start; more after restarts
    file: str | None  # name of the prepared file in the temporary directory
    sha256: str | None
    bytes: int | None
    manifest: str | None  # the signed manifest of the prepared file
    attempts: int  # upload attempts made so far (all objects, all starts)
    not_before_us: int | None = None  # the server's Retry-After, as an epoch time

    @property
    def not_before(self) -> float | None:
        return None if self.not_before_us is None else self.not_before_us / 1_000_000

    @property
    def created(self) -> float:
        return self.created_us / 1_000_000

    @property
    def prepared(self) -> bool:
        return self.file is not None and self.sha256 is not None and self.manifest is not None


class JobQueue:
    """Thread-safe (one connection behind a lock): call it from a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute(_SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, statement in _MIGRATIONS.items():
            if column not in columns:
                self._db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def begin(
        self, jti: str, kind: str, camera: str, *, expires: float, now: float | None = None
    ) -> JobRow:
        """The job of `jti`: created now, or the existing row with one more start."""
        created = int((time.time() if now is None else now) * 1_000_000)
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (jti, kind, camera, created_us, expires_us) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (jti) DO UPDATE SET starts = starts + 1",
                (jti, kind, camera, created, int(expires * 1_000_000)),
            )
            return self._get(jti)

    def expired(self, now: float) -> list[JobRow]:
        """Jobs whose request has expired: they can never be resumed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE expires_us < ?", (int(now * 1_000_000),)
            ).fetchall()
        return [_row(row) for row in rows]

    def prepared(self, jti: str, *, file: str, sha256: str, size: int, manifest: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET file = ?, sha256 = ?, bytes = ?, manifest = ? WHERE jti = ?",
                (file, sha256, size, manifest, jti),
            )

    def unprepared(self, jti: str) -> None:
        """The prepared file is gone or altered: it must be made again."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET file = NULL, sha256 = NULL, bytes = NULL, manifest = NULL "
                "WHERE jti = ?",
                (jti,),
            )

    def attempted(self, jti: str) -> int:
        """Count one more upload attempt (any wait asked for is over); returns the total."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET attempts = attempts + 1, not_before_us = NULL WHERE jti = ?",
                (jti,),
            )
            return self._get(jti).attempts

    def defer(self, jti: str, not_before: float) -> None:
        """The server asked not to be tried again before `not_before` (epoch seconds)."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET not_before_us = ? WHERE jti = ?",
                (int(not_before * 1_000_000), jti),
            )

    def finish(self, jti: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE jti = ?", (jti,))

    def get(self, jti: str) -> JobRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE jti = ?", (jti,)).fetchone()
        return None if row is None else _row(row)

    def all(self) -> list[JobRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_us").fetchall()
        return [_row(row) for row in rows]

    def _get(self, jti: str) -> JobRow:
        row = self._db.execute("SELECT * FROM jobs WHERE jti = ?", (jti,)).fetchone()
        if row is None:
            raise KeyError(jti)
        return _row(row)


def _row(row: sqlite3.Row) -> JobRow:
    return JobRow(
        jti=row["jti"],
        kind=row["kind"],
        camera=row["camera"],
        created_us=row["created_us"],
        expires_us=row["expires_us"],
        starts=row["starts"],
        file=row["file"],
        sha256=row["sha256"],
        bytes=row["bytes"],
        manifest=row["manifest"],
        attempts=row["attempts"],
        not_before_us=row["not_before_us"],
    )
