"""`Job`: how a delivery handler (clip and snapshot upload in `agent.delivery`, live video in
`agent.tunnel`) reports on the one request it was handed.

Every report goes through the request's `RequestStates` (`agent.link.states`): an event to the
RTCC in order, the ledger entry of what left the site. After a final report (completed, ended,
failed) or once the request was cancelled, further reports are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agent.ledger import entries
from agent.link.requests_db import RequestRecord
from agent.link.states import RequestStates
from agent.wire import EventState, RejectCode


class Job:
    def __init__(self, states: RequestStates, record: RequestRecord) -> None:
        self._states = states
        self._record = record

    @property
    def request_id(self) -> str:
        return self._record.jti

    @property
    def is_final(self) -> bool:
        current = self._states.book.get(self._record.jti)
        return current is None or current.final

    @property
    def was_streaming(self) -> bool:
        """The request was already `streaming` when this job was made: a live session cut by
        a crash of the agent, handed over again at its restart."""
        return self._record.state is EventState.STREAMING

    async def progress(self, bytes_sent: int, bytes_total: int) -> None:
        await self._states.report(
            self.request_id, EventState.PROGRESS, bytes_sent=bytes_sent, bytes_total=bytes_total
        )

    async def streaming(self, started: datetime) -> None:
        await self._states.report(self.request_id, EventState.STREAMING, started=started)

    async def uploaded(self, nbytes: int, *, host: str) -> None:
        """Record bytes that left the site (ledger `upload`), e.g. the clip and its manifest."""
        async with self._states.lock:
            await self._states.record_outflow(
                entries.Upload, self._record, {"bytes": nbytes, "host": host}
            )

    async def sending(self, what: str, *, host: str, size: int, sha256: str) -> None:
        """Record, durably, that `what` (clip, snapshot, manifest) is about to go to `host`
        (ledger `upload_started`). LedgerError if it cannot be recorded: then nothing may be
        sent."""
        async with self._states.lock:
            await self._states.record_outflow(
                entries.UploadStarted,
                self._record,
                {"object": what, "host": host, "size": size, "sha256": sha256},
            )

    async def sent(self, details: Mapping[str, Any]) -> None:
        """Record how a `sending` ended (ledger `upload`): `details` has `object`, `outcome`,
        `bytes` (what actually left, every attempt counted), `size`, `host`, `sha256`, the
        attempts; who asked and for which case are added from the request."""
        async with self._states.lock:
            await self._states.record_outflow(entries.Upload, self._record, details)

    async def completed(self, *, manifest: str | None = None) -> None:
        await self._states.report(self.request_id, EventState.COMPLETED, manifest=manifest)

    async def ended(
        self,
        reason: str,
        *,
        seconds: float,
        started: datetime | None = None,
        bytes_sent: int | None = None,
        relay_host: str | None = None,
    ) -> None:
        """A live session is over (ledger `live_session`: when it started, how long, how many
        bytes went to which relay, and why it ended)."""
        data: dict[str, Any] = {"seconds": seconds, "reason": reason}
        if started is not None:
            data["started"] = started.isoformat()
        if bytes_sent is not None:
            data["bytes"] = bytes_sent
        if relay_host is not None:
            data["host"] = relay_host
        async with self._states.lock:
            await self._states.record_outflow(entries.LiveSession, self._record, data)
            await self._states.transition(self.request_id, EventState.ENDED, reason=reason)

    async def failed(self, code: RejectCode, message: str) -> None:
        await self._states.report(self.request_id, EventState.FAILED, code=code, message=message)
