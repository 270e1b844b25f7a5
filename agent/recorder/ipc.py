"""Messages between a recorder worker process and the daemon, over one Unix stream socket.

Each message is a frame: payload length (u32, big endian), kind (u8), payload. The worker
sends status reports (also its heartbeat), and — only while the daemon asked for live video —
the init segment and media fragments its segment writer produced. The daemon sends `stop` and
`live on/off`. Status payloads are JSON checked by a pydantic model; media payloads carry a
small binary header and the muxed bytes as they are (no copy into JSON).

The worker side (`WorkerChannel`) is synchronous: the worker's only thread spends its time in
libav and polls the socket between packets. The daemon side (`read_worker_message`,
`encode_control`) is asyncio.
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_HEADER = struct.Struct(">IB")
_INIT = struct.Struct(">I")  # epoch
_FRAGMENT = struct.Struct(">IBqq")  # epoch, flags, wall-clock µs of its first frame, duration
_FLAG_KEYFRAME = 0x01

# A fragment is at most ~1 s of one camera's video; 64 MiB is far beyond any real one and
# keeps a confused peer from making the daemon allocate without bound.
MAX_PAYLOAD = 64 * 1024 * 1024


class Kind(IntEnum):
    STATUS = 1
    INIT = 2
    FRAGMENT = 3
    STOP = 16
    LIVE = 17


WorkerPhase = Literal[
    "connecting", "recording", "reconnecting", "disk_full", "store_error", "stopping"
]


class StatusReport(BaseModel):
    """What a worker says about itself: sent on every phase change, about once a second while
    packets arrive, and as a heartbeat while it waits (backoff, disk full)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: WorkerPhase
    error: str | None = Field(None, max_length=2000)
    segment: str | None = Field(None, max_length=255)
    bytes_written: int = Field(0, ge=0)
    packets: int = Field(0, ge=0)
    last_frame_us: int | None = Field(None, ge=0)
    codec: str | None = Field(None, max_length=32)
    width: int | None = Field(None, ge=0)
    height: int | None = Field(None, ge=0)


@dataclass(frozen=True, slots=True)
class InitSegment:
    """The fMP4 header (ftyp + moov) of the stream now being recorded. `epoch` counts the
    worker's writer sessions: a new epoch means a new connection to the camera."""

    epoch: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MediaFragment:
    """One moof + mdat exactly as written to the segment file."""

    epoch: int
    keyframe: bool
    wall_us: int
    duration_us: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StopRequest:
    """Close the open segment at its last complete fragment and exit."""


@dataclass(frozen=True, slots=True)
class LiveRequest:
    """Start (or stop) sending init segment and fragments to the daemon."""

    wanted: bool


WorkerMessage = StatusReport | InitSegment | MediaFragment
ControlMessage = StopRequest | LiveRequest


class ProtocolError(Exception):
    """A frame that does not follow this protocol (the peer is confused or not ours)."""


class ChannelClosed(Exception):
    """The other end is gone."""


def _frame(kind: Kind, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), kind) + payload


def encode_worker_message(message: WorkerMessage) -> list[bytes]:
    """The frame as a list of buffers, so a large fragment is never copied to be framed."""
    if isinstance(message, StatusReport):
        return [_frame(Kind.STATUS, message.model_dump_json(exclude_none=True).encode())]
    if isinstance(message, InitSegment):
        head = _INIT.pack(message.epoch)
        return [_HEADER.pack(len(head) + len(message.data), Kind.INIT) + head, message.data]
    flags = _FLAG_KEYFRAME if message.keyframe else 0
    head = _FRAGMENT.pack(message.epoch, flags, message.wall_us, message.duration_us)
    return [_HEADER.pack(len(head) + len(message.data), Kind.FRAGMENT) + head, message.data]


def encode_control(message: ControlMessage) -> bytes:
    if isinstance(message, StopRequest):
        return _frame(Kind.STOP, b"")
    return _frame(Kind.LIVE, b"\x01" if message.wanted else b"\x00")


def decode_worker_payload(kind: int, payload: bytes) -> WorkerMessage:
    if kind == Kind.STATUS:
        try:
            return StatusReport.model_validate_json(payload)
        except ValidationError as exc:
            raise ProtocolError(f"bad status report: {exc.errors()[0]['msg']}") from exc
    if kind == Kind.INIT:
        if len(payload) <= _INIT.size:
            raise ProtocolError("empty init segment")
        (epoch,) = _INIT.unpack_from(payload)
        return InitSegment(epoch=epoch, data=payload[_INIT.size :])
    if kind == Kind.FRAGMENT:
        if len(payload) <= _FRAGMENT.size:
            raise ProtocolError("empty media fragment")
        epoch, flags, wall_us, duration_us = _FRAGMENT.unpack_from(payload)
        return MediaFragment(
            epoch=epoch,
            keyframe=bool(flags & _FLAG_KEYFRAME),
            wall_us=wall_us,
            duration_us=duration_us,
            data=payload[_FRAGMENT.size :],
        )
    raise ProtocolError(f"unknown message kind {kind} from worker")


def decode_control_payload(kind: int, payload: bytes) -> ControlMessage:
    if kind == Kind.STOP and not payload:
        return StopRequest()
    if kind == Kind.LIVE and payload in (b"\x00", b"\x01"):
        return LiveRequest(wanted=payload == b"\x01")
    raise ProtocolError(f"bad control message kind={kind} length={len(payload)}")


async def read_worker_message(reader: asyncio.StreamReader) -> WorkerMessage | None:
    """The next message from a worker; None when it closed the socket between messages."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed inside a frame header") from exc
        return None
    length, kind = _HEADER.unpack(header)
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_PAYLOAD} limit")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("connection closed inside a frame") from exc
    return decode_worker_payload(kind, payload)


class ControlDecoder:
    """Incremental decoder for the (tiny) control frames the daemon sends a worker."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[ControlMessage]:
        self._buffer += data
        out: list[ControlMessage] = []
        while len(self._buffer) >= _HEADER.size:
            length, kind = _HEADER.unpack_from(self._buffer)
            if length > 16:
                raise ProtocolError(f"control frame of {length} bytes")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            out.append(decode_control_payload(kind, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return out


class WorkerChannel:
    """The worker's end of the socket: blocking sends, non-blocking polls for control."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._decoder = ControlDecoder()
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)

    def send(self, message: WorkerMessage) -> None:
        buffers = [memoryview(b) for b in encode_worker_message(message)]
        try:
            while buffers:
                # A signal can interrupt a blocking send part-way: carry on from there.
                sent = self._sock.sendmsg(buffers)
                while buffers and sent >= len(buffers[0]):
                    sent -= len(buffers[0])
                    buffers.pop(0)
                if buffers and sent:
                    buffers[0] = buffers[0][sent:]
        except OSError as exc:
            raise ChannelClosed(str(exc)) from exc

    def poll(self, timeout: float = 0.0) -> list[ControlMessage]:
        """Control messages that have arrived, waiting up to `timeout` seconds for the first.

        Raises ChannelClosed when the daemon has gone away (the socket reached EOF)."""
        if not self._poller.poll(max(0, int(timeout * 1000))):
            return []
        try:
            data = self._sock.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return []
        except OSError as exc:
            raise ChannelClosed(str(exc)) from exc
        if not data:
            raise ChannelClosed("daemon closed the control socket")
        return self._decoder.feed(data)

    def close(self) -> None:
        self._sock.close()
