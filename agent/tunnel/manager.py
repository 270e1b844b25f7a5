"""Live sessions in progress: the request service's `stream` delivery handler, and what the owner
sees (`rtcc-edge status`) and ends (`rtcc-edge live stop ID`, `rtcc-edge pause`).

    manager = TunnelManager.from_config(config, live=daemon.live)
    handlers = DeliveryHandlers(stream=manager)          # the request service starts sessions
    ControlServer(path, service, live=manager)           # the owner's status / live stop / pause
    daemon components += [TunnelComponent(manager)]      # stops every session at shutdown

Each session runs in its own task (`agent.tunnel.session.LiveSession`), apart from the
recorders: nothing a tunnel does can block or slow recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.link.ports import FootageRequest, Job
from agent.link.service import OwnerActionError
from agent.log import get_logger
from agent.recorder.live import LiveHub
from agent.tunnel.client import relay_ssl_context
from agent.tunnel.session import (
    AGENT_STOPPED,
    CANCELLED,
    OWNER_STOPPED,
    PAUSED,
    LiveSession,
    TunnelSettings,
)
from agent.tunnel.sources import LiveSources
from agent.wire import RejectCode
from agent.wire.requests import StreamRequest

log = get_logger(__name__)

_MIN_PREFIX = 4


class TunnelManager:
    def __init__(
        self,
        sources: LiveSources,
        *,
        allowed_relay_hosts: Sequence[str],
        ca_files: Sequence[Path] = (),
        settings: TunnelSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = sources
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
        await self._end(request_id, CANCELLED, by=None)

    async def _end(self, request_id: str, reason: str, *, by: str | None) -> None:
        session = self._sessions.get(request_id)
        task = self._tasks.get(request_id)
        if session is None or task is None:
            return
        session.stop(reason, by=by)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

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

    async def stop_session(self, request_id: str, *, by: str) -> dict[str, Any]:
        """End one session (`owner_stopped`); its summary once it has ended."""
        session = self._find(request_id)
        log.info("live_stop_by_owner", request=session.id, by=by)
        await self._end(session.id, OWNER_STOPPED, by=by)
        return session.summary()

    async def pause(self, *, by: str) -> int:
        """The owner paused sharing: end every session (`paused`); how many there were."""
        return await self._end_all(PAUSED, by=by)

    async def _end_all(self, reason: str, *, by: str | None) -> int:
        ids = list(self._sessions)
        await asyncio.gather(*(self._end(jti, reason, by=by) for jti in ids))
        return len(ids)

    async def close(self) -> None:
        """The daemon is stopping: end every session (`agent_stopped`); take no new one."""
        self._closing = True
        count = await self._end_all(AGENT_STOPPED, by=None)
        if count:
            log.info("live_sessions_stopped", count=count)


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
