"""The video a simulated camera serves: encoded once with PyAV, then looped for free.

A real camera encodes continuously; camsim encodes a few GOPs of a moving, noisy test pattern at
start-up (fixed, closed GOP, target bitrate; no B-frames unless the spec asks for them) and
loops them, so serving 16 cameras costs almost nothing. Encodings are cached in-process and on
disk (`$XDG_CACHE_HOME/camsim`), keyed by a hash of the spec and the cache format version, so a
test session or a bench does not re-encode 1080p every time.

Frames hold their NAL units without start codes, with the parameter sets, SEI and access-unit
delimiters stripped: the RTSP server puts the parameter sets back before every keyframe and adds
its own timing SEI to every frame at send time.

With B-frames, frames are kept in decode order (the order they are sent) and each carries its
`pts_offset`: its presentation index minus its decode index, in frames (a P-frame sent ahead of
the B-frames that reference it has a positive one, those B-frames a negative one). RTP carries
presentation times, so the server stamps each frame with its decode index plus that offset.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter
import structlog
from av.video.frame import PictureType, VideoFrame

from camsim.sei import Codec, iter_nal_units

# camsim never imports agent; structlog is configured by whoever runs it (CLI, tests).
log = structlog.get_logger(__name__)

# Bump when the encoder settings or the file layout change: old cache files are then ignored.
CACHE_FORMAT_VERSION = 1
_MAGIC = b"CAMSIMES"
_HEADER_LEN = struct.Struct(">I")
_MAX_HEADER_BYTES = 4 * 1024 * 1024

# NAL unit types (H.264 nal_unit_type, H.265 nal_unit_type).
_H264_SEI, _H264_SPS, _H264_PPS, _H264_AUD, _H264_FILLER, _H264_IDR = 6, 7, 8, 9, 12, 5
_HEVC_VPS, _HEVC_SPS, _HEVC_PPS, _HEVC_AUD = 32, 33, 34, 35
_HEVC_SEI = (39, 40)
_HEVC_FILLER = 38
_HEVC_IRAP = range(16, 24)


@dataclass(frozen=True)
class VideoSpec:
    """What a camera stream looks like. Frozen and hashable: it keys the encode cache."""

    codec: Codec = "h264"
    width: int = 1920
    height: int = 1080
    fps: int = 15
    gop: int = 30  # frames between keyframes (fixed; no scene-cut keyframes)
    bitrate: int = 4_000_000  # bits/s
    bframes: int = 0  # consecutive B-frames the encoder may use (0: none, like most cameras)

    def __post_init__(self) -> None:
        if self.codec not in ("h264", "hevc"):
            raise ValueError(f"codec must be 'h264' or 'hevc', not {self.codec!r}")
        for name, value, low, high in (
            ("width", self.width, 16, 4096),
            ("height", self.height, 16, 2304),
            ("fps", self.fps, 1, 60),
            ("gop", self.gop, 1, 600),
            ("bitrate", self.bitrate, 16_000, 50_000_000),
            ("bframes", self.bframes, 0, 4),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in [{low}, {high}], not {value!r}")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even, not {self.width}x{self.height}")


@dataclass(frozen=True)
class EncodedFrame:
    """One access unit: its NAL units (no start codes) and whether it is an IDR/IRAP picture."""

    nal_units: tuple[bytes, ...]
    keyframe: bool
    pts_offset: int = 0  # presentation index minus decode index, in frames (B-frames only)

    @property
    def size(self) -> int:
        return sum(len(nal) for nal in self.nal_units)


@dataclass(frozen=True)
class ParameterSets:
    """SPS/PPS (and VPS for H.265) as NAL units without start codes."""

    sps: bytes
    pps: bytes
    vps: bytes | None = None

    def nal_units(self) -> tuple[bytes, ...]:
        """In the order a decoder needs them before a keyframe."""
        return (self.vps, self.sps, self.pps) if self.vps is not None else (self.sps, self.pps)


@dataclass(frozen=True, eq=False)  # identity hash: servers key per-stream state on the object
class EncodedStream:
    """What one RTSP path serves: whole GOPs encoded once, played in a loop.

    frames[0] is a keyframe and len(frames) is a multiple of spec.gop, so the loop point is clean.
    """

    spec: VideoSpec
    frames: tuple[EncodedFrame, ...]
    parameter_sets: ParameterSets

    @property
    def duration(self) -> float:
        return len(self.frames) / self.spec.fps

    @property
    def reorder_delay(self) -> int:
        """Frames between capturing a picture and sending it, at least: the largest amount by
        which a frame is presented after its decode position (0 without B-frames)."""
        return max((f.pts_offset for f in self.frames), default=0)

    @property
    def actual_bitrate(self) -> float:
        """Bits per second of the looped frames (parameter sets and SEI not counted)."""
        return sum(f.size for f in self.frames) * 8 / self.duration

    def annexb(self) -> bytes:
        """The loop as an Annex B elementary stream, parameter sets before every keyframe."""
        out = bytearray()
        for frame in self.frames:
            units = (
                (*self.parameter_sets.nal_units(), *frame.nal_units)
                if frame.keyframe
                else frame.nal_units
            )
            for nal in units:
                out += b"\x00\x00\x00\x01" + nal
        return bytes(out)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "camsim"


def gop_count(spec: VideoSpec, seconds: float) -> int:
    """Whole GOPs covering `seconds`; at least two so consecutive IDRs differ (idr_pic_id)."""
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 600:
        raise ValueError(f"seconds must be in (0, 600], not {seconds!r}")
    return max(2, math.ceil(seconds * spec.fps / spec.gop))


# ---------------------------------------------------------------------------------------------
# Content and encoding


def _test_pattern(spec: VideoSpec, *, pix_fmt: str = "yuv420p") -> Iterator[VideoFrame]:
    """A moving test pattern (with a burned-in clock and frame counter) plus temporal noise, so
    the encoder spends a realistic bitrate instead of coding a static picture for nothing."""
    graph = av.filter.Graph()
    source = graph.add("testsrc2", f"size={spec.width}x{spec.height}:rate={spec.fps}")
    noise = graph.add("noise", "alls=10:allf=t")
    fmt = graph.add("format", f"pix_fmts={pix_fmt}")
    sink = graph.add("buffersink")
    source.link_to(noise)
    noise.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    while True:
        frame = sink.pull()
        assert isinstance(frame, VideoFrame)
        yield frame


def _encoder(spec: VideoSpec) -> av.video.codeccontext.VideoCodecContext:
    kbps = spec.bitrate // 1000
    # Closed GOPs (the x264/x265 default, and open-gop=0 below): a GOP's frames are all sent
    # before the next keyframe, so the loop point stays clean with B-frames too.
    common = f"keyint={spec.gop}:min-keyint={spec.gop}:scenecut=0:bframes={spec.bframes}"
    vbv = f"vbv-maxrate={kbps}:vbv-bufsize={kbps}"
    if spec.codec == "h264":
        ctx = av.CodecContext.create("libx264", "w")
        ctx.options = {"preset": "veryfast", "x264-params": f"{common}:{vbv}"}
    else:
        ctx = av.CodecContext.create("libx265", "w")
        # open-gop=0: every keyframe is an IDR, so a client can start at any of them.
        params = f"{common}:open-gop=0:info=0:log-level=error:{vbv}"
        ctx.options = {"preset": "ultrafast", "x265-params": params}
    assert isinstance(ctx, av.video.codeccontext.VideoCodecContext)
    ctx.width = spec.width
    ctx.height = spec.height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, spec.fps)
    ctx.framerate = Fraction(spec.fps, 1)
    ctx.bit_rate = spec.bitrate
    ctx.gop_size = spec.gop
    ctx.max_b_frames = spec.bframes
    # Frame threads, not slices: one slice per picture, as most cameras send.
    ctx.thread_type = "FRAME"
    ctx.open()
    return ctx


def _nal_type(nal: bytes, codec: Codec) -> int:
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


def _split_access_unit(
    data: bytes, codec: Codec, params: dict[str, bytes]
) -> tuple[tuple[bytes, ...], bool]:
    """Picture NAL units of one encoded packet; parameter sets go to `params`, SEI/AUD dropped."""
    units: list[bytes] = []
    keyframe = False
    names = (
        {_H264_SPS: "sps", _H264_PPS: "pps"}
        if codec == "h264"
        else {_HEVC_VPS: "vps", _HEVC_SPS: "sps", _HEVC_PPS: "pps"}
    )
    dropped = (
        {_H264_SEI, _H264_AUD, _H264_FILLER}
        if codec == "h264"
        else {*_HEVC_SEI, _HEVC_AUD, _HEVC_FILLER}
    )
    for nal in iter_nal_units(data, length_prefixed=False):
        if not nal:
            continue
        kind = _nal_type(nal, codec)
        if kind in names:
            previous = params.setdefault(names[kind], nal)
            if previous != nal:
                raise RuntimeError(f"encoder changed its {names[kind]} mid-stream")
        elif kind not in dropped:
            units.append(nal)
            keyframe |= kind == _H264_IDR if codec == "h264" else kind in _HEVC_IRAP
    return tuple(units), keyframe


def _encode(spec: VideoSpec, gops: int) -> EncodedStream:
    total = gops * spec.gop
    ctx = _encoder(spec)
    params: dict[str, bytes] = {}
    frames: list[EncodedFrame] = []

    def collect(packets: Sequence[av.Packet[Any]]) -> None:
        for packet in packets:
            units, keyframe = _split_access_unit(bytes(packet), spec.codec, params)
            if units:
                assert packet.pts is not None  # in frames: the encoder's time base is 1/fps
                frames.append(EncodedFrame(units, keyframe, packet.pts - len(frames)))

    pattern = _test_pattern(spec)
    for index in range(total):
        picture = next(pattern)
        picture.pts = index
        # The filter graph marks its frames as I pictures, which would force an IDR each time.
        picture.pict_type = PictureType.NONE
        collect(ctx.encode(picture))
    collect(ctx.encode(None))
    if len(frames) != total:
        raise RuntimeError(f"encoder produced {len(frames)} frames, expected {total}")
    for index, encoded in enumerate(frames):
        if encoded.keyframe != (index % spec.gop == 0):
            raise RuntimeError(f"keyframe pattern broken at frame {index} (gop {spec.gop})")
    presented = sorted(index + f.pts_offset for index, f in enumerate(frames))
    if presented != list(range(total)) or any(f.pts_offset for f in frames[:: spec.gop]):
        raise RuntimeError("presentation order does not stay within closed GOPs")
    if "sps" not in params or "pps" not in params or (spec.codec == "hevc") != ("vps" in params):
        raise RuntimeError(f"encoder did not emit parameter sets: {sorted(params)}")
    parameter_sets = ParameterSets(sps=params["sps"], pps=params["pps"], vps=params.get("vps"))
    return EncodedStream(spec=spec, frames=tuple(frames), parameter_sets=parameter_sets)


# ---------------------------------------------------------------------------------------------
# On-disk cache


class CacheError(ValueError):
    """A cache file is unreadable, truncated, altered or for another spec."""


def _spec_ident(spec: VideoSpec) -> dict[str, Any]:
    """The spec as cache files record it; `bframes` only when used, so that the files of
    streams without B-frames written before it existed stay valid."""
    ident = asdict(spec)
    if not spec.bframes:
        del ident["bframes"]
    return ident


def _cache_key(spec: VideoSpec, gops: int) -> str:
    ident = {"format": CACHE_FORMAT_VERSION, "spec": _spec_ident(spec), "gops": gops}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _frame_entry(frame: EncodedFrame) -> list[Any]:
    """[keyframe, NAL sizes] and, for a frame presented out of decode order, its offset."""
    entry: list[Any] = [int(frame.keyframe), [len(n) for n in frame.nal_units]]
    if frame.pts_offset:
        entry.append(frame.pts_offset)
    return entry


def _serialize(stream: EncodedStream, gops: int) -> bytes:
    blob = b"".join(nal for frame in stream.frames for nal in frame.nal_units)
    ps = stream.parameter_sets
    header = {
        "format": CACHE_FORMAT_VERSION,
        "spec": _spec_ident(stream.spec),
        "gops": gops,
        "parameter_sets": {"sps": _b64(ps.sps), "pps": _b64(ps.pps), "vps": _b64(ps.vps)},
        "frames": [_frame_entry(f) for f in stream.frames],
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    return _MAGIC + _HEADER_LEN.pack(len(raw)) + raw + blob


def _unb64(value: Any, *, optional: bool = False) -> bytes | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise CacheError("bad parameter set")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise CacheError("bad parameter set encoding") from exc


def _deserialize(data: bytes, spec: VideoSpec, gops: int) -> EncodedStream:
    prefix = len(_MAGIC) + _HEADER_LEN.size
    if len(data) < prefix or not data.startswith(_MAGIC):
        raise CacheError("not a camsim cache file")
    (header_len,) = _HEADER_LEN.unpack_from(data, len(_MAGIC))
    if header_len > _MAX_HEADER_BYTES or prefix + header_len > len(data):
        raise CacheError("truncated header")
    try:
        header = json.loads(data[prefix : prefix + header_len])
    except ValueError as exc:
        raise CacheError("header is not JSON") from exc
    if not isinstance(header, dict):
        raise CacheError("header is not an object")
    if header.get("format") != CACHE_FORMAT_VERSION:
        raise CacheError(f"format {header.get('format')!r} is not {CACHE_FORMAT_VERSION}")
    if header.get("spec") != _spec_ident(spec) or header.get("gops") != gops:
        raise CacheError("cache file is for another spec")
    blob = data[prefix + header_len :]
    if hashlib.sha256(blob).hexdigest() != header.get("sha256"):
        raise CacheError("frame data does not match its hash")
    table = header.get("frames")
    if not isinstance(table, list) or len(table) != gops * spec.gop:
        raise CacheError("wrong frame count")
    frames: list[EncodedFrame] = []
    pos = 0
    for entry in table:
        if (
            not isinstance(entry, list)
            or len(entry) not in (2, 3)
            or entry[0] not in (0, 1)
            or not isinstance(entry[1], list)
            or not all(isinstance(n, int) and n > 0 for n in entry[1])
            or (len(entry) == 3 and (type(entry[2]) is not int or abs(entry[2]) > spec.gop))
        ):
            raise CacheError("bad frame entry")
        units = []
        for size in entry[1]:
            units.append(blob[pos : pos + size])
            pos += size
        offset = entry[2] if len(entry) == 3 else 0
        frames.append(EncodedFrame(tuple(units), bool(entry[0]), offset))
    if pos != len(blob):
        raise CacheError("frame table does not cover the data")
    if any(f.keyframe != (i % spec.gop == 0) for i, f in enumerate(frames)):
        raise CacheError("keyframe pattern does not match the GOP")
    ps = header.get("parameter_sets")
    if not isinstance(ps, dict):
        raise CacheError("missing parameter sets")
    sps, pps = _unb64(ps.get("sps")), _unb64(ps.get("pps"))
    vps = _unb64(ps.get("vps"), optional=True)
    assert sps is not None and pps is not None
    if (spec.codec == "hevc") != (vps is not None):
        raise CacheError("parameter sets do not match the codec")
    return EncodedStream(spec, tuple(frames), ParameterSets(sps=sps, pps=pps, vps=vps))


class StreamCache:
    """Encoded loops on disk, one file per (spec, length), written atomically."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else default_cache_dir()

    def path_for(self, spec: VideoSpec, gops: int) -> Path:
        key = _cache_key(spec, gops)[:24]
        name = f"{spec.codec}-{spec.width}x{spec.height}-{spec.fps}fps-{key}.camsim"
        return self.directory / name

    def load(self, spec: VideoSpec, gops: int) -> EncodedStream | None:
        path = self.path_for(spec, gops)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("camsim_cache_unreadable", path=str(path), error=str(exc))
            return None
        try:
            return _deserialize(data, spec, gops)
        except CacheError as exc:
            log.warning("camsim_cache_invalid", path=str(path), error=str(exc))
            return None

    def store(self, stream: EncodedStream, gops: int) -> None:
        path = self.path_for(stream.spec, gops)
        tmp: Path | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=self.directory, prefix=".tmp-", suffix=".camsim", delete=False
            ) as file:
                tmp = Path(file.name)
                file.write(_serialize(stream, gops))
                file.flush()
                os.fsync(file.fileno())
            tmp.replace(path)
        except OSError as exc:
            # A read-only home is no reason to fail: the stream is simply encoded next time too.
            log.warning("camsim_cache_write_failed", path=str(path), error=str(exc))
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def get(self, spec: VideoSpec, gops: int) -> EncodedStream:
        stream = self.load(spec, gops)
        if stream is None:
            log.info(
                "camsim_encoding",
                codec=spec.codec,
                width=spec.width,
                height=spec.height,
                fps=spec.fps,
                gop=spec.gop,
                bitrate=spec.bitrate,
                frames=gops * spec.gop,
            )
            stream = _encode(spec, gops)
            self.store(stream, gops)
        return stream


