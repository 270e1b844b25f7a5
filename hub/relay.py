"""The live relay of `rtcc-hub serve`: a site streams in over a websocket, analysts watch over HTTP.

Routes (each session minted by `rtcc-hub request stream`, see `hub.relay_sessions`):

- `GET /ingest/{session}` — websocket for the **publisher** (the site). Only the publisher token
  minted for that session is accepted (`Authorization: Bearer …`, compared in constant time;
  401 otherwise, 410 once the session expired, 409 while another publisher is connected). The
  first binary message is the fMP4 init segment, every later one a single media fragment
  (`moof`+`mdat`); each is checked (`hub.relay_media`) before any viewer sees it, and a message
  that is not what the protocol says closes the ingest (1003). The session is closed at its
  expiry (1008).
- `GET /live/{session}.mp4?token=<viewer token>` — progressive fragmented MP4 (chunked) for any
  number of viewers: the init segment, then fragments from the last keyframe on (the relay keeps
  the current group of pictures, bounded, so a viewer who joins sees a picture at once). Each
  viewer has its own bounded queue: one that falls behind loses what it has not read and resumes
  at the next keyframe fragment; one whose socket accepts nothing for `viewer_stall_seconds` is
  disconnected. The kernel's send buffer of a viewer's connection is fixed
  (`viewer_send_buffer`) so that falling behind shows up in the queue, not as growing delay.
  The publisher only ever hands fragments to the queues, so no viewer can slow it or the other
  viewers. A viewer arriving before the stream waits up to `wait_for_publisher` seconds (then
  503); when the publisher leaves, every viewer's response ends.
- `GET /live/{session}?token=…` — a page playing the stream in a `<video>` element that says
  what is going on: waiting for the site, live, ended and why, or that this browser cannot
  play the camera's codec (H.265 in Chromium), instead of a dead player.
- `GET /live/{session}/stats?token=…` — JSON: `state` (`waiting`, `live`, `ended`), the end
  `reason` (the site's own word from its close frame: `max_seconds`, `cancelled`,
  `owner_stopped`, `paused`, `sharing_changed`, …, or the relay's: `publisher_closed`,
  `expired`, `bad_media`), the `codec` (`h264`, `hevc`) and `codecs` (its RFC 6381 string, what
  the page asks `MediaSource.isTypeSupported`), publisher state, bytes and fragments received,
  each viewer's bytes sent and fragments skipped. After the end, `started` / `ended_at` (when the
  first fragment and the end reached the relay) and the bytes and fragments received stay
  available, so what the relay got can be compared with what the site's ledger says it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from string import Template
from typing import Literal
from urllib.parse import quote

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from agent.recorder.live import GopCache
from hub.relay_media import (
    MAX_FRAGMENT_BYTES,
    InitInfo,
    MediaError,
    fragment_keyframe,
    parse_init,
)
from hub.relay_sessions import SessionRecord, SessionStore, token_matches
from hub.server import ServerContext

log = structlog.get_logger(__name__)

SESSION_PATTERN = "{session:[A-Za-z0-9_-]{22}}"
MAX_VIEWERS = 64
MAX_ENDED_KEPT = 1000
_REASON = re.compile(r"^[a-z][a-z_]{1,39}$")


@dataclass(frozen=True)
class RelaySettings:
    viewer_queue_bytes: int = 8 * 1024 * 1024  # per viewer: ~16 s of a 4 Mbit/s stream
    viewer_stall_seconds: float = 20.0  # a write that cannot complete this long: disconnect
    # SO_SNDBUF of a viewer's connection: without it the kernel's autotuning buffers megabytes,
    # seconds of delay before a slow viewer's queue even starts dropping to keyframes.
    viewer_send_buffer: int = 256 * 1024
    wait_for_publisher: float = 30.0  # a viewer arriving before the stream waits this long
    heartbeat: float = 10.0  # websocket ping interval towards the publisher
    max_viewers: int = MAX_VIEWERS


@dataclass(frozen=True, slots=True)
class Piece:
    """What a viewer is sent: the init segment or one media fragment, with the wall-clock time
    (`time.time()`) at which the relay received it from the publisher."""

    kind: Literal["init", "media"]
    data: bytes
    keyframe: bool
    received: float


class Viewer:
    """One viewer's bounded queue. `next()` gives the init segment, then media from a keyframe;
    None once the stream is over for this viewer."""

    _ids = itertools.count(1)

    def __init__(self, max_bytes: int) -> None:
        self.id = next(self._ids)
        self.max_bytes = max_bytes
        self.queue: deque[Piece] = deque()
        self.queued_bytes = 0
        self.sent_bytes = 0
        self.skipped = 0
        self.has_init = False
        self.need_keyframe = True
        self.joined = False  # has had its first (keyframe) fragment
        self.ended = False
        self.end_reason = ""
        self._wake = asyncio.Event()

    def _put(self, piece: Piece) -> None:
        self.queue.append(piece)
        self.queued_bytes += len(piece.data)
        self._wake.set()

    def give_init(self, piece: Piece) -> None:
        if not self.ended and not self.has_init:
            self.has_init = True
            self._put(piece)

    def offer(self, piece: Piece) -> None:
        if self.ended or not self.has_init:
            return
        if self.queued_bytes + len(piece.data) > self.max_bytes:
            self.skipped += sum(1 for p in self.queue if p.kind == "media")
            self.queue = deque(p for p in self.queue if p.kind == "init")
            self.queued_bytes = sum(len(p.data) for p in self.queue)
            self.need_keyframe = True
        if self.need_keyframe and not piece.keyframe:
            # Before its first keyframe a viewer has lost nothing; after it, this is a skip.
            self.skipped += self.joined
            return
        self.need_keyframe = False
        self.joined = True
        self._put(piece)

    def end(self, reason: str) -> None:
        if not self.ended:
            self.ended = True
            self.end_reason = reason
        self._wake.set()

    async def next(self) -> Piece | None:
        while not self.queue:
            if self.ended:
                return None
            self._wake.clear()
            await self._wake.wait()
        piece = self.queue.popleft()
        self.queued_bytes -= len(piece.data)
        return piece

    def stats(self) -> dict[str, int]:
        return {
            "id": self.id,
            "sent_bytes": self.sent_bytes,
            "queued_bytes": self.queued_bytes,
            "skipped": self.skipped,
        }


@dataclass
class LiveSession:
    """One minted session while the relay holds it: its publisher, init segment and viewers."""

    record: SessionRecord
    publisher: bool = False
    init: Piece | None = None
    init_info: InitInfo | None = None
    viewers: list[Viewer] = field(default_factory=list)
    bytes_in: int = 0
    fragments_in: int = 0
    keyframes_in: int = 0
    last_received: float | None = None
    publisher_since: datetime | None = None
    first_fragment: datetime | None = None
    # Since the last keyframe: a viewer who joins now starts there (a picture at once).
    gop: GopCache[Piece] = field(default_factory=GopCache)
    _started: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return self.record.id

    def subscribe(self, max_bytes: int) -> Viewer:
        viewer = Viewer(max_bytes)
        self.viewers.append(viewer)
        if self.init is not None:
            viewer.give_init(self.init)
            for piece in self.gop.items():
                viewer.offer(piece)
        return viewer

    def unsubscribe(self, viewer: Viewer) -> None:
        viewer.end(viewer.end_reason or "left")
        if viewer in self.viewers:
            self.viewers.remove(viewer)

    async def wait_started(self) -> None:
        """Until the stream has its init segment."""
        await self._started.wait()

    def receive(self, data: bytes) -> None:
        """One binary message from the publisher; MediaError if it is not acceptable."""
        now = time.time()
        if self.init_info is None:
            self.init_info = parse_init(data)
            self.init = Piece("init", data, True, now)
            self.bytes_in += len(data)
            for viewer in self.viewers:
                viewer.give_init(self.init)
            self._started.set()
            return
        keyframe = fragment_keyframe(data, self.init_info)
        if self.first_fragment is None:
            self.first_fragment = datetime.fromtimestamp(now, UTC)
        self.bytes_in += len(data)
        self.fragments_in += 1
        self.keyframes_in += keyframe
        self.last_received = now
        piece = Piece("media", data, keyframe, now)
        self.gop.add(piece)
        for viewer in self.viewers:
            viewer.offer(piece)

    def attach_publisher(self) -> None:
        self.publisher = True
        self.publisher_since = datetime.now(UTC)

    def detach_publisher(self, reason: str) -> None:
        """The publisher is gone: every viewer's stream ends; a new publisher starts afresh."""
        self.publisher = False
        self.publisher_since = None
        self.init = None
        self.init_info = None
        self.gop.clear()
        self._started.clear()
        for viewer in list(self.viewers):
            viewer.end(reason)

    def stats(self) -> dict[str, object]:
        age = None if self.last_received is None else round(time.time() - self.last_received, 3)
        return {
            "session": self.id,
            "site": self.record.site,
            "camera": self.record.camera,
            "case": self.record.case,
            "request": self.record.request,
            "publisher": self.publisher,
            "publisher_since": self.publisher_since.isoformat() if self.publisher_since else None,
            "expires": self.record.expires.isoformat(),
            "codec": self.init_info.codec_name if self.init_info else None,
            "codecs": self.init_info.codecs if self.init_info else None,
            "started": self.first_fragment.isoformat() if self.first_fragment else None,
            "bytes_in": self.bytes_in,
            "fragments_in": self.fragments_in,
            "keyframes_in": self.keyframes_in,
            "last_fragment_age": age,
            "viewers": [viewer.stats() for viewer in self.viewers],
        }


