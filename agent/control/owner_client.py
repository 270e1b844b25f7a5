"""The owner's side of the control socket, as one library for the owner's CLI and the owner's
page: what the owner reads (status, requests, sharing, pictures, the activity record) and what
the owner changes (approve, deny, sharing, pause, resume, ending a live session).

A change follows the same steps whoever makes it, written once here (`_approve`, `_pause`, …):
the daemon must be running (so nothing is written for a daemon that is not there), then the
owner's choice is recorded in the owner directory (`OwnerChoices`; only root and the owner group
can write there, so this runs in the owner's own process, never the daemon's), then the daemon
is told, checks the caller's identity on its socket (SO_PEERCRED) and adopts the choice.

The steps are plain generators that yield what they need done — a control call (`Call`) or a
write to the owner directory (`Write`) — and two drivers carry them out: `OwnerClient` (blocking,
for the CLI) and `AsyncOwnerClient` (asyncio, for the page: control calls over
`AsyncControlClient`, owner-directory writes in `asyncio.to_thread`).

`via="page"` marks the page's changes: the daemon adds "through the owner's page" to the
ledger's `by`, and so does the owner's file; who acted is still the process's own uid.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.config import AgentConfig, SharingMode
from agent.control.async_client import AsyncControlClient
from agent.control.auth import Via, by_label, describe_uid
from agent.control.client import ControlClient
from agent.link.owner_actions import OwnerChoices, pending_named
from agent.policy import Policy

Result = Any


@dataclass(frozen=True)
class Call:
    """Send one control command; the step receives its result."""

    cmd: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Write:
    """Record the owner's choice in the owner directory (blocks on the disk)."""

    change: Callable[[OwnerChoices], object]


Step = Call | Write
Steps = Generator[Step, Any, Result]


def _owner_call(via: Via | None, cmd: str, **args: Any) -> Call:
    return Call(cmd, {**args, "via": via} if via is not None else args)


def _pending_id(request_id: str) -> Generator[Step, Any, str | None]:
    """The full id of the one pending request `request_id` names, or None (the daemon then
    says what is wrong with it)."""
    records = yield Call("requests", {"all": True, "limit": 1000})
    return pending_named(request_id, ((r["id"], r["state"]) for r in records))


def _approve(request_id: str, via: Via | None) -> Steps:
    yield Call("status")  # DaemonNotRunning before anything is written
    jti = yield from _pending_id(request_id)
    if jti is not None:
        yield Write(lambda choices: choices.decide(jti, "approved"))
    return (yield _owner_call(via, "approve", id=jti or request_id))


def _deny(request_id: str, reason: str, via: Via | None) -> Steps:
    yield Call("status")
    jti = yield from _pending_id(request_id)
    if jti is not None:
        yield Write(lambda choices: choices.decide(jti, "denied", reason=reason))
    return (yield _owner_call(via, "deny", id=jti or request_id, reason=reason))


def _set_sharing(camera: str, mode: SharingMode, live: bool | None, via: Via | None) -> Steps:
    yield Call("status")
    before_after = yield Write(lambda choices: choices.set_sharing(camera, mode, live=live))
    _before, after = before_after
    return (yield _owner_call(via, "sharing_set", camera=camera, mode=mode.value, live=after.live))


def _pause(seconds: float | None, via: Via | None) -> Steps:
    if seconds is not None and seconds <= 0:
        raise ValueError("a pause must last longer than zero")
    yield Call("status")
    until = None if seconds is None else datetime.now(UTC) + timedelta(seconds=seconds)
    yield Write(lambda choices: choices.pause(until=until))
    return (yield _owner_call(via, "pause", seconds=seconds))


def _resume(via: Via | None) -> Steps:
    yield Call("status")
    yield Write(lambda choices: choices.resume())
    return (yield _owner_call(via, "resume"))


def _live_stop(request_id: str, via: Via | None) -> Steps:
    # Nothing of the owner's to record: a live session ends now and is not a standing choice.
    return (yield _owner_call(via, "live_stop", id=request_id))


