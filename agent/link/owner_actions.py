"""The owner's actions on a running site, as one library: approve, deny, sharing, pause,
resume, ending a live session, and what the owner sees (requests, status).

The control socket (`agent.control.server`) calls `OwnerActions` for each owner command (the
owner's CLI and the owner's web page reach it through that socket, with the owner's side of
each change in `agent.control.owner_client`). Each action takes `by` (who, as the ledger names
them) and keeps the rules in this one place:

- the owner's choice is in the owner directory (`agent.policy.state`) before anything acts on
  it (`OwnerChoices`): the owner's CLI or page writes it there in its own process first, since
  the daemon's user may not; the daemon adopts what it finds, or writes it itself when it runs as
  root; `NotOwnerError` when neither can;
- then its ledger entry (`approval`, `denial`, `sharing_changed`, `paused`, `resumed`);
- then the request's events, the re-published registry or status, the live sessions it ends.

Who may act as the owner at all is the socket's check (`agent.control.auth`), made before any
of this runs. Errors the owner can act on are `OwnerActionError` (with a machine-readable
`code`), `PolicyError` (the configuration does not allow it) and `NotOwnerError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from agent.config import SharingMode
from agent.ledger import entries
from agent.link.requests_db import RequestBook, RequestRecord
from agent.link.service import RequestService
from agent.log import get_logger
from agent.policy import CameraSharing, Policy
from agent.wire import EventState, RejectCode

log = get_logger(__name__)

MIN_ID_PREFIX = 4
RECENT_FINAL = 10  # closed requests listed after the open ones


class OwnerActionError(Exception):
    """An owner command that cannot be carried out; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@runtime_checkable
class LiveControl(Protocol):
    """Live sessions in progress (`agent.tunnel.TunnelManager`); errors are OwnerActionError."""

    def sessions(self) -> list[dict[str, Any]]: ...

    async def stop_session(self, request_id: str, *, by: str) -> dict[str, Any]: ...

    async def pause(self, *, by: str) -> int: ...

    async def camera_unshared(self, camera: str, *, by: str) -> int: ...


def pending_named(request_id: str, requests: Iterable[tuple[str, str]]) -> str | None:
    """The full id of the one pending request that `request_id` names (the whole id, or at
    least its first 4 characters) among `requests` (id, state), or None: then the daemon's own
    lookup says what is wrong with it (not found, ambiguous, not pending)."""
    known = list(requests)
    exact = [item for item in known if item[0] == request_id]
    matches = exact or [item for item in known if item[0].startswith(request_id)]
    if len(request_id) < MIN_ID_PREFIX or len(matches) != 1:
        return None
    jti, state = matches[0]
    return jti if state == EventState.PENDING_APPROVAL.value else None


def find_request(book: RequestBook, request_id: str) -> RequestRecord:
    """The request `request_id` names: its id, or a prefix of at least 4 characters that only
    it starts with. OwnerActionError (`not_found`, `ambiguous`) says what is wrong."""
    if len(request_id) < MIN_ID_PREFIX:
        raise OwnerActionError("not_found", "give at least 4 characters of the request id")
    exact = book.get(request_id)
    if exact is not None:
        return exact
    matches = book.matching(request_id)
    if not matches:
        raise OwnerActionError("not_found", f"no request {request_id}")
    if len(matches) > 1:
        raise OwnerActionError(
            "ambiguous", f"{request_id} matches {len(matches)} requests; give more of the id"
        )
    return matches[0]


def sharing_json(sharing: CameraSharing) -> dict[str, Any]:
    return {
        "camera": sharing.camera,
        "name": sharing.name,
        "mode": sharing.mode.value,
        "live": sharing.live,
        "source": sharing.source,
    }


class OwnerChoices:
    """The owner's choices as written in the owner directory, by whichever process acts: the
    owner's CLI before it tells the daemon, the daemon's `OwnerActions` (which adopts a choice
    already recorded). NotOwnerError when this process may not write there."""

    def __init__(self, policy: Policy, *, by: str) -> None:
        self.policy = policy
        self.by = by

    def decide(
        self, jti: str, decision: Literal["approved", "denied"], *, reason: str = ""
    ) -> None:
        self.policy.record_decision(jti, decision, reason=reason, by=self.by)

    def set_sharing(
        self, camera: str, mode: SharingMode, *, live: bool | None
    ) -> tuple[CameraSharing, CameraSharing]:
        """(before, after); PolicyError if the configuration does not allow it."""
        return self.policy.set_sharing(camera, mode, live=live, by=self.by)

    def pause(self, *, until: datetime | None) -> None:
        self.policy.pause(until=until, by=self.by)

    def resume(self) -> bool:
        """False if sharing was not paused."""
        return self.policy.resume()


@dataclass(frozen=True)
class Paused:
    until: datetime | None  # None: until resumed
    live_stopped: int