@dataclass(frozen=True)
class EndedStream:
    """What the relay keeps of a stream that ended: why, when, and what it received."""

    reason: str
    at: datetime
    codec: str | None
    codecs: str | None
    started: datetime | None  # when the first media fragment arrived
    bytes_in: int
    fragments_in: int


class Relay:
    """The sessions the relay currently holds, and its routes."""

    def __init__(
        self,
        store: SessionStore,
        *,
        settings: RelaySettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings or RelaySettings()
        self._clock = clock
        self._sessions: dict[str, LiveSession] = {}
        self._publishers: set[web.WebSocketResponse] = set()
        self._closing = False
        # Why each recent session's stream ended (the site's words when it said why), so a
        # page can say "ended: the owner stopped it" instead of spinning.
        self._ended: OrderedDict[str, EndedStream] = OrderedDict()

    def session(self, session_id: str) -> LiveSession | None:
        """The session if the relay holds it now (a publisher or a viewer is connected)."""
        return self._sessions.get(session_id)

    def _hold(self, record: SessionRecord) -> LiveSession:
        live = self._sessions.get(record.id)
        if live is None:
            live = self._sessions[record.id] = LiveSession(record)
        return live

    def _release(self, live: LiveSession) -> None:
        if not live.publisher and not live.viewers:
            self._sessions.pop(live.id, None)

    def _record(self, request: web.Request, *, viewer: bool) -> SessionRecord:
        session_id = request.match_info["session"]
        record = self.store.get(session_id)
        if viewer:
            token = request.query.get("token")
        else:
            token = _bearer(request.headers.get("Authorization", ""))
        if not token_matches(record, token, viewer=viewer):
            log.warning(
                "relay_auth_refused",
                session=session_id,
                role="viewer" if viewer else "publisher",
                peer=request.remote,
            )
            raise web.HTTPUnauthorized(
                text="this session does not exist or the token is wrong\n",
                headers={"WWW-Authenticate": "Bearer"} if not viewer else None,
            )
        assert record is not None
        if record.expired(self._clock()):
            raise web.HTTPGone(text="this live session has expired\n")
        return record

    # -- the publisher --------------------------------------------------------------------

    async def ingest(self, request: web.Request) -> web.StreamResponse:
        record = self._record(request, viewer=False)
        if self._closing:
            raise web.HTTPServiceUnavailable(text="the relay is shutting down\n")
        ws = web.WebSocketResponse(
            heartbeat=self.settings.heartbeat,
            max_msg_size=MAX_FRAGMENT_BYTES + 1024,
            autoping=True,
        )
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="the ingest endpoint takes a websocket\n")
        live = self._hold(record)
        if live.publisher:
            self._release(live)
            raise web.HTTPConflict(text="another publisher is streaming this session\n")
        live.attach_publisher()
        self._ended.pop(record.id, None)
        self._publishers.add(ws)
        reason = "publisher_closed"
        log.info(
            "relay_publisher_connected", session=record.id, site=record.site, peer=request.remote
        )
        try:
            await ws.prepare(request)
            remaining = (record.expires - self._clock()).total_seconds()
            try:
                async with asyncio.timeout(max(0.0, remaining)):
                    reason = await self._read_publisher(ws, live)
            except TimeoutError:
                reason = "expired"
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session expired")
        finally:
            self._publishers.discard(ws)
            self._note_ended(record.id, reason, live)
            live.detach_publisher(reason)
            self._release(live)
            log.info(
                "relay_publisher_gone",
                session=record.id,
                reason=reason,
                bytes=live.bytes_in,
                fragments=live.fragments_in,
            )
        return ws

    def _note_ended(self, session_id: str, reason: str, live: LiveSession) -> None:
        info = live.init_info
        self._ended[session_id] = EndedStream(
            reason=reason,
            at=datetime.now(UTC),
            codec=info.codec_name if info else None,
            codecs=info.codecs if info else None,
            started=live.first_fragment,
            bytes_in=live.bytes_in,
            fragments_in=live.fragments_in,
        )
        while len(self._ended) > MAX_ENDED_KEPT:
            self._ended.popitem(last=False)

    def status(self, session_id: str) -> dict[str, object] | None:
        """What a page needs to say about a session this relay knows of: `waiting` (no video
        yet), `live`, or `ended` (with why); None if it never saw it."""
        live = self._sessions.get(session_id)
        ended = self._ended.get(session_id)
        if live is not None and live.init is not None:
            info = live.init_info
            return {"state": "live", "codec": info.codec_name if info else None,
                    "codecs": info.codecs if info else None,
                    "viewers": len(live.viewers), "since": live.publisher_since}  # fmt: skip
        if ended is not None:
            return {"state": "ended", "reason": ended.reason, "ended_at": ended.at,
                    "codec": ended.codec, "codecs": ended.codecs, "started": ended.started,
                    "bytes_in": ended.bytes_in, "fragments_in": ended.fragments_in}  # fmt: skip
        if live is not None:
            return {"state": "waiting", "codec": None, "viewers": len(live.viewers)}
        return None

    async def _read_publisher(self, ws: web.WebSocketResponse, live: LiveSession) -> str:
        while True:
            message = await ws.receive()
            if message.type is WSMsgType.CLOSE:
                # The site says why it stops (max_seconds, cancelled, owner_stopped, ...).
                return _site_reason(message.extra) or "publisher_closed"
            if message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                return "publisher_closed"
            if message.type is WSMsgType.BINARY:
                try:
                    live.receive(message.data)
                except MediaError as exc:
                    log.warning("relay_bad_media", session=live.id, error=str(exc))
                    await ws.close(
                        code=WSCloseCode.UNSUPPORTED_DATA, message=str(exc)[:120].encode()
                    )
                    return "bad_media"
            elif message.type is WSMsgType.TEXT:
                await ws.close(
                    code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary fMP4 messages only"
                )
                return "bad_media"
            elif message.type is WSMsgType.ERROR:
                return "publisher_error"

    # -- viewers --------------------------------------------------------------------------

    async def view(self, request: web.Request) -> web.StreamResponse:
        return await self.serve_viewer(request, self._record(request, viewer=True))

    async def serve_viewer(self, request: web.Request, record: SessionRecord) -> web.StreamResponse:
        """Stream `record`'s session to this request (its access already checked: a viewer
        token here, a signed-in analyst on the console's live wall)."""
        if record.expired(self._clock()):
            raise web.HTTPGone(text="this live session has expired\n")
        live = self._hold(record)
        if len(live.viewers) >= self.settings.max_viewers:
            self._release(live)
            raise web.HTTPServiceUnavailable(text="too many viewers on this session\n")
        viewer = live.subscribe(self.settings.viewer_queue_bytes)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.wait_for_publisher):
                    await live.wait_started()
            if live.init is None:
                raise web.HTTPServiceUnavailable(
                    text="the site has not started streaming this session\n",
                    headers={"Retry-After": "5"},
                )
            response = web.StreamResponse(
                headers={
                    "Content-Type": "video/mp4",
                    "Cache-Control": "no-store",
                    "X-Content-Type-Options": "nosniff",
                }
            )
            response.enable_chunked_encoding()
            self._bound_send_buffer(request)
            await response.prepare(request)
            log.info(
                "relay_viewer_joined", session=record.id, viewer=viewer.id, peer=request.remote
            )
            await self._feed(request, response, viewer)
            return response
        finally:
            live.unsubscribe(viewer)
            self._release(live)
            log.info(
                "relay_viewer_left",
                session=record.id,
                viewer=viewer.id,
                reason=viewer.end_reason,
                sent=viewer.sent_bytes,
                skipped=viewer.skipped,
            )

    def _bound_send_buffer(self, request: web.Request) -> None:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.viewer_send_buffer
                )

    async def _feed(
        self, request: web.Request, response: web.StreamResponse, viewer: Viewer
    ) -> None:
        while (piece := await viewer.next()) is not None:
            try:
                async with asyncio.timeout(self.settings.viewer_stall_seconds):
                    await response.write(piece.data)
            except TimeoutError:
                viewer.end("too_slow")
                if request.transport is not None:
                    # A plain close would wait for the unsent bytes to drain, maybe forever.
                    request.transport.abort()
                return
            except (ConnectionError, RuntimeError):
                viewer.end("disconnected")
                return
            viewer.sent_bytes += len(piece.data)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()

    async def page(self, request: web.Request) -> web.Response:
        record = self._record(request, viewer=True)
        token = request.query.get("token", "")
        video = f"{record.id}.mp4?token={quote(token, safe='')}"
        stats = f"{record.id}/stats?token={quote(token, safe='')}"
        text = _page_template().substitute(
            title=html.escape(f"Live: {record.camera} at {record.site}"),
            camera=html.escape(record.camera),
            site=html.escape(record.site),
            case=html.escape(record.case or "-"),
            video_url=html.escape(video, quote=True),
            stats_url=html.escape(stats, quote=True),
            patience=f"{self.settings.wait_for_publisher:g}",
        )
        return web.Response(
            text=text,
            content_type="text/html",
            headers={
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'none'; media-src 'self'; "
                "script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'",
            },
        )

    async def stats(self, request: web.Request) -> web.Response:
        record = self._record(request, viewer=True)
        live = self._sessions.get(record.id)
        data = live.stats() if live is not None else LiveSession(record).stats()
        status = self.status(record.id) or {"state": "waiting"}
        data.update({key: status.get(key) for key in ("state", "reason", "ended_at")})
        data["codec"] = data.get("codec") or status.get("codec")
        data["codecs"] = data.get("codecs") or status.get("codecs")
        if status["state"] == "ended":
            data.update({key: status[key] for key in ("started", "bytes_in", "fragments_in")})
        return web.json_response(data, headers={"Cache-Control": "no-store"}, dumps=_dumps)

    async def close(self, app: web.Application | None = None) -> None:
        """End every stream (the server is shutting down)."""
        self._closing = True
        for live in list(self._sessions.values()):
            for viewer in list(live.viewers):
                viewer.end("relay_shutdown")
        for ws in list(self._publishers):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"relay shutting down")