class _Base:
    def __init__(self, config: AgentConfig, *, via: Via | None = None) -> None:
        self.config = config
        self.via = via
        self.by = by_label(describe_uid(os.geteuid()), via)

    def _write(self, step: Write) -> object:
        return step.change(OwnerChoices(Policy.open(self.config), by=self.by))


class OwnerClient(_Base):
    """Blocking: the owner's CLI. Errors: DaemonNotRunning, ControlError (the daemon's refusal,
    `.code` e.g. `not_owner`), NotOwnerError (this process may not write the owner directory),
    PolicyError, OwnerStateError, ValueError."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        client: ControlClient | None = None,
        via: Via | None = None,
    ) -> None:
        super().__init__(config, via=via)
        self.client = client or ControlClient(config.control.socket)

    def _run(self, steps: Steps) -> Result:
        try:
            step = next(steps)
            while True:
                if isinstance(step, Call):
                    answer = self.client.call(step.cmd, **step.args)
                else:
                    answer = self._write(step)
                step = steps.send(answer)
        except StopIteration as done:
            return done.value

    # What the owner reads.

    def call(self, cmd: str, **args: Any) -> Result:
        return self.client.call(cmd, **args)

    # What the owner changes.

    def approve(self, request_id: str) -> Result:
        return self._run(_approve(request_id, self.via))

    def deny(self, request_id: str, *, reason: str = "") -> Result:
        return self._run(_deny(request_id, reason, self.via))

    def set_sharing(self, camera: str, mode: SharingMode, *, live: bool | None) -> Result:
        return self._run(_set_sharing(camera, mode, live, self.via))

    def pause(self, *, seconds: float | None) -> Result:
        return self._run(_pause(seconds, self.via))

    def resume(self) -> Result:
        return self._run(_resume(self.via))

    def live_stop(self, request_id: str) -> Result:
        return self._run(_live_stop(request_id, self.via))


class AsyncOwnerClient(_Base):
    """The same, from asyncio (the owner's page); the same errors."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        client: AsyncControlClient | None = None,
        via: Via | None = None,
    ) -> None:
        super().__init__(config, via=via)
        self.client = client or AsyncControlClient(config.control.socket)

    async def _run(self, steps: Steps) -> Result:
        try:
            step = next(steps)
            while True:
                if isinstance(step, Call):
                    answer = await self.client.call(step.cmd, **step.args)
                else:
                    # The owner directory's write fsyncs and may wait for its file lock.
                    answer = await asyncio.to_thread(self._write, step)
                step = steps.send(answer)
        except StopIteration as done:
            return done.value

    # What the owner reads.

    async def call(self, cmd: str, **args: Any) -> Result:
        return await self.client.call(cmd, **args)

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("status")
        return result

    async def requests(self, *, include_final: bool = False, limit: int = 50) -> list[Any]:
        result: list[Any] = await self.call(
            "requests", all=include_final, limit=limit, sent=include_final
        )
        return result

    async def sharing(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("sharing")
        return result

    async def picture(self, camera: str) -> str | None:
        """The camera's latest picture, base64-encoded JPEG; None when none was recorded."""
        result: dict[str, Any] = await self.call("picture", camera=camera)
        jpeg = result.get("jpeg")
        return jpeg if isinstance(jpeg, str) else None

    async def activity(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("activity")
        return result

    # What the owner changes.

    async def approve(self, request_id: str) -> Result:
        return await self._run(_approve(request_id, self.via))

    async def deny(self, request_id: str, *, reason: str = "") -> Result:
        return await self._run(_deny(request_id, reason, self.via))

    async def set_sharing(self, camera: str, mode: SharingMode, *, live: bool | None) -> Result:
        return await self._run(_set_sharing(camera, mode, live, self.via))

    async def pause(self, *, seconds: float | None) -> Result:
        return await self._run(_pause(seconds, self.via))

    async def resume(self) -> Result:
        return await self._run(_resume(self.via))

    async def live_stop(self, request_id: str) -> Result:
        return await self._run(_live_stop(request_id, self.via))
