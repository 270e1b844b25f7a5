"""One live session, from an accepted `stream` request to its `ended` event.

1. The relay URL is checked against `policy.allowed_relay_hosts` (`agent.policy.hosts`) again,
   **before any connection**: not allowed → `failed` `upload_not_allowed` (the protocol's code
   for a refused destination). A request whose `exp` has passed (a restart long after it was
   accepted) → `failed` `expired`.
2. The video source is opened (`agent.tunnel.sources`: the recorder's fan-out, or an RTSP session
   of its own for another profile); none → `failed` `camera_offline`.
3. The relay is dialled (`agent.tunnel.client`); refused or unreachable → `failed`
   `upload_failed` with the HTTP status or error in the message.
4. The init segment and the first (keyframe) fragment must come from the camera within
   `first_video_timeout`, else → `failed` `camera_offline`. Once both are sent: `streaming`
   {started}, and the session runs for `max_seconds` (already capped at `policy.max_live` by
   the request service) from then, by the site's own monotonic clock: the deadline is the
   session's, armed as a timer when the first fragment is sent and checked again before every
   fragment, so neither the relay, nor the viewers, nor a slow socket can stretch it.
5. It ends — `ended` {reason} — at the first of: `max_seconds`; `cancelled` (the RTCC's cancel);
   `owner_stopped` (`rtcc-edge live stop`); `paused` (the owner paused sharing);
   `sharing_changed` (the owner made the camera private, registry-only or not live);
   `agent_stopped` (the daemon is stopping); `relay_closed` (the relay closed the websocket
   normally, e.g. at its session's expiry); `relay_error` (the connection broke, a heartbeat
   went unanswered, the relay refused the data); `camera_offline` (no fragment for
   `stall_timeout`, the camera's stream ended or restarted — a new init segment cannot be
   spliced into a progressive MP4).

Memory: the fragments waiting to be sent are held in the feed's bounded queue
(`max_queue_bytes`, the per-session ceiling, which one arriving fragment may top before the
queue drops everything waiting); when the relay cannot keep up the queue drops to the next
keyframe fragment (`skipped` counts the fragments lost) instead of growing. On top of it only the
fragment being sent, aiohttp's buffer (~64 KiB) and the fixed socket send buffer are held. The
recorder is never slowed: the fan-out only ever appends to the queue.

Ending is in two steps. `stop()` only sets a flag: the fragment pump is cancelled at once (no
byte is handed to the socket after it, `sending_stopped` is set), then the websocket is closed
with the reason as its close message (the relay's word for why), waiting at most
`close_timeout` for the relay, and the connection is dropped. Whoever asked to stop (the owner's
socket, a cancel) never waits for that I/O; only the daemon's shutdown waits for the whole end.

The ledger gets the bytes sent (`upload` with the relay host) and the session (`live_session`
with its length, from the first fragment to the moment sending stopped, and reason) through the
request's `Job`, also when the session is cut by the daemon stopping or its task is cancelled;
who asked (requester, issuer, case) is in the request's own `request_received` entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from agent.link.job import Job
from agent.log import get_logger
from agent.policy import destination_problem
from agent.recorder.live import LiveChunk, LiveFeed
from agent.tunnel.client import (
    ClientSettings,
    RelayConnection,
    RelayError,
    RelayGone,
)
from agent.tunnel.sources import LiveSources, OpenedFeed, SourceUnavailable
from agent.wire import RejectCode
from agent.wire.requests import StreamRequest

log = get_logger(__name__)

_T = TypeVar("_T")

MAX_SECONDS = "max_seconds"
CANCELLED = "cancelled"
OWNER_STOPPED = "owner_stopped"
PAUSED = "paused"
SHARING_CHANGED = "sharing_changed"
AGENT_STOPPED = "agent_stopped"
RELAY_CLOSED = "relay_closed"
RELAY_ERROR = "relay_error"
CAMERA_OFFLINE = "camera_offline"
END_REASONS = (
    MAX_SECONDS,
    CANCELLED,
    OWNER_STOPPED,
    PAUSED,
    SHARING_CHANGED,
    AGENT_STOPPED,
    RELAY_CLOSED,
    RELAY_ERROR,
    CAMERA_OFFLINE,
)


@dataclass(frozen=True)
class TunnelSettings:
    max_queue_bytes: int = 4 * 1024 * 1024  # per session: ~8 s of a 4 Mbit/s stream
    first_video_timeout: float = 15.0  # init + first keyframe fragment, from the camera
    stall_timeout: float = 15.0  # no fragment for this long while streaming: camera_offline
    client: ClientSettings = field(default_factory=ClientSettings)


class _Stop(Exception):
    """The session was told to stop (`LiveSession.stop`)."""


class _CameraLost(Exception):
    pass


@dataclass(frozen=True)
class _Failed:
    code: RejectCode
    message: str


@dataclass(frozen=True)
class _Ended:
    reason: str


State = Literal["starting", "streaming", "ending", "ended"]


class LiveSession:
    def __init__(
        self,
        request: StreamRequest,
        job: Job,
        *,
        sources: LiveSources,
        ssl_context: Callable[[], ssl.SSLContext],
        allowed_hosts: Sequence[str],
        settings: TunnelSettings,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request = request
        self.job = job
        self.sources = sources
        self._ssl_context = ssl_context
        self.allowed_hosts = list(allowed_hosts)
        self.settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self.relay_host = urlsplit(request.relay.url).hostname or ""
        self.state: State = "starting"
        self.origin: str | None = None
        self.started: datetime | None = None
        self.ends_at: datetime | None = None
        self.reason: str | None = None
        self.stopped_by: str | None = None
        self.fragments_sent = 0
        self._feed: LiveFeed | None = None
        self._opened: OpenedFeed | None = None
        self._conn: RelayConnection | None = None
        self._stop_reason: str | None = None
        self._stop = asyncio.Event()
        # The session's own clock: when the first fragment left, when sending must stop, when it
        # did. Monotonic, so a wall-clock step (NTP) neither shortens nor stretches a session.
        self._streaming_since: float | None = None
        self._deadline: float | None = None
        self._sent_until: float | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        self.sending_stopped = asyncio.Event()

    @property
    def id(self) -> str:
        return self.request.jti

    @property
    def bytes_sent(self) -> int:
        return self._conn.bytes_sent if self._conn is not None else 0

    @property
    def skipped(self) -> int:
        return self._feed.skipped if self._feed is not None else 0

    @property
    def queued_bytes(self) -> int:
        return self._feed.queued_bytes if self._feed is not None else 0

    @property
    def seconds(self) -> float:
        """How long video has been going out: from the first fragment to now, or to the moment
        sending stopped (by the monotonic clock)."""
        if self._streaming_since is None:
            return 0.0
        until = self._sent_until if self._sent_until is not None else self._monotonic()
        return max(0.0, until - self._streaming_since)

    def stop(self, reason: str, *, by: str | None = None) -> bool:
        """Ask the session to end with `reason`; False if it is already ending. Returns at once:
        the pump stops at its next step (see `sending_stopped`), the close follows."""
        if self._stop_reason is not None or self.state in ("ending", "ended"):
            return False
        self._stop_reason = reason
        self.stopped_by = by
        self._stop.set()
        return True

    async def wait_sending_stopped(self, within: float) -> bool:
        """Until no more video leaves for the relay (at most `within` s); whether it stopped."""
        try:
            async with asyncio.timeout(within):
                await self.sending_stopped.wait()
        except TimeoutError:
            return False
        return True

    def summary(self) -> dict[str, Any]:
        request = self.request
        seconds = self.seconds
        return {
            "id": request.jti,
            "camera": request.camera,
            "profile": request.profile,
            "source": self.origin,
            "state": self.state,
            "issuer": request.iss,
            "requester": request.requester,
            "case": request.case,
            "relay_host": self.relay_host,
            "started": self.started.isoformat() if self.started else None,
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "seconds": round(seconds, 1),
            "max_seconds": request.max_seconds,
            "bytes_sent": self.bytes_sent,
            "fragments_sent": self.fragments_sent,
            "skipped": self.skipped,
            "queued_bytes": self.queued_bytes,
            "reason": self.reason or self._stop_reason,
            "stopped_by": self.stopped_by,
        }

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> None:
        """The whole session; reports through the job. Never raises (but CancelledError: even
        then the close and the report are finished first, so the ledger has the session)."""
        outcome: _Failed | _Ended
        cancelled = False
        try:
            outcome = await self._stream()
        except _Stop:
            outcome = _Ended(self._stop_reason or AGENT_STOPPED)
        except asyncio.CancelledError:
            cancelled = True
            outcome = self._cut_outcome()
        except Exception:
            log.exception("live_session_crashed", request=self.id)
            if self.started:
                outcome = _Ended(RELAY_ERROR)
            else:
                outcome = _Failed(RejectCode.INTERNAL, "the live session failed")
        self._stopped_sending()
        self.state = "ending"
        finish = asyncio.ensure_future(self._finish(outcome))
        try:
            await asyncio.shield(finish)
        except asyncio.CancelledError:
            cancelled = True
            await finish  # the report must reach the ledger before the task lets go
        if cancelled:
            raise asyncio.CancelledError

    def _cut_outcome(self) -> _Failed | _Ended:
        """The outcome of a session whose task was cancelled (the daemon is going away)."""
        if self.started is not None:
            return _Ended(self._stop_reason or AGENT_STOPPED)
        return _Failed(RejectCode.INTERNAL, "the agent stopped before the session started")

    def _stopped_sending(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        if self._sent_until is None and self._streaming_since is not None:
            self._sent_until = self._monotonic()
        self.sending_stopped.set()

    def _expire(self) -> None:
        """The deadline timer: `max_seconds` are over."""
        self._deadline_timer = None
        self.stop(MAX_SECONDS)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._monotonic() >= self._deadline

    async def _finish(self, outcome: _Failed | _Ended) -> None:
        try:
            await self._cleanup(outcome.reason if isinstance(outcome, _Ended) else "failed")
        finally:
            try:
                await self._report(outcome)
            except Exception:  # the ledger refused it: said loudly, the task still ends
                log.exception("live_session_report_failed", request=self.id)

    async def _until_stopped(self, awaitable: Awaitable[_T]) -> _T:
        """`awaitable`'s result, unless the session is told to stop first (then _Stop)."""
        work = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        raise _Stop

    async def _stream(self) -> _Failed | _Ended:
        request = self.request
        problem = destination_problem(
            request.relay.url, self.allowed_hosts, secure="wss", plain="ws", what="relay"
        )
        if problem:
            log.warning("live_relay_refused", request=self.id, host=self.relay_host, why=problem)
            return _Failed(RejectCode.UPLOAD_NOT_ALLOWED, problem)
        if self._clock() >= request.exp:
            return _Failed(RejectCode.EXPIRED, "the request expired before the session started")
        try:
            self._opened = await self._until_stopped(
                self.sources.open(
                    request.camera, request.profile, max_queue_bytes=self.settings.max_queue_bytes
                )
            )
        except SourceUnavailable as exc:
            return _Failed(RejectCode.CAMERA_OFFLINE, str(exc))
        self._feed = self._opened.feed
        self.origin = self._opened.origin
        try:
            context = self._ssl_context()
            self._conn = await self._until_stopped(
                RelayConnection.open(
                    request.relay.url,
                    request.relay.token,
                    ssl_context=context,
                    settings=self.settings.client,
                )
            )
        except RelayError as exc:
            return _Failed(RejectCode.UPLOAD_FAILED, str(exc))
        log.info("live_relay_connected", request=self.id, host=self.relay_host)
        conn, feed = self._conn, self._feed
        try:
            first = await self._until_stopped(self._first_video(feed))
        except TimeoutError:
            return _Failed(
                RejectCode.CAMERA_OFFLINE,
                f"no video from camera {request.camera} within "
                f"{self.settings.first_video_timeout:.0f} s",
            )
        except _CameraLost as exc:
            return _Failed(RejectCode.CAMERA_OFFLINE, str(exc))
        try:
            for chunk in first:
                await self._until_stopped(conn.send(chunk.data))
        except RelayGone as exc:
            return _Failed(RejectCode.UPLOAD_FAILED, f"the relay ended the connection ({exc})")
        self.fragments_sent = 1
        self._streaming_since = self._monotonic()
        self._deadline = self._streaming_since + request.max_seconds
        self._deadline_timer = asyncio.get_running_loop().call_later(
            request.max_seconds, self._expire
        )
        self.started = datetime.fromtimestamp(self._clock(), UTC)
        self.ends_at = datetime.fromtimestamp(self._clock() + request.max_seconds, UTC)
        self.state = "streaming"
        # Shielded: the event must not be half-sent; the deadline timer already runs.
        await asyncio.shield(self.job.streaming(self.started))
        log.info(
            "live_streaming",
            request=self.id,
            camera=request.camera,
            profile=request.profile,
            source=self.origin,
            max_seconds=request.max_seconds,
        )
        return _Ended(await self._run_for(conn, feed))

    async def _first_video(self, feed: LiveFeed) -> list[LiveChunk]:
        """The init segment and the first media fragment (a keyframe: the feed starts there)."""
        async with asyncio.timeout(self.settings.first_video_timeout):
            chunks: list[LiveChunk] = []
            while len(chunks) < 2:
                try:
                    chunk = await feed.__anext__()
                except StopAsyncIteration:
                    raise _CameraLost(f"camera {self.request.camera} is not streaming") from None
                if chunk.kind == "init":
                    chunks = [chunk]  # a newer init replaces one not yet followed by media
                elif chunks:
                    chunks.append(chunk)
            return chunks

    async def _run_for(self, conn: RelayConnection, feed: LiveFeed) -> str:
        """Pump fragments until the deadline, a stop, the relay's end or the camera's."""
        pump = asyncio.create_task(self._pump(conn, feed), name=f"live-pump-{self.id[:8]}")
        stopper = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {pump, conn.ended, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (pump, stopper):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(pump, stopper, return_exceptions=True)
            self._stopped_sending()
        if self._stop.is_set() or self._past_deadline():
            return self._stop_reason or MAX_SECONDS
        if conn.ended in done:
            return conn.ended.result()
        if pump in done:
            error = pump.exception()
            if isinstance(error, RelayGone):
                return error.reason
            if isinstance(error, _CameraLost):
                log.info("live_camera_lost", request=self.id, why=str(error))
                return CAMERA_OFFLINE
            if error is not None:
                raise error
        return MAX_SECONDS

    async def _pump(self, conn: RelayConnection, feed: LiveFeed) -> None:
        stall = self.settings.stall_timeout
        while True:
            try:
                chunk = await asyncio.wait_for(feed.__anext__(), stall)
            except TimeoutError:
                raise _CameraLost(f"no video for {stall:.0f} s") from None
            except StopAsyncIteration:
                raise _CameraLost("the camera's stream ended") from None
            if chunk.kind == "init":
                raise _CameraLost("the camera's stream restarted")
            if self._past_deadline():
                self.stop(MAX_SECONDS)  # the timer is late (a busy loop): the clock decides
                return
            if self._stop.is_set():
                return  # told to stop while this fragment was on its way: it stays here
            await conn.send(chunk.data)
            self.fragments_sent += 1

    async def _cleanup(self, why: str) -> None:
        if self._conn is not None:
            await self._conn.close(why)
        if self._opened is not None:
            try:
                await self._opened.close()
            except Exception:
                log.exception("live_source_close_failed", request=self.id)

    async def _report(self, outcome: _Failed | _Ended) -> None:
        skipped = self.skipped
        if isinstance(outcome, _Failed):
            self.reason = outcome.code.value
            self.state = "ended"
            log.warning(
                "live_session_failed", request=self.id, code=outcome.code.value, why=outcome.message
            )
            await asyncio.shield(self.job.failed(outcome.code, outcome.message))
            return
        self.reason = outcome.reason
        seconds = self.seconds
        self.state = "ended"
        log.info(
            "live_session_ended",
            request=self.id,
            camera=self.request.camera,
            reason=outcome.reason,
            seconds=round(seconds, 1),
            bytes=self.bytes_sent,
            fragments=self.fragments_sent,
            skipped=skipped,
            stopped_by=self.stopped_by,
        )
        if self.bytes_sent:
            await asyncio.shield(self.job.uploaded(self.bytes_sent, host=self.relay_host))
        await asyncio.shield(
            self.job.ended(
                outcome.reason,
                seconds=round(seconds, 3),
                started=self.started,
                bytes_sent=self.bytes_sent,
                relay_host=self.relay_host,
            )
        )
