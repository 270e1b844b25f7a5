"""Live sessions in progress: the request service's `stream` delivery handler, and what the owner
sees (`rtcc-edge status`) and ends (`rtcc-edge live stop ID`, `rtcc-edge pause`, a sharing
change that takes live view away from a camera).

    manager = TunnelManager.from_config(config, live=daemon.live)
    handlers = DeliveryHandlers(stream=manager)          # the request service starts sessions
    ControlServer(path, service, live=manager)           # the owner's status / live stop / pause
    daemon components += [TunnelComponent(manager)]      # stops every session at shutdown

Each session runs in its own task (`agent.tunnel.session.LiveSession`), apart from the
recorders: nothing a tunnel does can block or slow recording.

The owner's commands and the RTCC's cancel never wait on a session's network I/O: they tell the
session to stop and wait only until it has stopped sending (a task switch, bounded by
`STOP_WAIT_S`), never for the websocket's close or the relay; the session closes and writes its
ledger entry on its own. Only `close()` (the daemon stopping) waits for every session to have
ended *and* reported, so their `live_session` entries are in the ledger before it is closed.

A session starts only if the owner's policy still allows it at that moment (`admission`: a
pause or a sharing change may have come since the request was accepted, or across a restart),
and a request that was already streaming when the agent died is ended, not started again with
a fresh `max_seconds`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.config import AgentConfig
from agent.link.job import Job
from agent.link.owner_actions import OwnerActionError
from agent.link.ports import FootageRequest
from agent.log import get_logger
from agent.policy import Policy
from agent.recorder.live import LiveHub
from agent.tunnel.client import relay_ssl_context
from agent.tunnel.session import (
    AGENT_STOPPED,
    CANCELLED,
    OWNER_STOPPED,
    PAUSED,
    SHARING_CHANGED,
    LiveSession,
    TunnelSettings,
)
from agent.tunnel.sources import LiveSources
from agent.wire import RejectCode
from agent.wire.requests import StreamRequest

log = get_logger(__name__)

# The owner's policy as it is *now*, for a request accepted a moment (or a restart) ago: a
# refusal (code and message), or None.
Admission = Callable[[StreamRequest], tuple[RejectCode, str] | None]


def policy_admission(current: Callable[[], Policy | None]) -> Admission:
    """An `Admission` asking the owner's policy (`current()`, None while the link is not up:
    then nothing may start)."""

    def admit(request: StreamRequest) -> tuple[RejectCode, str] | None:
        policy = current()
        if policy is None:
            return RejectCode.INTERNAL, "the agent's request service is not running"
        decision = policy.evaluate(request, recent_requests=0)  # rate: counted at acceptance
        if decision.outcome == "rejected" and decision.code is not None:
            return decision.code, decision.message
        return None

    return admit


_MIN_PREFIX = 4
STOP_WAIT_S = 0.5  # an owner's stop waits this long at most for the pump to stop
CLOSE_WAIT_S = 20.0  # the daemon's stop waits this long for sessions to end and report


class TunnelManager:
    def __init__(
        self,
        sources: LiveSources,
        *,
        allowed_relay_hosts: Sequence[str],
        ca_files: Sequence[Path] = (),
        settings: TunnelSettings | None = None,
        clock: Callable[[], float] = time.time,
        admission: Admission | None = None,
    ) -> None:
        self.sources = sources
        self.admission = admission
        self.allowed_relay_hosts = list(allowed_relay_hosts)
        self.ca_files = list(ca_files)
        self.settings = settings or TunnelSettings()
        self._clock = clock
        self._sessions: dict[str, LiveSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closing = False

    @classmethod
    def from_config(
        cls,
        config: AgentConfig,
        *,
        live: LiveHub,
        settings: TunnelSettings | None = None,
        admission: Admission | None = None,
    ) -> TunnelManager:
        """The daemon's manager: cameras, allowed relay hosts and CAs from the configuration.

        The relay's certificate is checked as an upload target's is (system CAs plus
        `upload.ca_file`), and against the RTCC's CA given at enrollment (`rtcc.ca_file`, the
        CA that issued the hub's server certificate)."""
        sources = LiveSources(
            live,
            config.cameras,
            state_dir=Path(config.state_dir),
            fragment_seconds=config.store.fragment_seconds,
            log_level=config.log.level,
            log_format=config.log.format,
        )
        ca_files = [p for p in (config.rtcc.ca_file, config.upload.ca_file) if p is not None]
        return cls(
            sources,
            allowed_relay_hosts=config.policy.allowed_relay_hosts,
            ca_files=ca_files,
            settings=settings,
            admission=admission,
        )

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = relay_ssl_context(self.ca_files)
        return self._ssl

    # -- the delivery handler (agent.link.ports.DeliveryHandler) ----------------------------

    async def start(self, request: FootageRequest, job: Job) -> None:
        if not isinstance(request, StreamRequest):
            await job.failed(RejectCode.INTERNAL, f"the live tunnel cannot deliver {request.cmd}")
            return
        if self._closing:
            await job.failed(RejectCode.INTERNAL, "the agent is stopping")
            return
        if request.jti in self._sessions:
            return  # already running (a repeated start after a restart of the service)
        refusal = self.admission(request) if self.admission is not None else None
        if refusal is not None:
            # Paused, unshared or live turned off between the request's acceptance and now (a
            # moment, or a restart): the owner's latest word wins.
            code, message = refusal
            log.info("live_session_refused_now", request=request.jti, code=code.value)
            await job.failed(code, message)
            return
        if job.was_streaming:
            # The agent died mid-session (kill -9, power loss): starting again would grant a
            # fresh max_seconds the RTCC never asked for. Its length and bytes died with it.
            log.warning("live_session_not_resumed", request=request.jti, camera=request.camera)
            await job.ended(
                AGENT_STOPPED, seconds=0.0, relay_host=urlsplit(request.relay.url).hostname
            )
            return
        session = LiveSession(
            request,
            job,
            sources=self.sources,
            ssl_context=self._ssl_context,
            allowed_hosts=self.allowed_relay_hosts,
            settings=self.settings,
            clock=self._clock,
        )
        self._sessions[request.jti] = session
        task = asyncio.create_task(session.run(), name=f"live-{request.jti[:8]}")
        self._tasks[request.jti] = task
        task.add_done_callback(lambda _task: self._forget(request.jti))
        log.info(
            "live_session_started",
            request=request.jti,
            camera=request.camera,
            profile=request.profile,
            requester=request.requester,
            case=request.case,
        )

    def _forget(self, request_id: str) -> None:
        self._sessions.pop(request_id, None)
        self._tasks.pop(request_id, None)

    async def cancel(self, request_id: str) -> None:
        """The RTCC cancelled the request: stop the session; its close and report follow."""
        session = self._sessions.get(request_id)
        if session is not None:
            session.stop(CANCELLED)

    async def _stop_all(
        self, sessions: list[LiveSession], reason: str, *, by: str | None
    ) -> list[LiveSession]:
        """Tell `sessions` to stop; wait (briefly) until none sends any more."""
        for session in sessions:
            session.stop(reason, by=by)
        if sessions:
            await asyncio.gather(*(s.wait_sending_stopped(STOP_WAIT_S) for s in sessions))
        return sessions

    # -- the owner ----------------------------------------------------------------------------

    def sessions(self) -> list[dict[str, Any]]:
        """Every session in progress (for `rtcc-edge status`)."""
        return [s.summary() for s in self._sessions.values() if s.state != "ended"]

    def _find(self, request_id: str) -> LiveSession:
        """A session by request id or a prefix of it; OwnerActionError if none or several."""
        if len(request_id) < _MIN_PREFIX:
            raise OwnerActionError(
                "not_found", f"give at least {_MIN_PREFIX} characters of the request id"
            )
        exact = self._sessions.get(request_id)
        if exact is not None:
            return exact
        matches = [s for jti, s in self._sessions.items() if jti.startswith(request_id)]
        if not matches:
            raise OwnerActionError("not_found", f"no live session {request_id} in progress")
        if len(matches) > 1:
            raise OwnerActionError(
                "ambiguous", f"{request_id} matches {len(matches)} live sessions; give more"
            )
        return matches[0]

    def _running(self) -> list[LiveSession]:
        return [s for s in self._sessions.values() if s.state not in ("ending", "ended")]

    async def stop_session(self, request_id: str, *, by: str) -> dict[str, Any]:
        """End one session (`owner_stopped`); its summary once it stopped sending (its close
        and ledger entry follow on their own)."""
        session = self._find(request_id)
        log.info("live_stop_by_owner", request=session.id, by=by)
        await self._stop_all([session], OWNER_STOPPED, by=by)
        return session.summary()

    async def pause(self, *, by: str) -> int:
        """The owner paused sharing: end every session (`paused`); how many there were."""
        return len(await self._stop_all(self._running(), PAUSED, by=by))

    async def camera_unshared(self, camera: str, *, by: str) -> int:
        """The owner took live view away from `camera` (private, registry, or live off): end
        its sessions (`sharing_changed`); how many there were."""
        sessions = [s for s in self._running() if s.request.camera == camera]
        if sessions:
            log.info("live_stop_sharing_changed", camera=camera, sessions=len(sessions), by=by)
        return len(await self._stop_all(sessions, SHARING_CHANGED, by=by))

    async def close(self) -> None:
        """The daemon is stopping: end every session (`agent_stopped`), take no new one, and
        return once each has closed and written its ledger entry (or `CLOSE_WAIT_S` passed:
        then its task is cancelled, which still writes the entry before it lets go)."""
        self._closing = True
        sessions = await self._stop_all(self._running(), AGENT_STOPPED, by=None)
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, late = await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)
        for task in late:
            log.error("live_session_slow_to_end", task=task.get_name())
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        if sessions:
            log.info("live_sessions_stopped", count=len(sessions))


class TunnelComponent:
    """The manager as a daemon component: at shutdown, every session ends cleanly (its `ended`
    event goes out before the link stops, so place it after the link in the component list)."""

    name = "tunnel"

    def __init__(self, manager: TunnelManager) -> None:
        self.manager = manager

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.manager.close()
