"""Open a camera's RTSP stream with PyAV, read a few seconds and say what it really is.

The open is fast (`agent.media.open`: small probesize, no analyze duration, RTSP over TCP:
~0.25 s instead of ~2 s, see FIELD-NOTES); then packets are read until a second keyframe arrives
(one whole keyframe interval, which also gives an exact bitrate for that interval) or
`max_seconds` pass. Only the
first keyframe is decoded: it gives the true resolution and profile, the time to first frame,
and the snapshot (a JPEG encoded from that very frame). What ONVIF claims about a stream is not
trusted here: cameras report H.264 in GetProfiles while sending H.265.

Timestamps: FFmpeg's RTSP demuxer hands the first packet over before it can time it (no pts),
so the frame rate comes from the packets that have one, and a keyframe interval is the frame
count between two keyframes divided by that rate when the first keyframe has no timestamp.

Everything is blocking (PyAV); `probe_stream_async` runs it in an executor. Errors become a
`ProbeError` whose message never contains the credentials.
"""

from __future__ import annotations

import asyncio
import errno
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal
from urllib.parse import urlsplit

import av
import av.error

from agent.log import get_logger
from agent.media.open import open_rtsp, rtsp_options
from agent.media.source import StreamSource
from agent.neterrors import UNRESOLVED, describe_network_error, host_resolves

log = get_logger(__name__)

ProbeErrorKind = Literal["auth", "not_found", "refused", "timeout", "dropped", "no_video", "error"]


@dataclass(frozen=True)
class ProbeOptions:
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    max_seconds: float = 6.0  # read at most this long after the first keyframe
    keyframes: int = 2  # stop once this many keyframes were seen (2 = one full interval)
    snapshot: bool = True


@dataclass(frozen=True)
class StreamProbe:
    """What the stream carried, measured."""

    url: str  # without credentials
    codec: str
    profile: str | None
    width: int
    height: int
    fps: float | None
    keyframe_interval: float | None  # seconds between two keyframes, when two were seen
    keyframe_interval_at_least: float | None  # only one keyframe seen in this many seconds
    bitrate: float | None  # bits per second
    audio_codec: str | None
    audio_sample_rate: int | None
    time_to_first_frame: float  # from starting to open until the first decoded picture
    seconds_read: float
    frames: int
    keyframes: int
    snapshot: bytes | None = None  # JPEG of the first keyframe

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


class ProbeError(Exception):
    """The stream could not be opened or read; the message is safe to show and log."""

    def __init__(self, kind: ProbeErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


def _error(exc: BaseException, source: StreamSource, options: ProbeOptions) -> ProbeError:
    text = source.redact(str(exc))
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return ProbeError("auth", "the camera refused the RTSP username or password")
    if isinstance(exc, av.error.HTTPNotFoundError):
        return ProbeError("not_found", "the camera has no stream at this RTSP path (404)")
    if isinstance(exc, ConnectionRefusedError):
        return ProbeError("refused", "connection refused: nothing listens on the RTSP port")
    if isinstance(exc, av.error.ExitError | TimeoutError):
        return ProbeError(
            "timeout", f"no video arrived within {options.read_timeout:g} s (a hung stream?)"
        )
    if isinstance(exc, av.error.InvalidDataError):
        return ProbeError("error", "what answers on the RTSP port does not speak RTSP")
    described = describe_network_error(exc)
    if described is None and getattr(exc, "errno", None) == errno.EIO:
        # FFmpeg says EIO ("[Errno 5] Input/output error") when the host name does not
        # resolve; ask the resolver ourselves to say which it was.
        host = urlsplit(source.url).hostname
        if host and not host_resolves(host):
            return ProbeError("error", f"{host}: {UNRESOLVED}")
    if described is not None:
        return ProbeError("dropped", f"the stream could not be opened: {described}")
    return ProbeError("error", f"cannot read the stream: {text[:200]}")


def _dropped(exc: BaseException | None, frames: int, options: ProbeOptions) -> ProbeError:
    """The stream opened and then stopped after `frames` frames: in words, whatever FFmpeg
    raised (or nothing, when it just ended)."""
    if isinstance(exc, av.error.ExitError | TimeoutError):
        what = f"then nothing more came for {options.read_timeout:g} s"
    else:
        what = (describe_network_error(exc) if exc is not None else None) or (
            "the camera closed the connection"
        )
    return ProbeError("dropped", f"the stream broke off after {frames} frame(s): {what}")


class _Measure:
    """Packet bookkeeping from the first keyframe on."""

    def __init__(self) -> None:
        self.frames = 0
        self.keyframes = 0
        self.first_pts: float | None = None  # first timestamped packet
        self.last_pts: float | None = None
        self.timed = 0  # packets with a timestamp
        self.keyframe_pts: list[float | None] = []
        self.frames_at_keyframe: list[int] = []
        self.bytes_at_keyframe: list[int] = []
        self.bytes = 0

    def add(self, size: int, pts: float | None, keyframe: bool) -> None:
        if keyframe:
            self.keyframes += 1
            self.keyframe_pts.append(pts)
            self.frames_at_keyframe.append(self.frames)
            self.bytes_at_keyframe.append(self.bytes)
        self.frames += 1
        self.bytes += size
        if pts is not None:
            if self.first_pts is None:
                self.first_pts = pts
            self.last_pts = pts
            self.timed += 1

    @property
    def fps(self) -> float | None:
        if self.first_pts is None or self.last_pts is None or self.timed < 2:
            return None
        span = self.last_pts - self.first_pts
        return (self.timed - 1) / span if span > 0 else None

    def interval(self) -> tuple[float | None, int, int]:
        """(seconds, frames, bytes) of the first full keyframe interval, if one was seen."""
        if self.keyframes < 2:
            return None, 0, 0
        frames = self.frames_at_keyframe[1] - self.frames_at_keyframe[0]
        size = self.bytes_at_keyframe[1] - self.bytes_at_keyframe[0]
        first, second = self.keyframe_pts[0], self.keyframe_pts[1]
        if first is not None and second is not None and second > first:
            return second - first, frames, size
        fps = self.fps
        return (frames / fps if fps else None), frames, size


def _jpeg(frame: av.VideoFrame) -> bytes | None:
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = frame.width
    encoder.height = frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 1)
    # A generous budget for one picture: the default bit rate makes a blurry still.
    encoder.bit_rate = max(2_000_000, frame.width * frame.height * 4)
    packets = [*encoder.encode(frame.reformat(format="yuvj420p")), *encoder.encode(None)]
    data = b"".join(bytes(p) for p in packets)
    return data or None


