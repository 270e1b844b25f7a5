"""Live fan-out: the very fMP4 fragments a recorder writes, offered to live consumers.

A live view of a recorded camera needs no second RTSP session to the camera (cheap cameras
allow two to four): the recorder worker forwards its writer's init segment and fragments to the
daemon — only while someone subscribes — and `LiveHub` hands them to each subscriber.

    async with hub.subscribe("front-door") as feed:
        async for chunk in feed:          # init first, then media from a keyframe on
            send(chunk.data)

A feed yields the init segment (ftyp + moov) first, then media fragments (moof + mdat) starting
at the last fragment that began with a keyframe: the recorder and the hub keep the current group
of pictures (`GopCache`, bounded), so a new viewer gets a picture at once rather than waiting up
to a GOP for the camera's next keyframe (when nobody watched, the worker replays its own cache
as it starts forwarding). Concatenated, they are one playable
fragmented MP4. Across the recorder's segment boundaries the timeline stays continuous and the
init segment is not repeated unless the codec parameters change. When the recorder loses the
camera and reconnects, the next init segment is delivered again with `discontinuity=True`:
timestamps may restart there, and a consumer that cannot take a new init segment mid-stream
should end its session.

Each subscriber has a bounded queue (`max_queue_bytes`): a consumer that falls behind loses
what it has not read yet and resumes at the next keyframe fragment (`LiveFeed.skipped` counts
the fragments it lost), so a slow consumer never slows the others nor grows memory. A feed ends
(the async iteration stops) when its camera's recorder is stopped for good or the hub closes.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Generic, Literal, Protocol, TypeVar

from agent.log import get_logger

log = get_logger(__name__)

DEFAULT_QUEUE_BYTES = 8 * 1024 * 1024  # ~16 s of a 4 Mbit/s stream
# The fragments since the last keyframe are kept for a viewer who joins now; a camera whose
# keyframes are further apart than this (in bytes) is not cached: its viewers wait as before.
DEFAULT_GOP_BYTES = 4 * 1024 * 1024


class UnknownCamera(KeyError):
    """No recorder is configured for this camera."""


@dataclass(frozen=True, slots=True)
class LiveChunk:
    kind: Literal["init", "media"]
    data: bytes
    # media: the fragment starts with a keyframe (a consumer may start here). init: True.
    keyframe: bool
    # media: agent wall-clock time (UTC) of its first frame, and its duration. init: None, 0.
    wall_time: datetime | None = None
    duration_us: int = 0
    # init only: the stream restarted (reconnect): timestamps may start over from here.
    discontinuity: bool = False


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each ISO-BMFF box in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> bytes | None:
    for kind, body, box_end in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                return data[body:box_end]
            return _child(data, path[1:], body, box_end)
    return None


def codec_signature(init: bytes) -> bytes:
    """What must match for fragments to continue under an earlier init segment: each track's
    media timescale and sample description. Falls back to the whole init segment when it
    cannot be parsed (then any change counts as a change)."""
    moov = _child(init, [b"moov"])
    if moov is None:
        return init
    parts: list[bytes] = []
    for kind, body, box_end in _boxes(moov):
        if kind != b"trak":
            continue
        mdhd = _child(moov, [b"mdia", b"mdhd"], body, box_end)
        stsd = _child(moov, [b"mdia", b"minf", b"stbl", b"stsd"], body, box_end)
        if mdhd is None or stsd is None:
            return init
        # mdhd: version(1) flags(3), then times (4 or 8 bytes each), then the timescale.
        offset = 4 + (16 if mdhd[0] == 1 else 8)
        parts += [mdhd[offset : offset + 4], stsd]
    return b"".join(parts) if parts else init


class _Fragment(Protocol):
    @property
    def keyframe(self) -> bool: ...

    @property
    def data(self) -> bytes: ...


_F = TypeVar("_F", bound=_Fragment)


class GopCache(Generic[_F]):
    """The fragments since the last keyframe (the current group of pictures), bounded.

    A live viewer that joins gets these at once and sees a picture now, instead of waiting up
    to a whole GOP for the camera's next keyframe; it then plays a moment behind live (at most
    one GOP), which is what every live service does to start fast. Memory: at most `max_bytes`
    per camera; a GOP that outgrows it is dropped until the next keyframe."""

    def __init__(self, max_bytes: int = DEFAULT_GOP_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: list[_F] = []
        self._bytes = 0

    def add(self, item: _F) -> None:
        if item.keyframe:
            self._items, self._bytes = [item], len(item.data)
        elif self._items:
            self._items.append(item)
            self._bytes += len(item.data)
        if self._bytes > self.max_bytes:
            self.clear()

    def clear(self) -> None:
        self._items, self._bytes = [], 0

    def items(self) -> list[_F]:
        return list(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes


class _Subscriber:
    def __init__(self, feed: LiveFeed, max_bytes: int) -> None:
        self.feed = feed
        self.max_bytes = max_bytes
        self.queue: deque[LiveChunk] = deque()
        self.queued_bytes = 0
        self.need_keyframe = True
        self.signature: bytes | None = None  # of the init segment this consumer has been sent
        self.epoch: int | None = None  # the source session that init belonged to
        self.skipped = 0
        self.ended = False
        self.waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _put(self, chunk: LiveChunk) -> None:
        self.queue.append(chunk)
        self.queued_bytes += len(chunk.data)
        self._wake()

    def offer(self, chunk: LiveChunk, init: LiveChunk, signature: bytes, epoch: int) -> None:
        if self.ended:
            return
        if self.queued_bytes + len(chunk.data) > self.max_bytes:
            dropped = sum(1 for c in self.queue if c.kind == "media")
            self.queue = deque(c for c in self.queue if c.kind == "init")
            self.queued_bytes = sum(len(c.data) for c in self.queue)
            self.skipped += dropped
            self.need_keyframe = True
            if dropped:
                log.info("live_consumer_behind", camera=self.feed.camera, dropped=dropped)
        new_init = self.epoch != epoch or self.signature != signature
        if (self.need_keyframe or new_init) and not chunk.keyframe:
            # Joining, catching up, or after a change of stream: only a keyframe can start.
            self.need_keyframe = True
            self.skipped += 1 if self.signature is not None else 0
            return
        self.need_keyframe = False
        if new_init:
            restarted = self.epoch is not None and self.epoch != epoch
            self._put(_with_discontinuity(init) if restarted else init)
            self.signature, self.epoch = signature, epoch
        self._put(chunk)

    def end(self) -> None:
        self.ended = True
        self._wake()

    async def next(self) -> LiveChunk:
        while not self.queue:
            if self.ended:
                raise StopAsyncIteration
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        chunk = self.queue.popleft()
        self.queued_bytes -= len(chunk.data)
        return chunk


def _with_discontinuity(init: LiveChunk) -> LiveChunk:
    return LiveChunk("init", init.data, keyframe=True, discontinuity=True)


class LiveFeed:
    """One consumer's view of one camera: an async iterator of `LiveChunk`s."""

    def __init__(self, hub: LiveHub, camera: str, max_bytes: int) -> None:
        self.camera = camera
        self._hub = hub
        self._sub = _Subscriber(self, max_bytes)

    @property
    def skipped(self) -> int:
        """Fragments this consumer lost because it read too slowly."""
        return self._sub.skipped

    @property
    def queued_bytes(self) -> int:
        return self._sub.queued_bytes

    def __aiter__(self) -> LiveFeed:
        return self

    async def __anext__(self) -> LiveChunk:
        return await self._sub.next()

    async def aclose(self) -> None:
        """Stop receiving; the recorder stops forwarding when no one else watches."""
        self._sub.end()
        self._sub.queue.clear()
        self._sub.queued_bytes = 0
        self._hub._unsubscribe(self.camera, self._sub)

    async def __aenter__(self) -> LiveFeed:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@dataclass
