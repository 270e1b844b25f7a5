"""The request service: payload → verify → ledger → policy → hold → event → delivery.

`RequestService.handle(payload)` is what the MQTT session calls for every message on the
site's `req` topic; it never raises. Per request:

1. `Verifier.verify` (see `agent.link.verify` for the order of checks). A payload that is not
   even a JWT is written to the ledger (`unparseable`) and counted; it gets no event. Any other
   rejection is written to the ledger (`request_received` with its code) and answered with a
   `rejected` event addressed to the recovered `jti`, unless that id already belongs to a
   request in the book: its event stream is that request's, and a second, contradicting stream
   under the same id (a replay, a QoS 1 redelivery, a forgery reusing a real id) must never
   reach the RTCC. Rejections whose signature verified are kept in the book, so a redelivered
   copy is not answered twice.
2. A verified request is written to the ledger, then judged by `Policy.evaluate`.
3. A clip request that passes places a **hold** on its window at once (also while it waits
   for approval), and so does a snapshot of a past moment (`at`: the minute before it to a
   second after); failing to place it rejects the request (`internal`) rather than accepting
   footage that retention might delete.
4. Integrated camera → `accepted` and the delivery handler starts; registry camera →
   `pending_approval` until the owner approves (`approved`, then delivery), denies (`rejected`,
   `denied_by_owner`) or the request's `exp` passes (`rejected`, `approval_expired`), across
   restarts: timers are re-armed by `start()`.
5. `cancel` ends a request of the same issuer that is not final (`cancelled`; the cancel itself
   is `completed`); an unknown target, or one of another issuer, is `rejected` / `malformed`.
   `inventory` re-publishes the registry and is `completed` with the listed cameras.

Every request gets events with `seq` from 1 and exactly one final state, nothing after it (the
book enforces it: a transition of a final request is refused). Holds are released when a
request reaches its final state. Those changes are `RequestStates` (`agent.link.states`),
shared with the owner's actions (`agent.link.owner_actions`: approve, deny, sharing, pause)
and with the `Job` each delivery handler reports through (`agent.link.job`); they all take
the service's `lock`, one change at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from agent.config import AgentConfig
from agent.identity import DeviceKey
from agent.ledger import Ledger, LedgerError, LedgerHead, entries
from agent.link.delivery import DeliveryHandlers
from agent.link.job import Job
from agent.link.ports import EventSink, FootageRequest, Holds, PendingNotifier, Publisher
from agent.link.replay import ReplayCache
from agent.link.requests_db import DB_FILE, RequestBook, RequestRecord, StaleRequest
from agent.link.states import RequestStates
from agent.link.verify import Rejection, Verified, Verifier
from agent.log import get_logger
from agent.policy import Decision, Policy
from agent.wire import EventState, RejectCode, Request
from agent.wire.requests import (
    CancelRequest,
    ClipRequest,
    InventoryRequest,
    SnapshotRequest,
    StreamRequest,
)

log = get_logger(__name__)

REPLAY_FILE = "replay.db"
LEDGER_DIR = "ledger"
RATE_WINDOW_S = 3600.0
SNAPSHOT_HOLD_BEFORE = timedelta(minutes=1)
_CHECKPOINT_TICK_S = 30.0


def _hold_id(jti: str) -> str:
    return f"request-{jti}"


def _hold_window(request: FootageRequest) -> tuple[datetime, datetime] | None:
    """The footage a request needs kept: a clip's window; for a snapshot of a past moment, the
    minute before it (its keyframe may be that far back) to a second after. Live needs none."""
    if isinstance(request, ClipRequest):
        return request.start, request.end
    if isinstance(request, SnapshotRequest) and request.at is not None:
        return request.at - SNAPSHOT_HOLD_BEFORE, request.at + timedelta(seconds=1)
    return None


def _plain_duration(span: timedelta) -> str:
    """`2d`, `1h30m`, `45s`: how the owner wrote it in the configuration."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _host(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None


