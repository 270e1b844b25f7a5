"""A live session's own RTSP session, for a stream the recorder does not pull (the `sub` profile
of a camera recorded on its main stream, or a camera that is not recorded at all).

The pull runs in a child process started from the recorders' fork server (PyAV preloaded; see
`agent.recorder.supervisor.worker_context`), so a crash or a hang inside libav never takes the
daemon down. The child opens RTSP over TCP, remuxes the video **without transcoding** into
fragmented MP4 (the store's muxer options: a fragment at each keyframe and at most every
`fragment_seconds`) and sends the init segment and each fragment to the daemon with the recorder
IPC framing (`agent.recorder.ipc`). The daemon side publishes them into a private `LiveHub`, so
the session reads them through the same bounded, keyframe-skipping `LiveFeed` as a recorded
camera's fan-out. There is no reconnect: when the camera drops the stream the feed ends (the
session ends with `camera_offline`). Closing stops the child (STOP, then SIGKILL after a grace
period), which closes the RTSP session.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing.process import BaseProcess
from typing import Any

import av
import av.error

from agent.log import configure_logging, get_logger
from agent.media import fmp4
from agent.media.open import open_rtsp, rtsp_options
from agent.media.source import StreamSource
from agent.recorder.ipc import (
    ChannelClosed,
    InitSegment,
    MediaFragment,
    StopRequest,
    WorkerChannel,
    encode_control,
    read_worker_message,
)
from agent.recorder.live import LiveFeed, LiveHub
from agent.recorder.supervisor import worker_context
from agent.store.writer import muxer_options

log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1
_SINK_BUFFER = 256 * 1024


@dataclass(frozen=True)
class OwnStreamSpec:
    camera: str
    source: StreamSource
    fragment_seconds: float = 1.0
    open_timeout: float = 5.0
    read_timeout: float = 10.0
    log_level: str = "info"
    log_format: str = "auto"


class _Sink:
    """Where the muxer writes: an append-only buffer, declared non-seekable on purpose."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


class _Stopped(Exception):
    pass


class _Remuxer:
    """The child's loop: demux RTSP, remux to fMP4, send init and fragments."""

    def __init__(self, spec: OwnStreamSpec, channel: WorkerChannel) -> None:
        self.spec = spec
        self.channel = channel
        self.sink = _Sink()
        self.receipts: deque[int] = deque()
        self.init: bytes | None = None
        self.track: fmp4.TrackInfo | None = None
        self.out: Any = None
        self.out_stream: Any = None

    def run(self) -> None:
        container = open_rtsp(
            self.spec.source,
            rtsp_options(read_timeout=self.spec.read_timeout),
            open_timeout=self.spec.open_timeout,
        )
        try:
            if not container.streams.video:
                raise ValueError("the camera's stream has no video")
            self._pump(container, container.streams.video[0])
        finally:
            container.close()
            if self.out is not None:
                with contextlib.suppress(av.error.FFmpegError):
                    self.out.close()

    def _pump(self, container: Any, stream: Any) -> None:
        fragment_us = int(self.spec.fragment_seconds * 1_000_000)
        extradata = stream.codec_context.extradata
        self.out = av.open(
            self.sink,
            "w",
            format="mp4",
            options=muxer_options(fragment_us, in_band_only=not extradata),
            buffer_size=_SINK_BUFFER,
        )
        self.out_stream = self.out.add_stream_from_template(stream)
        rate = stream.average_rate or stream.guessed_rate or 15
        held: tuple[Any, int, int, bool, int, Fraction] | None = None
        last_duration = 0
        for packet in container.demux(stream):
            if any(isinstance(m, StopRequest) for m in self.channel.poll()):
                raise _Stopped
            received_us = time.time_ns() // 1000
            if packet.size == 0 or packet.dts is None or packet.pts is None:
                continue
            if held is None and not packet.is_keyframe:
                continue  # a player can only start at a keyframe
            if held is not None:
                duration = packet.dts - held[1]
                if duration <= 0:
                    duration = last_duration or max(1, round(1 / (Fraction(rate) * held[5])))
                last_duration = duration
                self._mux(held, duration)
            held = (
                packet,
                packet.dts,
                packet.pts,
                packet.is_keyframe,
                received_us,
                packet.time_base,
            )

    def _mux(self, held: tuple[Any, int, int, bool, int, Fraction], duration: int) -> None:
        packet, dts, pts, _keyframe, received_us, time_base = held
        packet.stream = self.out_stream
        packet.time_base = time_base
        packet.pts, packet.dts, packet.duration = pts, dts, duration
        self.receipts.append(received_us)
        self.out.mux(packet)
        self._drain()

    def _drain(self) -> None:
        buffer = self.sink.buffer
        split = fmp4.split_stream(buffer, have_init=self.init is not None)
        if self.init is None and split.init_end:
            self.init = bytes(buffer[: split.init_end])
            moov = next(b for b in fmp4.iter_boxes(self.init) if b.type == "moov")
            self.track = fmp4.parse_moov(self.init, moov)
            self.channel.send(InitSegment(epoch=1, data=self.init))
        if self.track is not None:
            for moof, mdat in split.fragments:
                fragment = fmp4.parse_fragment(buffer, moof, mdat, self.track)
                receipts = [self.receipts.popleft() for _ in fragment.samples if self.receipts]
                span = fragment.end_pts - fragment.start_pts
                self.channel.send(
                    MediaFragment(
                        epoch=1,
                        keyframe=fragment.keyframe,
                        wall_us=receipts[0] if receipts else time.time_ns() // 1000,
                        duration_us=span * 1_000_000 // self.track.timescale,
                        data=bytes(buffer[moof.offset : mdat.end]),
                    )
                )
        if split.consumed:
            del buffer[: split.consumed]