class _Source:
    subscribers: list[_Subscriber]
    init: LiveChunk | None = None
    signature: bytes = b""
    epoch: int = 0
    session: int | None = None  # the producer's own session id of the current init
    bytes_in: int = 0  # everything the producer forwarded, for accounting
    gop: GopCache[LiveChunk] = field(default_factory=GopCache)


class LiveHub:
    """Fans each camera's fragments out to its live subscribers.

    `on_demand(camera, wanted)` is called when a camera gets its first subscriber (True) or
    loses its last (False); the supervisor turns the worker's forwarding on and off with it.
    """

    def __init__(
        self,
        cameras: list[str],
        *,
        max_queue_bytes: int = DEFAULT_QUEUE_BYTES,
        on_demand: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._sources = {camera: _Source(subscribers=[]) for camera in cameras}
        self._max_queue_bytes = max_queue_bytes
        self.on_demand = on_demand
        self._closed = False

    # -- consumers -------------------------------------------------------------------------

    def subscribe(self, camera: str, *, max_queue_bytes: int | None = None) -> LiveFeed:
        source = self._sources.get(camera)
        if source is None:
            raise UnknownCamera(camera)
        feed = LiveFeed(self, camera, max_queue_bytes or self._max_queue_bytes)
        if self._closed:
            feed._sub.end()
            return feed
        source.subscribers.append(feed._sub)
        if source.init is not None:
            # Someone already watches: this feed starts at the last keyframe, now.
            for chunk in source.gop.items():
                feed._sub.offer(chunk, source.init, source.signature, source.epoch)
        if len(source.subscribers) == 1 and self.on_demand is not None:
            self.on_demand(camera, True)
        return feed

    def wanted(self, camera: str) -> bool:
        """Whether anyone watches `camera` (the worker should forward fragments)."""
        source = self._sources.get(camera)
        return bool(source and source.subscribers)

    def subscriber_count(self, camera: str) -> int:
        source = self._sources.get(camera)
        return len(source.subscribers) if source else 0

    def bytes_received(self, camera: str) -> int:
        """Bytes the recorder of `camera` has forwarded (only while someone watched)."""
        source = self._sources.get(camera)
        return source.bytes_in if source else 0

    def _unsubscribe(self, camera: str, sub: _Subscriber) -> None:
        source = self._sources[camera]
        if sub in source.subscribers:
            source.subscribers.remove(sub)
            if not source.subscribers:
                # The worker stops forwarding: what is cached would soon be stale. The next
                # viewer gets the worker's own current GOP instead.
                source.gop.clear()
                if self.on_demand is not None and not self._closed:
                    self.on_demand(camera, False)

    # -- the producer (the supervisor, from its workers) ------------------------------------

    def publish_init(self, camera: str, data: bytes, *, session: int) -> None:
        """A new init segment from the recorder. `session` identifies the producer's
        connection to the camera: a new value means timestamps may restart."""
        source = self._sources[camera]
        source.bytes_in += len(data)
        signature = codec_signature(data)
        if source.session != session:
            source.epoch += 1
        elif signature == source.signature and source.init is not None:
            return  # a new segment file with the same parameters: nothing changes for viewers
        source.gop.clear()
        source.session = session
        source.init = LiveChunk("init", data, keyframe=True)
        source.signature = signature

    def publish_fragment(
        self, camera: str, data: bytes, *, keyframe: bool, wall_us: int, duration_us: int = 0
    ) -> None:
        source = self._sources[camera]
        source.bytes_in += len(data)
        if source.init is None:
            return  # no init segment yet for this session: nothing a viewer could decode
        wall_time = datetime.fromtimestamp(wall_us / 1e6, UTC)
        chunk = LiveChunk("media", data, keyframe, wall_time, duration_us)
        source.gop.add(chunk)
        for sub in source.subscribers:
            sub.offer(chunk, source.init, source.signature, source.epoch)

    def interrupt(self, camera: str) -> None:
        """The recorder's stream broke (worker restarting): feeds stay open and wait for the
        next init segment, which they will get flagged as a discontinuity."""
        source = self._sources[camera]
        source.init = None
        source.session = None
        source.gop.clear()

    def close_camera(self, camera: str) -> None:
        """End every feed of `camera` (its recorder stopped for good)."""
        source = self._sources[camera]
        for sub in source.subscribers:
            sub.end()
        source.subscribers.clear()
        source.init = None
        source.session = None
        source.gop.clear()

    def add_camera(self, camera: str) -> None:
        """A camera the configuration gained (on reload)."""
        self._sources.setdefault(camera, _Source(subscribers=[]))

    def remove_camera(self, camera: str) -> None:
        """A camera the configuration lost (on reload): its feeds end, later ones are refused."""
        if camera in self._sources:
            self.close_camera(camera)
            del self._sources[camera]

    def close(self) -> None:
        """End every feed; later subscriptions end at once."""
        self._closed = True
        for camera in self._sources:
            self.close_camera(camera)