def _received(request: Request, size: int, kid: str) -> entries.RequestReceived:
    data: dict[str, Any] = {}
    if isinstance(request, ClipRequest):
        data = {"window": [request.start, request.end], "upload_host": _host(request.upload.url)}
    elif isinstance(request, StreamRequest):
        data = {"relay_host": _host(request.relay.url), "max_seconds": request.max_seconds}
    elif isinstance(request, CancelRequest):
        data = {"target": request.target}
    return entries.RequestReceived(
        jti=request.jti,
        verified=True,
        issuer=request.iss,
        cmd=request.cmd,
        camera=getattr(request, "camera", None),
        case=getattr(request, "case", None),
        requester=request.requester,
        reason=request.reason,
        bytes=size,
        kid=kid,
        code=None,
        message=None,
        **data,
    )


@dataclass
class _Counters:
    handled: int = 0
    unparseable: int = 0
    failures: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class RequestService:
    def __init__(
        self,
        *,
        site_id: str,
        verifier: Verifier,
        book: RequestBook,
        policy: Policy,
        ledger: Ledger,
        holds: Holds,
        sink: EventSink,
        publisher: Publisher,
        handlers: DeliveryHandlers | None = None,
        notifier: PendingNotifier | None = None,
        approval_wait: timedelta | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.site_id = site_id
        self.verifier = verifier
        self.book = book
        self.policy = policy
        self.ledger = ledger
        self.holds = holds
        self.sink = sink
        self.publisher = publisher
        self.handlers = handlers or DeliveryHandlers()
        self.notifier = notifier
        self.approval_wait = approval_wait
        self._clock = clock
        self.states = RequestStates(
            site_id=site_id, book=book, ledger=ledger, holds=holds, sink=sink, clock=clock
        )
        # One lock for every change of a request, whoever makes it (see agent.link.states).
        self.lock = self._lock = self.states.lock
        self._pause_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._started = False
        self.counters = _Counters()

    @classmethod
    def open(
        cls,
        config: AgentConfig,
        *,
        device_key: DeviceKey,
        holds: Holds,
        sink: EventSink,
        publisher: Publisher,
        handlers: DeliveryHandlers | None = None,
        notifier: PendingNotifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> RequestService:
        """Open the replay cache, request book, owner policy and ledger under `state_dir`.

        Raises JwksError (no usable RTCC keys), OwnerStateError, LedgerError or sqlite3.Error
        with a message that names the file.
        """
        state = Path(config.state_dir)
        opened: list[ReplayCache | RequestBook | Ledger] = []
        try:
            replay = ReplayCache(state / REPLAY_FILE, clock=clock)
            opened.append(replay)
            verifier = Verifier.from_config(config, replay, clock=clock)
            book = RequestBook(state / DB_FILE, clock=clock)
            opened.append(book)
            policy = Policy.open(config, clock=clock)
            ledger = Ledger.open(state / LEDGER_DIR, signer=device_key, clock=clock)
        except BaseException:
            for item in opened:
                item.close()
            raise
        return cls(
            site_id=config.site.id,
            verifier=verifier,
            book=book,
            policy=policy,
            ledger=ledger,
            holds=holds,
            sink=sink,
            publisher=publisher,
            handlers=handlers,
            notifier=notifier,
            approval_wait=config.policy.approval_wait,
            clock=clock,
        )

    # Life cycle.

    async def start(self) -> None:
        """Re-arm what a restart interrupted: pause end, approval expiries, deliveries."""
        self._started = True
        async with self._lock:
            await self.arm_pause_timer()
            for record in self.book.pending():
                await self._arm_expiry(record)
            for record in self.book.in_delivery():
                self.spawn(self.start_delivery(record))
        self._ticker = asyncio.create_task(self._tick(), name="ledger-checkpoints")

    async def close(self) -> None:
        """Stop timers and tasks, checkpoint and close the ledger, close the databases."""
        self.states.cancel_all_expiries()
        if self._pause_timer is not None:
            self._pause_timer.cancel()
        tasks = [*self._tasks, *([self._ticker] if self._ticker else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Closing the last connection to a WAL database checkpoints it (an fsync): not on the loop.
        await self.ledger.close_async()
        await asyncio.to_thread(self.book.close)
        await asyncio.to_thread(self.verifier.replay.close)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_CHECKPOINT_TICK_S)
            try:
                await asyncio.to_thread(self.ledger.checkpoint_if_due)
            except LedgerError as exc:
                log.error("ledger_checkpoint_failed", error=str(exc))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def ledger_head(self) -> LedgerHead:
        return self.ledger.head

    # Requests from the RTCC.

    async def handle(self, payload: bytes) -> bool:
        """Process one request payload. Never raises: every outcome is an event or a log line.

        True once the payload's ledger entry is durable: only then may the broker be told it
        arrived (MQTT acknowledgement). False if no entry could be written: nothing was done,
        and the payload should stay unacknowledged so that the broker delivers it again.
        """
        return await self._answer(payload, self._handle)

    async def refuse_busy(self, payload: bytes) -> bool:
        """Refuse a payload the site has no room to handle now (`busy`), with its ledger entry
        and, when it names a request, a `rejected` event; True once the entry is durable."""
        return await self._answer(payload, self._refuse_busy)

    async def _answer(self, payload: bytes, process: Callable[[bytes], Awaitable[bool]]) -> bool:
        """`process(payload)` under the lock, counted; never raises (see `handle`)."""
        try:
            async with self._lock:
                self.counters.handled += 1
                return await process(payload)
        except LedgerError as exc:
            log.error("request_not_recorded", bytes=len(payload), error=str(exc))
            return False
        except Exception:
            # A bug, not the disk: acknowledged anyway, or the broker would hand the same
            # payload back forever and nothing after it would be handled.
            self.counters.failures += 1
            log.exception("request_handling_failed", bytes=len(payload))
            return True

    async def _refuse_busy(self, payload: bytes) -> bool:
        result = self.verifier.verify(payload, consume=False)
        if isinstance(result, Rejection):
            return await self._rejected_unverified(result, payload)
        busy = _refusal(
            result, RejectCode.BUSY, "the site has too many requests waiting; send it again later"
        )
        # Final like any other refusal (kept in the book): a copy that comes later is a replay,
        # never a second, contradicting answer under the same id.
        return await self._rejected_unverified(busy, payload)

    async def _handle(self, payload: bytes) -> bool:
        result = self.verifier.verify(payload, consume=False)
        if isinstance(result, Rejection):
            return await self._rejected_unverified(result, payload)
        request = result.request
        if request.jti in self.book:
            replay = _refusal(result, RejectCode.REPLAYED, "this request id was already used")
            return await self._rejected_unverified(replay, payload)
        try:
            await self.ledger.append_async(_received(request, result.size, result.kid))
        except LedgerError as exc:
            log.error("request_not_recorded", request=request.jti, error=str(exc))
            return False
        # Its entry is durable: from here on the id is used, and the request is answered.
        await self.verifier.consume_async(request)
        try:
            await self._judge(request)
        except LedgerError as exc:
            await self._unrecordable(request, exc)
        return True

    async def _judge(self, request: Request) -> None:
        recent = 0
        if not isinstance(request, CancelRequest):
            recent = self.book.count_since(request.iss, self._clock() - RATE_WINDOW_S)
        decision = self.policy.evaluate(request, recent_requests=recent)
        if decision.outcome == "rejected":
            await self._open_final(request, EventState.REJECTED, decision)
        elif isinstance(request, CancelRequest):
            await self._cancel(request)
        elif isinstance(request, InventoryRequest):
            await self._inventory(request)
        else:
            await self._admit(request, decision)

    async def _unrecordable(self, request: Request, exc: LedgerError) -> None:
        """The request's arrival is in the ledger but its decision could not be written: refuse
        it (nothing may leave the site without its entry), and release any hold it placed."""
        log.error("decision_not_recorded", request=request.jti, error=str(exc))
        self.counters.rejected[RejectCode.INTERNAL.value] += 1
        message = "the site cannot write its ledger; nothing was done"
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.holds.release_hold, _hold_id(request.jti))
        record = self.book.get(request.jti)
        if record is None:
            await self.book.add_async(
                jti=request.jti,
                issuer=request.iss,
                state=EventState.REJECTED,
                request=request,
                code=RejectCode.INTERNAL,
                message=message,
            )
            await self.states.emit(
                request.jti, 1, EventState.REJECTED, code=RejectCode.INTERNAL, message=message
            )
        elif not record.final:
            with contextlib.suppress(StaleRequest):
                updated = await self.book.advance_async(
                    request.jti, EventState.FAILED, code=RejectCode.INTERNAL, message=message
                )
                await self.states.emit(
                    request.jti,
                    updated.seq,
                    EventState.FAILED,
                    code=RejectCode.INTERNAL,
                    message=message,
                )

    async def _rejected_unverified(self, rejection: Rejection, payload: bytes) -> bool:
        """Record a refusal before anything else; False (and nothing else done) if the entry
        could not be written."""
        code = rejection.code
        try:
            if not rejection.parseable:
                await self.ledger.append_async(
                    entries.Unparseable(
                        bytes=rejection.size,
                        sha256=hashlib.sha256(payload).hexdigest(),
                        code=code.value,
                        message=rejection.message,
                    )
                )
            else:
                await self.ledger.append_async(
                    entries.RequestReceived(
                        jti=rejection.jti,
                        verified=rejection.verified,
                        issuer=rejection.issuer,
                        cmd=rejection.cmd,
                        camera=rejection.camera,
                        bytes=rejection.size,
                        kid=rejection.kid,
                        code=code.value,
                        message=rejection.message,
                    )
                )
        except LedgerError as exc:
            log.error("request_not_recorded", request=rejection.jti, error=str(exc))
            return False
        self.counters.rejected[code.value] += 1
        if not rejection.parseable:
            self.counters.unparseable += 1
            log.warning("request_unparseable", bytes=rejection.size, error=rejection.message)
            return True
        log.warning(
            "request_rejected", request=rejection.jti, code=code.value, error=rejection.message
        )
        if rejection.jti is None:
            return True
        if rejection.jti in self.book:
            log.info("rejection_not_sent", request=rejection.jti, reason="id has a request")
            return True
        if rejection.verified:
            await self.book.add_async(
                jti=rejection.jti,
                issuer=rejection.issuer or "",
                state=EventState.REJECTED,
                cmd=rejection.cmd,
                camera=rejection.camera,
                code=code,
                message=rejection.message,
            )
        await self.states.emit(
            rejection.jti, 1, EventState.REJECTED, code=code, message=rejection.message
        )
        return True

    async def _open_final(
        self,
        request: Request,
        state: EventState,
        decision: Decision,
        **extra: Any,
    ) -> None:
        """A request whose first event is also its last (rejected, or done at once)."""
        counted = not (
            isinstance(request, CancelRequest) or decision.code is RejectCode.RATE_LIMITED
        )
        await self._ledger_decision(request, decision)  # before the book: see _admit
        await self.book.add_async(
            jti=request.jti,
            issuer=request.iss,
            state=state,
            request=request,
            code=decision.code,
            message=decision.message or None,
            counted=counted,
        )
        if decision.code is not None:
            self.counters.rejected[decision.code.value] += 1
        await self.states.emit(
            request.jti,
            1,
            state,
            code=decision.code,
            message=decision.message or None,
            **extra,
        )

    async def _ledger_decision(self, request: Request, decision: Decision) -> None:
        await self.ledger.append_async(
            entries.Decision(
                jti=request.jti,
                issuer=request.iss,
                cmd=request.cmd,
                camera=getattr(request, "camera", None),
                outcome=decision.outcome,
                code=decision.code.value if decision.code else None,
                message=decision.message or None,
            )
        )

    async def _admit(self, request: FootageRequest, decision: Decision) -> None:
        hold_id = None
        window = _hold_window(request)
        if window is not None:
            hold_id = _hold_id(request.jti)
            start, end = window
            try:
                await asyncio.to_thread(
                    self.holds.place_hold,
                    hold_id,
                    request.camera,
                    start,
                    end,
                    reason=f"request {request.jti} case {request.case}",
                )
            except Exception:
                log.exception("hold_failed", request=request.jti)
                failed = Decision.reject(RejectCode.INTERNAL, "could not protect the footage")
                await self._open_final(request, EventState.REJECTED, failed)
                return
            await self.ledger.append_async(
                entries.HoldPlaced(
                    hold_id=hold_id, jti=request.jti, camera=request.camera, start=start, end=end
                )
            )
        state = EventState(decision.outcome)
        # The decision is durable before the book holds the request: a request in the book in
        # delivery is resumed after a restart, and must never be delivered without its entry.
        await self._ledger_decision(request, decision)
        record = await self.book.add_async(
            jti=request.jti, issuer=request.iss, state=state, request=request, hold_id=hold_id
        )
        await self.states.emit(request.jti, 1, state)
        if state is EventState.PENDING_APPROVAL:
            await self._arm_expiry(record)
            if self.notifier is not None:
                summary = record.summary()
                deadline = self.approval_deadline(record)
                summary["answer_by"] = deadline.isoformat() if deadline else None
                self.spawn(self.notifier.notify(summary))
        else:
            self.spawn(self.start_delivery(record))

    async def _cancel(self, request: CancelRequest) -> None:
        target = self.book.get(request.target)
        if target is None or target.issuer != request.iss or target.claims_json is None:
            refused = Decision.reject(
                RejectCode.MALFORMED, f"no request {request.target} of this issuer to cancel"
            )
            await self._open_final(request, EventState.REJECTED, refused)
            return
        if target.final:
            done = Decision("accepted", message=f"request already {target.state.value}")
            await self._open_final(request, EventState.COMPLETED, done)
            return
        was_delivering = target.state is not EventState.PENDING_APPROVAL
        await self.states.transition(
            target.jti, EventState.CANCELLED, message=f"cancelled by request {request.jti}"
        )
        if was_delivering and target.cmd is not None:
            handler = self.handlers.for_command(target.cmd)
            self.spawn(self._guarded(lambda: handler.cancel(target.jti), target.jti, "cancel"))
        await self._open_final(request, EventState.COMPLETED, Decision("accepted"))

    async def _inventory(self, request: InventoryRequest) -> None:
        try:
            await self.publisher.publish_registry()
            cameras = await self.publisher.cameras()
        except Exception:
            log.exception("inventory_failed")
            failed = Decision.reject(RejectCode.INTERNAL, "could not list the cameras")
            await self._open_final(request, EventState.REJECTED, failed)
            return
        await self._open_final(request, EventState.COMPLETED, Decision("accepted"), cameras=cameras)

    # Pending approval.

    def approval_deadline(self, record: RequestRecord) -> datetime | None:
        """When a pending request stops waiting for the owner: its own `exp` (up to 7 days
        for a clip), or sooner if the owner set `policy.approval_wait` (counted from its
        arrival, so that a restart neither shortens nor lengthens it)."""
        deadline = record.expires
        if self.approval_wait is not None:
            bound = record.received + self.approval_wait
            deadline = bound if deadline is None else min(deadline, bound)
        return deadline

    def approval_overdue(self, record: RequestRecord) -> bool:
        deadline = self.approval_deadline(record)
        return deadline is not None and self._clock() >= deadline.timestamp()

    async def _arm_expiry(self, record: RequestRecord) -> None:
        deadline = self.approval_deadline(record)
        if deadline is None:
            return
        delay = deadline.timestamp() - self._clock()
        if delay <= 0:
            await self.expire(record.jti)
            return
        loop = asyncio.get_running_loop()
        self.states.expiries[record.jti] = loop.call_later(
            delay, lambda: self.spawn(self._expire_locked(record.jti))
        )

    async def _expire_locked(self, jti: str) -> None:
        async with self._lock:
            await self.expire(jti)

    async def expire(self, jti: str) -> None:
        """Refuse `jti` as `approval_expired` if it still waits; the caller holds `lock`."""
        record = self.book.get(jti)
        if record is None or record.state is not EventState.PENDING_APPROVAL:
            return
        expired = record.expires is not None and self._clock() >= record.expires.timestamp()
        message = (
            "the owner did not answer before the request expired"
            if expired or self.approval_wait is None
            else f"the owner did not answer within the site's approval wait "
            f"({_plain_duration(self.approval_wait)})"
        )
        await self.states.transition(
            jti, EventState.REJECTED, code=RejectCode.APPROVAL_EXPIRED, message=message
        )

    # Delivery.

    async def start_delivery(self, record: RequestRecord) -> None:
        """Hand an accepted or approved request to its delivery handler, with its `Job`."""
        try:
            request = record.request()
        except ValidationError:
            log.exception("stored_request_invalid", request=record.jti)
            async with self._lock:
                await self.states.transition(
                    record.jti,
                    EventState.FAILED,
                    code=RejectCode.INTERNAL,
                    message="the stored request could not be read back",
                )
            return
        if request is None or isinstance(request, CancelRequest | InventoryRequest):
            return
        if isinstance(request, StreamRequest):
            request = request.model_copy(update={"max_seconds": self.policy.live_cap(request)})
        handler = self.handlers.for_command(request.cmd)
        job = Job(self.states, record)
        await self._guarded(lambda: handler.start(request, job), record.jti, "start")

    async def _guarded(
        self, call: Callable[[], Coroutine[Any, Any, None]], jti: str, what: str
    ) -> None:
        try:
            await call()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery_handler_failed", request=jti, call=what)
            async with self._lock:
                await self.states.transition(
                    jti,
                    EventState.FAILED,
                    code=RejectCode.INTERNAL,
                    message=f"delivery {what} failed",
                )

    # The end of the owner's pause (set by `agent.link.owner_actions`), by the owner or by
    # its timer; the caller holds `lock`.

    async def end_pause(self, *, automatic: bool, by: str) -> bool:
        """Switch the pause off, with its ledger entry; False if it was not on."""
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        was_on = await asyncio.to_thread(self.policy.resume)
        if was_on:
            await self.ledger.append_async(entries.Resumed(automatic=automatic, by=by))
        return was_on

    async def arm_pause_timer(self) -> None:
        """(Re)start the timer that ends a timed pause; ends one already over."""
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        until = self.policy.pause_expiry
        if until is None:
            return
        delay = until.timestamp() - self._clock()
        if delay <= 0:
            await self.end_pause(automatic=True, by="timer")
            return
        loop = asyncio.get_running_loop()
        self._pause_timer = loop.call_later(delay, lambda: self.spawn(self._auto_resume(until)))

    async def _auto_resume(self, until: datetime) -> None:
        async with self._lock:
            if self.policy.pause_expiry != until:
                return  # the owner changed the pause since this timer was armed
            await self.end_pause(automatic=True, by="timer")
        await self.publish(self.publisher.publish_status)

    @staticmethod
    async def publish(action: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Re-publish registry or status; a failure is logged, never raised."""
        try:
            await action()
        except Exception:
            log.exception("publish_failed")


def _refusal(result: Verified, code: RejectCode, message: str) -> Rejection:
    """A refusal of a request whose signature verified (it names the request)."""
    request = result.request
    return Rejection(
        code,
        message,
        result.size,
        verified=True,
        jti=request.jti,
        kid=result.kid,
        issuer=request.iss,
        cmd=request.cmd,
        camera=getattr(request, "camera", None),
    )
