"""Where a request stands, and every change of it: the request book, the ledger entry a final
state needs, the event the RTCC receives, the hold released at the end.

`RequestStates` is shared by the three that move requests along: the request service (the
first event and cancellations), the owner's actions (approve, deny) and each delivery `Job`
(progress, streaming, completed, ended, failed). Its `lock` orders them: one change at a time,
so that a request's events keep `seq` from 1 without gaps and nothing follows a final state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agent.ledger import Ledger, entries
from agent.link.finish import run_to_end
from agent.link.ports import EventSink, Holds
from agent.link.requests_db import RequestBook, RequestRecord, StaleRequest
from agent.log import get_logger
from agent.wire import FINAL_STATES, Event, EventState, RejectCode

log = get_logger(__name__)

_MAX_MESSAGE = 2000


class RequestStates:
    def __init__(
        self,
        *,
        site_id: str,
        book: RequestBook,
        ledger: Ledger,
        holds: Holds,
        sink: EventSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.site_id = site_id
        self.book = book
        self.ledger = ledger
        self.holds = holds
        self.sink = sink
        self.clock = clock
        self.lock = asyncio.Lock()
        # Approval expiries of pending requests: cancelled when the request leaves the state.
        self.expiries: dict[str, asyncio.TimerHandle] = {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def cancel_expiry(self, jti: str) -> None:
        timer = self.expiries.pop(jti, None)
        if timer is not None:
            timer.cancel()

    def cancel_all_expiries(self) -> None:
        for handle in self.expiries.values():
            handle.cancel()
        self.expiries.clear()

    async def report(self, jti: str, state: EventState, **fields: Any) -> RequestRecord | None:
        """`transition` under the lock."""
        async with self.lock:
            return await self.transition(jti, state, **fields)

    async def transition(
        self,
        jti: str,
        state: EventState,
        *,
        code: RejectCode | None = None,
        message: str | None = None,
        **extra: Any,
    ) -> RequestRecord | None:
        """Advance a request that is not final; None (and nothing emitted) if it is final.
        The caller holds `lock`.

        A final state is written to the ledger before the book takes it: if the entry cannot
        be written (LedgerError), the request stays where it was (and is resumed after a
        restart) rather than end without a record."""
        current = self.book.get(jti)
        if current is None or current.final:
            log.info("report_after_final", request=jti, state=state.value)
            return None
        if state in FINAL_STATES:
            await self.ledger.append_async(
                entries.RequestClosed(
                    jti=current.jti,
                    issuer=current.issuer,
                    cmd=current.cmd,
                    camera=current.camera,
                    state=state.value,
                    code=code.value if code else None,
                    message=message,
                )
            )

        async def advance_and_announce() -> RequestRecord | None:
            try:
                record = await self.book.advance_async(jti, state, code=code, message=message)
            except StaleRequest:
                log.info("report_after_final", request=jti, state=state.value)
                return None
            if record.final:
                await self._closed(record)
            await self.emit(jti, record.seq, state, code=code, message=message, **extra)
            return record

        # The book takes the state in a worker thread: its event must follow even if the
        # caller is cancelled meanwhile (see `agent.link.finish`).
        return await run_to_end(advance_and_announce())

    async def _closed(self, record: RequestRecord) -> None:
        self.cancel_expiry(record.jti)
        if record.hold_id is not None:
            try:
                released = await asyncio.to_thread(self.holds.release_hold, record.hold_id)
            except Exception:
                log.exception("hold_release_failed", hold=record.hold_id)
                released = False
            await self.ledger.append_async(
                entries.HoldReleased(hold_id=record.hold_id, jti=record.jti, released=released)
            )

    async def emit(
        self,
        jti: str,
        seq: int,
        state: EventState,
        *,
        code: RejectCode | None = None,
        message: str | None = None,
        **extra: Any,
    ) -> None:
        """Send the RTCC one event of `jti`; never raises (a failure is logged)."""
        try:
            event = Event(
                iss=self.site_id,
                iat=int(self.clock()),
                req=jti,
                state=state,
                seq=seq,
                code=code,
                message=message[:_MAX_MESSAGE] if message else message,
                **extra,
            )
        except ValidationError as exc:
            log.error("event_invalid", request=jti, state=state.value, error=str(exc))
            return
        try:
            await self.sink.emit(event)
        except Exception:
            log.exception("event_emit_failed", request=jti, state=state.value)

    async def record_outflow(
        self, model: type[entries.OutflowEntry], record: RequestRecord, data: Mapping[str, Any]
    ) -> None:
        """A ledger entry of what left the site for `record`. The caller holds `lock`."""
        # Who asked and for which case, in the entry itself: the owner's report of what left
        # the site should not need a join with the request's own entry.
        about = {
            "jti": record.jti,
            "issuer": record.issuer,
            "requester": record.requester,
            "case": record.case,
            "camera": record.camera,
        }
        await self.ledger.append_async(model.model_validate({**about, **data}))
