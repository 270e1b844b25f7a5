"""The request book: every request whose signature verified, with its current state.

One row per request id (`jti`) in `<state_dir>/requests.db` (SQLite, WAL, synchronous FULL,
mode 0600: it holds upload URLs and relay tokens). It is what lets a pending request survive a
restart, `seq` continue from where it was, the rate limit count the last hour, and the owner see
pending and recent requests. The event stream of a jti in the book belongs to that request:
nothing else is ever emitted under its id. Final rows are forgotten after `KEEP_FINAL`; the
ledger keeps the history.

`add` and `advance` commit with an fsync: from the event loop, call `add_async` and
`advance_async` (a worker thread, one write at a time). Reads go through a connection of their
own, which in WAL mode never waits for a commit in progress: the loop does not stall behind the
disk, and a read after an awaited write sees it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.link.replay import open_private_db
from agent.wire import FINAL_STATES, EventState, RejectCode, Request, parse_request_claims

DB_FILE = "requests.db"
KEEP_FINAL = timedelta(days=90)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    jti TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    cmd TEXT,
    camera TEXT,
    case_id TEXT,
    requester TEXT,
    reason TEXT,
    claims TEXT,
    state TEXT NOT NULL,
    code TEXT,
    message TEXT,
    seq INTEGER NOT NULL,
    final INTEGER NOT NULL,
    counted INTEGER NOT NULL,
    hold_id TEXT,
    received_us INTEGER NOT NULL,
    expires_us INTEGER,
    updated_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_rate ON requests (issuer, received_us);
CREATE INDEX IF NOT EXISTS requests_open ON requests (final, state);
"""
_COLUMNS = (
    "jti, issuer, cmd, camera, case_id, requester, reason, claims, state, code, message, seq, "
    "final, counted, hold_id, received_us, expires_us, updated_us"
)

_ADVANCE = (
    "UPDATE requests SET state = ?, code = ?, message = ?, seq = seq + 1, final = ?, "  # noqa: S608
    f"updated_us = ? WHERE jti = ? AND final = 0 RETURNING {_COLUMNS}"
)


def _us(moment: float) -> int:
    return int(moment * 1_000_000)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, UTC)


@dataclass(frozen=True)
class RequestRecord:
    jti: str
    issuer: str
    cmd: str | None
    camera: str | None
    case: str | None
    requester: str | None
    reason: str | None
    claims_json: str | None
    state: EventState
    code: RejectCode | None
    message: str | None
    seq: int
    final: bool
    hold_id: str | None
    received: datetime
    expires: datetime | None
    updated: datetime

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> RequestRecord:
        (jti, issuer, cmd, camera, case, requester, reason, claims, state, code, message, seq,
         final, _counted, hold_id, received_us, expires_us, updated_us) = row  # fmt: skip
        received, updated = _dt(received_us), _dt(updated_us)
        assert received is not None and updated is not None
        return cls(
            jti=jti,
            issuer=issuer,
            cmd=cmd,
            camera=camera,
            case=case,
            requester=requester,
            reason=reason,
            claims_json=claims,
            state=EventState(state),
            code=RejectCode(code) if code else None,
            message=message,
            seq=seq,
            final=bool(final),
            hold_id=hold_id,
            received=received,
            expires=_dt(expires_us),
            updated=updated,
        )

    def request(self) -> Request | None:
        """The validated request, for requests that passed verification (None otherwise)."""
        if self.claims_json is None:
            return None
        return parse_request_claims(json.loads(self.claims_json))

    def window(self) -> tuple[datetime, datetime] | None:
        try:
            request = self.request()
        except ValidationError:
            return None  # stored by a version whose models differed; the summary goes without
        start, end = getattr(request, "start", None), getattr(request, "end", None)
        return (start, end) if start is not None and end is not None else None

    def summary(self) -> dict[str, Any]:
        """What the owner sees (never upload URLs or relay tokens)."""
        window = self.window()
        return {
            "id": self.jti,
            "issuer": self.issuer,
            "cmd": self.cmd,
            "camera": self.camera,
            "case": self.case,
            "requester": self.requester,
            "reason": self.reason,
            "state": self.state.value,
            "code": self.code.value if self.code else None,
            "message": self.message,
            "received": self.received.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
            "window": [window[0].isoformat(), window[1].isoformat()] if window else None,
        }


class StaleRequest(Exception):
    """The request is already final: nothing more may happen to it."""


