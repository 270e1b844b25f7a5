"""The persisted replay cache: every accepted request id (`jti`) until its token expires.

A SQLite table in the state directory (WAL, `synchronous=FULL`: a jti recorded is on disk
before the request is acted on, so a replay is refused after a crash or a power cut too). An id
is kept until `exp + clock_leeway`; after that the verifier refuses the token as expired anyway,
and the row may be pruned.

Recording commits with an fsync: from the event loop, call `add_async` (a worker thread). The
membership test reads through a connection of its own, which in WAL mode never waits for a
commit in progress, so the loop does not stall behind the disk.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

_PRUNE_EVERY = 256
_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    jti TEXT PRIMARY KEY,
    keep_until_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_keep_until ON seen (keep_until_us);
"""


def open_private_db(path: Path) -> sqlite3.Connection:
    """A SQLite connection to `path`, created mode 0600 (SQLite gives -wal/-shm the same mode).

    Usable from any thread (the caller serializes its use with a lock): writes run in worker
    threads so that their fsync never stalls the event loop.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class ReplayCache:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._conn = open_private_db(path)
        self._conn.executescript(_SCHEMA)
        self._write_lock = threading.Lock()
        self._reader = open_private_db(path)
        self._read_lock = threading.Lock()
        self._inserts = 0
        self.prune()

    def add(self, jti: str, *, keep_until: float) -> bool:
        """Record `jti`; False if it is already recorded and still kept (a replay)."""
        now_us = int(self._clock() * 1_000_000)
        with self._write_lock:
            cursor = self._conn.execute(
                "INSERT INTO seen (jti, keep_until_us) VALUES (?, ?) "
                "ON CONFLICT (jti) DO UPDATE SET keep_until_us = excluded.keep_until_us "
                "WHERE seen.keep_until_us < ?",
                (jti, int(keep_until * 1_000_000), now_us),
            )
            added = cursor.rowcount == 1
            self._inserts += 1
            prune = self._inserts % _PRUNE_EVERY == 0
        if prune:
            self.prune()
        return added

    async def add_async(self, jti: str, *, keep_until: float) -> bool:
        """`add` in a worker thread; returns once the id is durable."""
        return await asyncio.to_thread(self.add, jti, keep_until=keep_until)

    def __contains__(self, jti: object) -> bool:
        now_us = int(self._clock() * 1_000_000)
        with self._read_lock:
            row = self._reader.execute(
                "SELECT 1 FROM seen WHERE jti = ? AND keep_until_us >= ?", (jti, now_us)
            ).fetchone()
        return row is not None

    def prune(self) -> int:
        """Forget ids whose tokens can no longer pass the expiry check."""
        now_us = int(self._clock() * 1_000_000)
        with self._write_lock:
            return self._conn.execute(
                "DELETE FROM seen WHERE keep_until_us < ?", (now_us,)
            ).rowcount

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._write_lock:
            self._conn.close()