_memory: dict[tuple[VideoSpec, int, Path], EncodedStream] = {}
_locks: dict[tuple[VideoSpec, int, Path], threading.Lock] = {}
_locks_guard = threading.Lock()


def encode_stream(
    spec: VideoSpec, *, seconds: float = 6.0, cache_dir: Path | None = None
) -> EncodedStream:
    """The looped stream for `spec`: at least `seconds` long, rounded up to whole GOPs.

    Cached per spec in this process and on disk; blocking (run it in a thread from async code
    if the spec is not cached yet). Concurrent callers for the same spec encode it once.
    """
    gops = gop_count(spec, seconds)
    cache = StreamCache(cache_dir)
    key = (spec, gops, cache.directory)
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        stream = _memory.get(key)
        if stream is None:
            stream = cache.get(spec, gops)
            _memory[key] = stream
        return stream


@functools.lru_cache(maxsize=32)
def snapshot_jpeg(spec: VideoSpec) -> bytes:
    """A JPEG of the camera's picture at the stream's resolution (for ONVIF GetSnapshotUri)."""
    frame = next(_test_pattern(spec, pix_fmt="yuvj420p"))
    ctx = av.CodecContext.create("mjpeg", "w")
    assert isinstance(ctx, av.video.codeccontext.VideoCodecContext)
    ctx.width = spec.width
    ctx.height = spec.height
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, spec.fps)
    # A fixed quantiser: camera-like quality and size, independent of the stream bitrate.
    ctx.qscale = True
    ctx.options = {"qmin": "5", "qmax": "5"}
    ctx.open()
    frame.pts = 0
    frame.pict_type = PictureType.NONE
    packets = [*ctx.encode(frame), *ctx.encode(None)]
    if len(packets) != 1:
        raise RuntimeError(f"mjpeg encoder produced {len(packets)} packets")
    return bytes(packets[0])