class RequestBook:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._conn = open_private_db(path)
        self._conn.executescript(_SCHEMA)
        cutoff = _us(clock() - KEEP_FINAL.total_seconds())
        self._conn.execute("DELETE FROM requests WHERE final = 1 AND updated_us < ?", (cutoff,))
        self._write_lock = threading.Lock()
        self._reader = open_private_db(path)
        self._read_lock = threading.Lock()

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._write_lock:
            self._conn.close()

    async def add_async(self, **fields: Any) -> RequestRecord:
        """`add` in a worker thread; returns once the row is durable."""
        return await asyncio.to_thread(lambda: self.add(**fields))

    async def advance_async(
        self,
        jti: str,
        state: EventState,
        *,
        code: RejectCode | None = None,
        message: str | None = None,
    ) -> RequestRecord:
        """`advance` in a worker thread; returns once the change is durable."""
        return await asyncio.to_thread(self.advance, jti, state, code=code, message=message)

    def add(
        self,
        *,
        jti: str,
        issuer: str,
        state: EventState,
        request: Request | None = None,
        cmd: str | None = None,
        camera: str | None = None,
        code: RejectCode | None = None,
        message: str | None = None,
        counted: bool = True,
        hold_id: str | None = None,
    ) -> RequestRecord:
        """Insert a request with its first state (seq 1). sqlite3.IntegrityError if known."""
        now = _us(self._clock())
        fields = request.model_dump(mode="json") if request is not None else {}
        with self._write_lock:
            row = self._conn.execute(
                f"INSERT INTO requests ({_COLUMNS}) VALUES "  # noqa: S608 (constant column list)
                f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
                (
                    jti,
                    issuer,
                    fields.get("cmd", cmd),
                    fields.get("camera", camera),
                    fields.get("case"),
                    fields.get("requester"),
                    fields.get("reason"),
                    json.dumps(fields) if request is not None else None,
                    state.value,
                    code.value if code else None,
                    message,
                    int(state in FINAL_STATES),
                    int(counted),
                    hold_id,
                    now,
                    request.exp * 1_000_000 if request is not None else None,
                    now,
                ),
            ).fetchall()  # stepped to the end: committed (and fsynced) inside the lock
        return RequestRecord._from_row(row[0])

    def advance(
        self,
        jti: str,
        state: EventState,
        *,
        code: RejectCode | None = None,
        message: str | None = None,
    ) -> RequestRecord:
        """Move a request that is not final to `state` and bump its seq; StaleRequest if final."""
        with self._write_lock:
            row = self._conn.execute(
                _ADVANCE,
                (
                    state.value,
                    code.value if code else None,
                    message,
                    int(state in FINAL_STATES),
                    _us(self._clock()),
                    jti,
                ),
            ).fetchall()  # stepped to the end: committed (and fsynced) inside the lock
        if not row:
            raise StaleRequest(jti)
        return RequestRecord._from_row(row[0])

    def get(self, jti: str) -> RequestRecord | None:
        with self._read_lock:
            row = self._reader.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE jti = ?",  # noqa: S608
                (jti,),
            ).fetchone()
        return None if row is None else RequestRecord._from_row(row)

    def __contains__(self, jti: object) -> bool:
        with self._read_lock:
            row = self._reader.execute("SELECT 1 FROM requests WHERE jti = ?", (jti,)).fetchone()
        return row is not None

    def _select(
        self, where: str, args: tuple[Any, ...] = (), *, limit: int = -1
    ) -> list[RequestRecord]:
        with self._read_lock:
            rows = self._reader.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE {where} "  # noqa: S608 (constant clauses)
                "ORDER BY received_us DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [RequestRecord._from_row(row) for row in rows]

    def pending(self) -> list[RequestRecord]:
        return self._select("final = 0 AND state = ?", (EventState.PENDING_APPROVAL.value,))

    def in_delivery(self) -> list[RequestRecord]:
        """Accepted or approved footage requests that are not final yet (to resume on start)."""
        return self._select(
            "final = 0 AND state != ? AND claims IS NOT NULL",
            (EventState.PENDING_APPROVAL.value,),
        )

    def recent(self, *, limit: int = 50, include_final: bool = True) -> list[RequestRecord]:
        return self._select("1 = 1" if include_final else "final = 0", limit=limit)

    def matching(self, prefix: str) -> list[RequestRecord]:
        """Requests whose id starts with `prefix` (the owner types a short id)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self._select("jti LIKE ? ESCAPE '\\'", (escaped + "%",), limit=10)

    def count_since(self, issuer: str, since: float) -> int:
        with self._read_lock:
            row = self._reader.execute(
                "SELECT COUNT(*) FROM requests WHERE issuer = ? AND received_us >= ? "
                "AND counted = 1",
                (issuer, _us(since)),
            ).fetchone()
        return int(row[0])