def _site_reason(extra: object) -> str | None:
    """The reason a site gave in its close frame, if it is one of the protocol's words."""
    text = str(extra or "").strip()
    return text if _REASON.match(text) else None


def _dumps(data: object) -> str:
    return json.dumps(data, default=str)


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def _viewer_script(request: web.Request) -> web.Response:
    text = resources.files("hub").joinpath("live_page.js").read_text(encoding="utf-8")
    return web.Response(
        text=text,
        content_type="text/javascript",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def _page_template() -> Template:
    text = resources.files("hub").joinpath("live_page.html").read_text(encoding="utf-8")
    return Template(text)


RELAY = web.AppKey("rtcc_hub_relay", Relay)


def setup(app: web.Application, context: ServerContext) -> None:
    relay = Relay(SessionStore(context.home))
    app[RELAY] = relay
    app.router.add_get(f"/ingest/{SESSION_PATTERN}", relay.ingest, allow_head=False)
    app.router.add_get(f"/live/{SESSION_PATTERN}.mp4", relay.view, allow_head=False)
    app.router.add_get(f"/live/{SESSION_PATTERN}/stats", relay.stats, allow_head=False)
    app.router.add_get(f"/live/{SESSION_PATTERN}", relay.page, allow_head=False)
    app.router.add_get("/live/viewer.js", _viewer_script, allow_head=False)
    app.on_shutdown.append(relay.close)
