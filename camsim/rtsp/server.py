"""camsim's RTSP server: what a camera's RTSP port does, on asyncio, with no external server.

Methods: OPTIONS, DESCRIBE, SETUP (TCP interleaved or UDP unicast), PLAY, PAUSE, GET_PARAMETER,
TEARDOWN. Digest (or Basic, or no) authentication; at most `max_sessions` sessions (453 beyond,
like real cameras); sessions expire after `timeout` seconds without a request or RTCP.
Faults: `unplugged` drops every connection and refuses new ones; `stalled` keeps RTSP answering
but sends no media. Hostile input gets an error reply and a closed connection, never more.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Literal

import structlog

from camsim import __version__
from camsim.faults import Faults
from camsim.media import EncodedStream

from .auth import RtspAuth
from .protocol import (
    InterleavedFrame,
    ParserLimits,
    RequestParser,
    RtspError,
    RtspRequest,
    TransportRequest,
    check_range,
    format_response,
    parse_transport,
    request_target,
    session_id,
)
from .pump import StreamPump
from .sdp import TRACK_CONTROL, build_sdp
from .session import RtspSession, Sink, TcpSink, UdpSink

log = structlog.get_logger(__name__)

PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, TEARDOWN"
# Methods RTSP defines that a camera does not take from a client.
_REFUSED = frozenset({"ANNOUNCE", "RECORD", "REDIRECT", "SET_PARAMETER"})
_SERVER = f"camsim/{__version__}"
# How long a connection refused for bad input keeps draining before it closes.
_LINGER = 2.0
_FAULT_POLL = 0.05
_HOUSEKEEPING = 0.25


@dataclass(frozen=True)
class RtspLimits:
    """Tunables with camera-like defaults; tests shorten the timeouts."""

    session_timeout: int = 60  # seconds without a request or RTCP before a session expires
    request_timeout: float = 10.0  # seconds to finish a request once it has started
    nonce_lifetime: float = 300.0
    max_connections: int = 32
    write_high_water: int = 1024 * 1024  # above this, a TCP client's frames are dropped
    write_low_water: int = 256 * 1024
    # Fixed kernel send buffer (no autotuning to megabytes): a client that stops reading is
    # noticed within about a second of video, as on a camera with little memory.
    socket_send_buffer: int = 256 * 1024
    rtcp_interval: float = 5.0
    parser: ParserLimits = field(default_factory=ParserLimits)


Response = tuple[int, list[tuple[str, str]], bytes]


class _Connection(asyncio.Protocol):
    def __init__(self, server: RtspServer) -> None:
        self.server = server
        self.parser = RequestParser(server.limits.parser)
        self.sessions: dict[str, RtspSession] = {}
        self.generation = server.faults.generation if server.faults is not None else 0
        self.peer_host = ""
        self.local_host = ""
        self.last_data = server.now()
        self.pending_since: float | None = None
        self._transport: asyncio.Transport | None = None
        self._writing_paused = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self.closing = False

    # Link protocol (what sessions use)
    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    @property
    def writing_paused(self) -> bool:
        return self._writing_paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.peer_host = str(peer[0]) if peer else ""
        self.local_host = str(local[0]) if local else self.server.host
        if not self.server.admit(self):
            self.closing = True
            transport.abort()
            return
        limits = self.server.limits
        transport.set_write_buffer_limits(high=limits.write_high_water, low=limits.write_low_water)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.socket_send_buffer)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        now = self.server.now()
        self.last_data = now
        try:
            messages = self.parser.feed(data)
        except RtspError as exc:
            self.fail(exc)
            return
        for message in messages:
            if isinstance(message, InterleavedFrame):
                self.server.on_interleaved(self, message, now)
                continue
            reply = self.server.handle(self, message, now)
            if self._transport is None or self._transport.is_closing():
                return
            self.write(reply)
        if not self.parser.pending:
            self.pending_since = None
        elif self.pending_since is None or messages:
            self.pending_since = now

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def fail(self, exc: RtspError) -> None:
        """Answer a request we cannot (or will not) continue from, then close."""
        log.info("rtsp_bad_request", peer=self.peer_host, status=exc.status, reason=exc.message)
        self.write(
            format_response(
                exc.status, cseq=exc.cseq, headers=[("Server", _SERVER), ("Connection", "close")]
            )
        )
        self._linger()

    def _linger(self) -> None:
        """Half-close after the reply and swallow what the client still sends for a moment.

        Closing with unread input makes the kernel answer with a reset, which can destroy the
        reply before the client reads it (a 10 MB header line is still arriving, say).
        """
        self.closing = True
        self.server.release_sessions(self, reason="bad request")
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self._linger_timer = asyncio.get_running_loop().call_later(_LINGER, transport.close)

    def close(self) -> None:
        self.closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self.closing = True
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        self.server.forget(self)

    def pause_writing(self) -> None:
        # The client is not reading: stop reading its requests too, so replies cannot pile up.
        self._writing_paused = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()


class RtspServer:
    """One camera's RTSP port. `streams` maps request paths (with their query) to streams."""

    def __init__(
        self,
        streams: Mapping[str, EncodedStream],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str,
        password: str,
        realm: str = "camsim",
        max_sessions: int = 4,
        faults: Faults | None = None,
        clock_offset: float = 0.0,
        auth: Literal["digest", "basic", "none"] = "digest",
        limits: RtspLimits | None = None,
    ) -> None:
        if not streams:
            raise ValueError("an RTSP server needs at least one stream")
        for path in streams:
            if not path.startswith("/") or request_target(path) != path or " " in path:
                raise ValueError(f"stream path must be an absolute path, not {path!r}")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.host = host
        self.faults = faults
        self.clock_offset = clock_offset
        self.max_sessions = max_sessions
        self.limits = limits or RtspLimits()
        self._requested_port = port
        self._streams = dict(streams)
        self._auth = RtspAuth(
            auth,
            realm=realm,
            username=username,
            password=password,
            nonce_lifetime=self.limits.nonce_lifetime,
        )
        self._pumps: dict[EncodedStream, StreamPump] = {}
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._housekeeper: asyncio.TimerHandle | None = None
        self._generation = faults.generation if faults is not None else 0
        self._sdp_session = secrets.randbelow(10**9)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[str, Callable[[_Connection, RtspRequest, float], Response]] = {
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "GET_PARAMETER": self._get_parameter,
            "TEARDOWN": self._teardown,
        }

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("RTSP server already started")
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Connection(self), self.host, self._requested_port
        )
        self._schedule_housekeeping()
        log.info("rtsp_listening", host=self.host, port=self.port, paths=sorted(self._streams))

    async def close(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            self._housekeeper = None
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            self._drop_connection(conn, reason="server closed")
        for pump in self._pumps.values():
            pump.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("RTSP server not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def session_count(self) -> int:
        return sum(len(conn.sessions) for conn in self._connections)

    def now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    # -- connections ----------------------------------------------------------------------

    def admit(self, conn: _Connection) -> bool:
        if self.faults is not None and self.faults.unplugged:
            return False
        if len(self._connections) >= self.limits.max_connections:
            log.warning("rtsp_too_many_connections", peer=conn.peer_host)
            return False
        self._connections.add(conn)
        return True

    def forget(self, conn: _Connection) -> None:
        self.release_sessions(conn, reason="connection closed")
        self._connections.discard(conn)

    def release_sessions(self, conn: _Connection, *, reason: str) -> None:
        for session in list(conn.sessions.values()):
            self._end_session(conn, session, reason=reason)

    def _drop_connection(self, conn: _Connection, *, reason: str) -> None:
        self.release_sessions(conn, reason=reason)
        conn.abort()
        self._connections.discard(conn)

    def _end_session(self, conn: _Connection, session: RtspSession, *, reason: str) -> None:
        pump = self._pumps.get(self._streams[session.path])
        if pump is not None:
            pump.stop(session)
        session.close()
        if conn.sessions.pop(session.id, None) is not None:
            log.info("rtsp_session_closed", session=session.id, path=session.path, reason=reason)

    def _schedule_housekeeping(self) -> None:
        # Faults are plain flags; polling them often is what makes a flip take effect in ~50 ms.
        # On a grid of the loop clock, so the checks of many cameras share one wake-up.
        assert self._loop is not None
        interval = _FAULT_POLL if self.faults is not None else _HOUSEKEEPING
        when = (math.floor(self._loop.time() / interval) + 1) * interval
        self._housekeeper = self._loop.call_at(when, self._housekeep)

    def _housekeep(self) -> None:
        try:
            self._apply_faults()
            self._expire(self.now())
        except Exception:  # housekeeping must outlive any one bad state
            log.exception("rtsp_housekeeping_failed")
        self._schedule_housekeeping()

    def _apply_faults(self) -> None:
        faults = self.faults
        if faults is None:
            return
        if faults.unplugged or faults.generation != self._generation:
            for conn in list(self._connections):
                if faults.unplugged or conn.generation < faults.generation:
                    self._drop_connection(conn, reason="unplugged")
            self._generation = faults.generation
        if faults.drop_after_frames:
            for conn in list(self._connections):
                sent = max((s.frames_sent for s in conn.sessions.values()), default=0)
                if sent >= faults.drop_after_frames:
                    self._drop_connection(conn, reason="dropped")

    def _expire(self, now: float) -> None:
        limits = self.limits
        for conn in list(self._connections):
            if conn.closing:
                continue
            if (
                conn.pending_since is not None
                and not conn.writing_paused
                and now - conn.pending_since > limits.request_timeout
            ):
                conn.fail(RtspError(408, "request not completed in time"))
                continue
            had_sessions = bool(conn.sessions)
            for session in list(conn.sessions.values()):
                if now - session.last_activity > limits.session_timeout:
                    self._end_session(conn, session, reason="expired")
            idle = now - conn.last_data > limits.session_timeout
            if (had_sessions and not conn.sessions) or (not conn.sessions and idle):
                conn.close()

    # -- requests -------------------------------------------------------------------------

    def on_interleaved(self, conn: _Connection, frame: InterleavedFrame, now: float) -> None:
        for session in conn.sessions.values():
            sink = session.sink
            if isinstance(sink, TcpSink) and frame.channel in (sink.channel, sink.rtcp_channel):
                session.touch(now)

    def handle(self, conn: _Connection, request: RtspRequest, now: float) -> bytes:
        """The reply to one request; an unplugged camera closes the connection instead."""
        if self.faults is not None and self.faults.unplugged:
            self._drop_connection(conn, reason="unplugged")
            return b""
        try:
            status, headers, body = self._dispatch(conn, request, now)
        except RtspError as exc:
            if exc.status >= 500 or exc.status in (400, 401):
                log.info(
                    "rtsp_request_refused",
                    peer=conn.peer_host,
                    method=request.method,
                    status=exc.status,
                    reason=exc.message,
                )
            status, headers, body = exc.status, [], b""
        except Exception:  # a bug must cost one request, not the camera
            log.exception("rtsp_request_failed", method=request.method)
            status, headers, body = 500, [], b""
        common = [
            ("Date", formatdate(time.time() + self.clock_offset, usegmt=True)),
            ("Server", _SERVER),
        ]
        return format_response(status, cseq=request.cseq, headers=common + headers, body=body)

    def _dispatch(self, conn: _Connection, request: RtspRequest, now: float) -> Response:
        method = request.method
        if method == "OPTIONS":
            self._touch_from(conn, request, now)
            return 200, [("Public", PUBLIC)], b""
        if method in _REFUSED:
            return 405, [("Allow", PUBLIC)], b""
        handler = self._handlers.get(method)
        if handler is None:
            return 501, [], b""
        challenge = self._auth.check(method, request.uri, request.header("authorization"))
        if challenge is not None:
            log.debug("rtsp_unauthorized", peer=conn.peer_host, method=method)
            return 401, [("WWW-Authenticate", challenge)], b""
        require = request.header("require")
        if require is not None:
            return 551, [("Unsupported", require)], b""
        return handler(conn, request, now)

    def _resolve(self, uri: str) -> str:
        """The stream path a request URI names, aggregate or track (`.../trackID=1`)."""
        target = request_target(uri)
        if target is not None:
            suffix = "/" + TRACK_CONTROL
            if target.endswith(suffix):
                target = target[: -len(suffix)]
            for candidate in (target, target.rstrip("/") or "/"):
                if candidate in self._streams:
                    return candidate
        raise RtspError(404, "no such stream")

    def _session(
        self, conn: _Connection, request: RtspRequest, now: float, *, same_stream: bool = True
    ) -> RtspSession:
        header = request.header("session")
        if header is None:
            raise RtspError(455, f"{request.method} needs a session")
        session = conn.sessions.get(session_id(header) or "")
        if session is None:
            raise RtspError(454, "unknown session")
        if same_stream and self._resolve(request.uri) != session.path:
            raise RtspError(459, "session belongs to another stream")
        session.touch(now)
        return session

    def _touch_from(self, conn: _Connection, request: RtspRequest, now: float) -> None:
        session = conn.sessions.get(session_id(request.header("session")) or "")
        if session is not None:
            session.touch(now)

    def _session_header(self, session: RtspSession) -> tuple[str, str]:
        return ("Session", f"{session.id};timeout={self.limits.session_timeout}")

    def _pump(self, path: str) -> StreamPump:
        stream = self._streams[path]
        pump = self._pumps.get(stream)
        if pump is None:
            pump = StreamPump(stream, faults=self.faults, clock_offset=self.clock_offset)
            self._pumps[stream] = pump
        return pump

    def _describe(self, conn: _Connection, request: RtspRequest, now: float) -> Response:
        path = self._resolve(request.uri)
        sdp = build_sdp(
            self._streams[path],
            session_id=self._sdp_session,
            address=conn.local_host or self.host,
            name="camsim",
        )
        base = request.uri if request.uri.endswith("/") else request.uri + "/"
        headers = [("Content-Type", "application/sdp"), ("Content-Base", base)]
        return 200, headers, sdp.encode()

    def _setup(self, conn: _Connection, request: RtspRequest, now: float) -> Response:
        path = self._resolve(request.uri)
        value = request.header("transport")
        if value is None:
            raise RtspError(400, "SETUP without Transport")
        wanted = parse_transport(value)
        if wanted is None:
            raise RtspError(461, "only unicast RTP over TCP or UDP is supported")
        if request.header("session") is not None:
            session = self._session(conn, request, now)
            if session.playing:
                raise RtspError(455, "cannot change the transport while playing")
            if session.sink is not None:
                session.sink.close()
                session.sink = None
            session.control_uri = request.uri
            created = False
        else:
            if self.session_count >= self.max_sessions:
                raise RtspError(453, "session limit reached")
            session = RtspSession(
                session_id=secrets.token_hex(8).upper(),
                path=path,
                control_uri=request.uri,
                cname=f"camsim@{conn.local_host}",
                rtcp_interval=self.limits.rtcp_interval,
                now=now,
            )
            created = True
        try:
            session.sink = self._open_sink(conn, session, wanted)
        except RtspError:
            if not created:
                self._end_session(conn, session, reason="re-SETUP failed")
            raise
        if created:
            conn.sessions[session.id] = session
            log.info(
                "rtsp_session_setup",
                session=session.id,
                path=path,
                transport="tcp" if wanted.tcp else "udp",
                peer=conn.peer_host,
            )
        headers = [
            ("Transport", session.sink.transport_header(session.ssrc)),
            self._session_header(session),
        ]
        return 200, headers, b""

    def _open_sink(self, conn: _Connection, session: RtspSession, wanted: TransportRequest) -> Sink:
        if wanted.tcp:
            used = {
                s.sink.channel
                for s in conn.sessions.values()
                if s is not session and isinstance(s.sink, TcpSink)
            }
            channel = wanted.interleaved[0] if wanted.interleaved else 0
            if channel in used:
                channel = next((c for c in range(0, 255, 2) if c not in used), -1)
            if channel < 0:
                raise RtspError(461, "no interleaved channels left")
            return TcpSink(conn, channel)
        assert wanted.client_port is not None
        try:
            return UdpSink(
                local_host=conn.local_host,
                peer_host=conn.peer_host,
                client_ports=wanted.client_port,
                on_activity=lambda: session.touch(self.now()),
            )
        except OSError as exc:
            log.warning("rtsp_udp_unavailable", error=str(exc))
            raise RtspError(461, "no UDP ports available") from exc

    def _play(self, conn: _Connection, request: RtspRequest, now: float) -> Response:
        session = self._session(conn, request, now)
        check_range(request.header("range"))
        if session.sink is None:
            raise RtspError(455, "session has no transport")
        if not session.playing:
            ticks = self._pump(session.path).play(session)
            session.playing = True
            session.play_info = (session.seq, (session.ts_offset + ticks) & 0xFFFFFFFF)
            log.info("rtsp_play", session=session.id, path=session.path)
        seq, rtptime = session.play_info
        headers = [
            self._session_header(session),
            ("Range", "npt=0.000-"),
            ("RTP-Info", f"url={session.control_uri};seq={seq};rtptime={rtptime}"),
        ]
        return 200, headers, b""

    def _pause(self, conn: _Connection, request: RtspRequest, now: float) -> Response:
        session = self._session(conn, request, now)
        if session.playing:
            self._pump(session.path).stop(session)
            session.playing = False
        return 200, [self._session_header(session)], b""

    def _get_parameter(self, conn: _Connection, request: RtspRequest, now: float) -> Response:
        headers = []
        if request.header("session") is not None:
            # A keep-alive: clients send it to the base URL, the track or `*`.
            session = self._session(conn, request, now, same_stream=False)
            headers.append(self._session_header(session))
        if request.body.strip():
            return 451, headers, b""
        return 200, headers, b""

    def _teardown(self, conn: _Connection, request: RtspRequest, now: float) -> Response:
        header = request.header("session")
        session = conn.sessions.get(session_id(header) or "") if header is not None else None
        if session is None:
            raise RtspError(454, "unknown session")
        self._end_session(conn, session, reason="teardown")
        return 200, [], b""