def probe_stream(source: StreamSource, options: ProbeOptions | None = None) -> StreamProbe:
    """Open `source`, measure it, take a snapshot; ProbeError if that cannot be done."""
    options = options or ProbeOptions()
    started = time.monotonic()
    try:
        # Audio too (the report names its codec); PyAV bounds every read, libav's socket
        # timeout stands behind it.
        container = open_rtsp(
            source,
            rtsp_options(read_timeout=options.read_timeout, video_only=False),
            open_timeout=options.open_timeout,
            read_timeout=options.read_timeout,
        )
    except (av.error.FFmpegError, OSError, RuntimeError, ValueError) as exc:
        raise _error(exc, source, options) from None
    try:
        return _read(container, source, options, started)
    except ProbeError:
        raise
    except (av.error.FFmpegError, OSError, RuntimeError, ValueError) as exc:
        raise _error(exc, source, options) from None
    finally:
        container.close()


def _read(
    container: Any, source: StreamSource, options: ProbeOptions, started: float
) -> StreamProbe:
    if not container.streams.video:
        raise ProbeError("no_video", "the stream carries no video")
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    codec = video.codec_context
    codec.thread_count = 1  # one picture to decode: no frame-threading delay
    time_base = float(video.time_base) if video.time_base else None
    measure = _Measure()
    picture: av.VideoFrame | None = None
    first_frame_at: float | None = None
    first_keyframe_at: float | None = None
    received = 0
    ended = True  # the demuxer ran dry (the connection ended) rather than us stopping
    packets = container.demux(video)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except (av.error.FFmpegError, OSError, RuntimeError, ValueError) as exc:
            if not received:
                raise _error(exc, source, options) from None
            raise _dropped(exc, received, options) from None
        now = time.monotonic()
        if packet.size == 0:
            continue  # a flush packet: the demuxer has nothing more
        received += 1
        if first_keyframe_at is None:
            if not packet.is_keyframe:
                if now - started > options.open_timeout + options.max_seconds:
                    ended = False
                    break
                continue
            first_keyframe_at = now
        pts = packet.pts * time_base if packet.pts is not None and time_base else None
        measure.add(packet.size, pts, bool(packet.is_keyframe))
        if picture is None:
            for frame in codec.decode(packet):
                picture = frame
                first_frame_at = time.monotonic()
                break
        done = packet.is_keyframe and measure.keyframes >= options.keyframes
        if (done and picture is not None) or now - first_keyframe_at >= options.max_seconds:
            ended = False
            break
    if ended:
        # The stream ended by itself: a camera does not do that, a dropped connection does.
        raise _dropped(None, received, options)
    if first_keyframe_at is None or measure.frames == 0:
        raise ProbeError(
            "timeout",
            f"no keyframe arrived within {options.open_timeout + options.max_seconds:g} s",
        )
    if picture is None:
        raise ProbeError("error", f"the {codec.name} video could not be decoded")
    seconds = time.monotonic() - first_keyframe_at
    interval, frames, size = measure.interval()
    fps = measure.fps
    if interval:
        bitrate: float | None = size * 8 / interval
        fps = frames / interval if measure.keyframe_pts[0] is not None else fps
    else:
        span = (measure.frames / fps) if fps else None
        bitrate = measure.bytes * 8 / span if span else None
    snapshot = _jpeg(picture) if options.snapshot else None
    result = StreamProbe(
        url=source.display_url,
        codec=codec.name,
        profile=str(codec.profile) if codec.profile else None,
        width=picture.width,
        height=picture.height,
        fps=round(fps, 3) if fps else None,
        keyframe_interval=round(interval, 3) if interval else None,
        keyframe_interval_at_least=None if interval else round(seconds, 3),
        bitrate=round(bitrate) if bitrate else None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        time_to_first_frame=round((first_frame_at or time.monotonic()) - started, 3),
        seconds_read=round(seconds, 3),
        frames=measure.frames,
        keyframes=measure.keyframes,
        snapshot=snapshot,
    )
    log.debug(
        "stream_probed",
        url=source.display_url,
        codec=result.codec,
        width=result.width,
        height=result.height,
        fps=result.fps,
        keyframe_interval=result.keyframe_interval,
        bitrate=result.bitrate,
    )
    return result


async def probe_stream_async(
    source: StreamSource, options: ProbeOptions | None = None, *, executor: Executor | None = None
) -> StreamProbe:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, probe_stream, source, options)