class OwnerActions:
    def __init__(self, service: RequestService, *, live: LiveControl | None = None) -> None:
        """`live`: the live sessions (default: the service's `stream` handler, if it is one)."""
        self.service = service
        if live is None and isinstance(service.handlers.stream, LiveControl):
            live = service.handlers.stream
        self.live = live

    # Pending requests.

    def _find(self, request_id: str) -> RequestRecord:
        return find_request(self.service.book, request_id)

    def _pending(self, request_id: str) -> RequestRecord:
        record = self._find(request_id)
        if record.state is not EventState.PENDING_APPROVAL:
            raise OwnerActionError(
                "not_pending", f"request {record.jti} is {record.state.value}, not pending"
            )
        return record

    async def approve(self, request_id: str, *, by: str) -> RequestRecord:
        """Approve the pending request `request_id` (id or its first characters): delivery
        starts. OwnerActionError: not found, ambiguous, not pending, expired."""
        log.info("owner_approve", request=request_id, by=by)
        service = self.service
        async with service.lock:
            record = self._pending(request_id)
            # The owner directory's write (and its fsync) off the loop that feeds live video.
            choices = OwnerChoices(service.policy, by=by)
            await asyncio.to_thread(choices.decide, record.jti, "approved")
            if service.approval_overdue(record):
                await service.expire(record.jti)
                raise OwnerActionError("expired", f"request {record.jti} expired before approval")
            await service.ledger.append_async(
                entries.Approval(
                    jti=record.jti,
                    issuer=record.issuer,
                    cmd=record.cmd,
                    camera=record.camera,
                    by=by,
                )
            )
            updated = await service.states.transition(record.jti, EventState.APPROVED)
            assert updated is not None
            service.states.cancel_expiry(record.jti)
            service.spawn(service.start_delivery(updated))
            return updated

    async def deny(self, request_id: str, *, reason: str = "", by: str) -> RequestRecord:
        """Deny the pending request `request_id`; `reason` is told to the RTCC."""
        log.info("owner_deny", request=request_id, by=by)
        service = self.service
        async with service.lock:
            record = self._pending(request_id)
            choices = OwnerChoices(service.policy, by=by)
            await asyncio.to_thread(choices.decide, record.jti, "denied", reason=reason)
            await service.ledger.append_async(
                entries.Denial(
                    jti=record.jti,
                    issuer=record.issuer,
                    cmd=record.cmd,
                    camera=record.camera,
                    by=by,
                    reason=reason,
                )
            )
            updated = await service.states.transition(
                record.jti,
                EventState.REJECTED,
                code=RejectCode.DENIED_BY_OWNER,
                message=reason or "the owner denied the request",
            )
            assert updated is not None
            return updated

    # The owner's switches.

    async def set_sharing(
        self, camera: str, mode: SharingMode, *, live: bool | None, by: str
    ) -> CameraSharing:
        """Change one camera's sharing; live sessions of a camera that loses live view end.
        PolicyError if the configuration does not allow it."""
        service = self.service
        async with service.lock:
            choices = OwnerChoices(service.policy, by=by)
            before, after = await asyncio.to_thread(choices.set_sharing, camera, mode, live=live)
            await service.ledger.append_async(
                entries.SharingChanged(
                    camera=camera,
                    mode=after.mode.value,
                    live=after.live,
                    previous_mode=before.mode.value,
                    previous_live=before.live,
                    by=by,
                )
            )
        await service.publish(service.publisher.publish_registry)
        live_allowed = after.mode is SharingMode.INTEGRATED and after.live
        if self.live is not None and not live_allowed:
            await self.live.camera_unshared(after.camera, by=by)
        return after

    async def pause(self, *, duration: timedelta | None, by: str) -> Paused:
        """Refuse footage requests for `duration` (None: until resumed) and end the live
        sessions in progress."""
        service = self.service
        until = None if duration is None else service.states.now() + duration
        async with service.lock:
            await asyncio.to_thread(OwnerChoices(service.policy, by=by).pause, until=until)
            await service.ledger.append_async(entries.Paused(until=until, by=by))
            await service.arm_pause_timer()
        await service.publish(service.publisher.publish_status)
        stopped = await self.live.pause(by=by) if self.live is not None else 0
        return Paused(until=until, live_stopped=stopped)

    async def resume(self, *, by: str) -> bool:
        """False if sharing was not paused."""
        service = self.service
        async with service.lock:
            was_on = await service.end_pause(automatic=False, by=by)
        if was_on:
            await service.publish(service.publisher.publish_status)
        return was_on

    async def stop_live(self, request_id: str, *, by: str) -> dict[str, Any]:
        """End a live session now; its close and ledger entry follow on their own."""
        if self.live is None:
            raise OwnerActionError("not_found", "live view is not available in this agent")
        log.info("owner_live_stop", request=request_id, by=by)
        return await self.live.stop_session(request_id, by=by)

    # What the owner sees.

    def requests(self, *, include_final: bool = False, limit: int = 50) -> list[RequestRecord]:
        """The open requests (with the last few closed ones after them), or with
        `include_final` every recent request; newest first, at most `limit`."""
        book = self.service.book
        records = book.recent(include_final=include_final, limit=limit)
        if not include_final:
            records += [r for r in book.recent(include_final=True, limit=RECENT_FINAL) if r.final]
        return records

    def sharing(self) -> list[CameraSharing]:
        return self.service.policy.all_sharing()

    def status(self) -> dict[str, Any]:
        service = self.service
        head = service.ledger.head
        paused_until = service.policy.paused_until
        counters = service.counters
        return {
            "site": service.site_id,
            "paused": service.policy.paused,
            "paused_until": paused_until.isoformat() if paused_until else None,
            "pending": len(service.book.pending()),
            "in_delivery": len(service.book.in_delivery()),
            "ledger": {"seq": head.seq, "hash": head.hash},
            "since_start": {
                "handled": counters.handled,
                "unparseable": counters.unparseable,
                "failures": counters.failures,
                "rejected": dict(counters.rejected),
            },
            "cameras": [sharing_json(s) for s in service.policy.all_sharing()],
        }

    def live_sessions(self) -> list[dict[str, Any]]:
        return self.live.sessions() if self.live is not None else []
