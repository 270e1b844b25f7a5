"""The bounded, ordered queue of events waiting for the broker.

Events are kept in the order they were emitted and leave only once the broker has acknowledged
them (QoS 1), so a connection lost mid-publish resends rather than loses (the RTCC may see an
event twice; `(req, seq)` identifies it). When the outbox is full the oldest `progress` event
goes first (a later one supersedes it), and only when there is none the oldest event of any
kind; every eviction is counted and logged, never silent.

Given a path, the outbox is also kept in a small SQLite file, so an event the broker has not yet
acknowledged survives a crash or restart of the agent and is sent when it comes back: a
`completed` lost with the process would leave the RTCC waiting on an upload that succeeded.
Events are stored as their claims and signed again when published.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from agent.log import get_logger
from agent.wire import Event, EventState

log = get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL
)
"""


@dataclass(eq=False)
class _Entry:
    event: Event
    rowid: int | None


class Outbox:
    def __init__(self, capacity: int, *, path: Path | None = None) -> None:
        if capacity < 1:
            raise ValueError("outbox capacity must be at least 1")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[_Entry] = deque()
        self._nonempty = asyncio.Event()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = self._open(path)

    def _open(self, path: Path) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        for rowid, text in db.execute("SELECT id, event FROM outbox ORDER BY id").fetchall():
            try:
                event = Event.model_validate_json(text)
            except ValidationError as exc:
                # A row this version cannot read is dropped loudly rather than blocking the
                # queue for ever.
                log.error("outbox_row_unreadable", row=rowid, error=str(exc)[:200])
                db.execute("DELETE FROM outbox WHERE id = ?", (rowid,))
                continue
            self._items.append(_Entry(event, rowid))
        if self._items:
            log.info("outbox_restored", events=len(self._items))
            self._nonempty.set()
        while len(self._items) > self.capacity:
            self._evict()
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __len__(self) -> int:
        return len(self._items)

    def _evict(self) -> Event:
        victim = next(
            (e for e in self._items if e.event.state is EventState.PROGRESS), self._items[0]
        )
        self._items.remove(victim)
        self._forget(victim)
        self.dropped += 1
        return victim.event

    def _forget(self, entry: _Entry) -> None:
        if self._db is not None and entry.rowid is not None:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (entry.rowid,))

    def put(self, event: Event) -> Event | None:
        """Queue `event`; return the event evicted to make room, if any."""
        evicted = self._evict() if len(self._items) >= self.capacity else None
        rowid: int | None = None
        if self._db is not None:
            cursor = self._db.execute(
                "INSERT INTO outbox (event) VALUES (?)", (event.model_dump_json(),)
            )
            rowid = cursor.lastrowid
        self._items.append(_Entry(event, rowid))
        self._nonempty.set()
        return evicted

    async def head(self) -> Event:
        """The oldest event, waiting for one if the outbox is empty. It stays queued."""
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()
        return self._items[0].event

    def done(self, event: Event) -> None:
        """`event` reached the broker: forget it (unless it was evicted meanwhile)."""
        for entry in self._items:
            if entry.event is event:
                self._items.remove(entry)
                self._forget(entry)
                return