def stream_main(spec: OwnStreamSpec, sock: socket.socket) -> None:
    """Process entry point: pull, remux and send until stopped or the camera ends the stream."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the daemon's to handle
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # the fork server exits with the daemon
    configure_logging(spec.log_level, fmt=spec.log_format)  # type: ignore[arg-type]
    channel = WorkerChannel(sock)
    try:
        _Remuxer(spec, channel).run()
    except (_Stopped, ChannelClosed):
        pass
    except (av.error.FFmpegError, OSError, RuntimeError, ValueError, fmp4.BoxError) as exc:
        log.warning("own_stream_failed", camera=spec.camera, error=spec.source.redact(str(exc)))
        raise SystemExit(1) from None
    finally:
        channel.close()


class OwnStream:
    """The daemon's side of one own RTSP session: a child process feeding a private LiveHub."""

    def __init__(self, spec: OwnStreamSpec, *, stop_grace: float = 3.0) -> None:
        self.spec = spec
        self.stop_grace = stop_grace
        self._hub = LiveHub([spec.camera])
        self._process: BaseProcess | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def open(self, *, max_queue_bytes: int) -> LiveFeed:
        """Start the child; the feed of what it sends (ends when the child does)."""
        feed = self._hub.subscribe(self.spec.camera, max_queue_bytes=max_queue_bytes)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = worker_context().Process(
            target=stream_main,
            args=(self.spec, child),
            name=f"rtcc-edge live {self.spec.camera}",
        )
        try:
            await asyncio.to_thread(process.start)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self._process = process
        reader, self._writer = await asyncio.open_unix_connection(sock=parent)
        self._reader_task = asyncio.create_task(self._read(reader), name="own-stream-ipc")
        log.info(
            "own_stream_started",
            camera=self.spec.camera,
            pid=process.pid,
            url=self.spec.source.display_url,
        )
        return feed

    async def _read(self, reader: asyncio.StreamReader) -> None:
        camera = self.spec.camera
        try:
            while (message := await read_worker_message(reader)) is not None:
                if isinstance(message, InitSegment):
                    self._hub.publish_init(camera, message.data, session=message.epoch)
                elif isinstance(message, MediaFragment):
                    self._hub.publish_fragment(
                        camera,
                        message.data,
                        keyframe=message.keyframe,
                        wall_us=message.wall_us,
                        duration_us=message.duration_us,
                    )
        except Exception as exc:  # noqa: BLE001 - a confused child ends its feed, nothing more
            log.warning("own_stream_protocol_error", camera=camera, error=str(exc))
        finally:
            self._hub.close()

    async def close(self) -> None:
        """Stop the child (its RTSP session closes with it) and end the feed."""
        process, self._process = self._process, None
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.write(encode_control(StopRequest()))
        if process is not None:
            await asyncio.to_thread(process.join, self.stop_grace)
            if process.exitcode is None:
                log.warning("own_stream_kill", camera=self.spec.camera, pid=process.pid)
                process.kill()
                await asyncio.to_thread(process.join, 5)
            process.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None
        self._hub.close()
