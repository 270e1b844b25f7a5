"""Real, SEI-stamped test media, and a feeder that plays it into a segment writer.

`encode_stamped` encodes a moving test pattern with libx264/libx265 (PyAV's wheel) into MPEG-TS,
the same Annex B bitstream with 90 kHz timestamps an RTSP demuxer gives. Every access unit carries
`camsim.sei.build_sei_nal(capture_us, frame_number)` with capture_us = `spec.start_us + n / fps`,
so the wall-clock span of anything cut from it can be read back with `camsim.sei.stamps_in_file`.
Results are cached by spec in the directory given (tests pass a session-scoped one).

`feed` plays such a file into anything with `write(packet, received_us)` (the store's writer),
with each packet "received" `latency_us` (+ jitter) after its capture time, optionally paced at
`speed` times real time.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol

import av

from camsim.sei import FrameStamp, build_sei_nal, iter_nal_units, read_stamps

FORMAT_VERSION = 1
DEFAULT_START_US = int(datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp() * 1_000_000)


@dataclass(frozen=True)
class MediaSpec:
    codec: Literal["h264", "hevc"] = "h264"
    width: int = 320
    height: int = 240
    fps: int = 15
    gop: int = 15  # frames between keyframes, fixed
    seconds: float = 10.0
    start_us: int = DEFAULT_START_US  # capture time of frame 0
    bitrate: int | None = None  # bits/s; None: constant quality (small files)
    first_frame: int = 0  # frame number stamped on the first frame
    bframes: int = 0  # IP cameras rarely use them; the store must cope if one does

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)

    def capture_us(self, n: int) -> int:
        return self.start_us + n * 1_000_000 // self.fps

    @property
    def end_us(self) -> int:
        return self.capture_us(self.frames)

    def key(self) -> str:
        blob = json.dumps({"v": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _pattern(spec: MediaSpec, n: int, noise: bytes) -> bytes:
    """A diagonal ramp scrolling 4 px per frame, a noisy square, flat chroma that cycles."""
    w, h = spec.width, spec.height
    ramp = bytes((x * 255 // (2 * w)) & 0xFF for x in range(2 * w))
    shift = (n * 4) % w
    rows = [ramp[(shift + y) % w : (shift + y) % w + w] for y in range(h)]
    luma = bytearray(b"".join(rows))
    side = min(32, w // 4, h // 4)
    x0 = (n * 3) % (w - side)
    for y in range(side):
        start = (h // 2 + y - side // 2) * w + x0
        luma[start : start + side] = noise[(y * side + n * 7) % (len(noise) - side) :][:side]
    chroma = bytes([(n * 2) % 256]) * ((w // 2) * (h // 2))
    return bytes(luma) + bytes([128]) * ((w // 2) * (h // 2)) + chroma


def _frame(spec: MediaSpec, planar: bytes) -> av.VideoFrame:
    """A yuv420p frame from tightly packed planes (copied row by row if lines are padded)."""
    frame = av.VideoFrame(spec.width, spec.height, "yuv420p")
    chroma = (spec.width // 2, spec.height // 2)
    sizes = [(spec.width, spec.height), chroma, chroma]
    offset = 0
    for plane, (w, h) in zip(frame.planes, sizes, strict=True):
        data = planar[offset : offset + w * h]
        offset += w * h
        if plane.line_size == w:
            plane.update(data)
        else:
            pad = bytes(plane.line_size - w)
            plane.update(b"".join(data[y * w : (y + 1) * w] + pad for y in range(h)))
    return frame


def _stamp(data: bytes, codec: str, capture_us: int, number: int) -> bytes:
    """Insert the SEI NAL unit just before the access unit's first VCL NAL unit."""
    units = list(iter_nal_units(data, length_prefixed=False))

    def is_vcl(nal: bytes) -> bool:
        if codec == "h264":
            return 1 <= nal[0] & 0x1F <= 5
        return (nal[0] >> 1) & 0x3F < 32

    sei = build_sei_nal(capture_us, number, "h264" if codec == "h264" else "hevc")
    out: list[bytes] = []
    inserted = False
    for nal in units:
        if not nal:
            continue
        if not inserted and is_vcl(nal):
            out.append(sei)
            inserted = True
        out.append(nal)
    if not inserted:
        out.insert(0, sei)
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in out)


def encode_stamped(cache_dir: Path, spec: MediaSpec) -> Path:
    """The MPEG-TS file for `spec`, encoded once per cache directory."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"stamped-{spec.codec}-{spec.width}x{spec.height}-{spec.key()}.ts"
    if path.exists():
        return path
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    encoder: Literal["libx264", "libx265"] = "libx264" if spec.codec == "h264" else "libx265"
    rng = random.Random(spec.start_us)
    noise = bytes(rng.getrandbits(8) for _ in range(64 * 64))
    with av.open(str(tmp), "w", format="mpegts") as out:
        stream = out.add_stream(encoder, rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, spec.fps)
        if spec.bitrate:
            stream.codec_context.bit_rate = spec.bitrate
        if spec.codec == "h264":
            stream.options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "g": str(spec.gop),
                "keyint_min": str(spec.gop),
                "sc_threshold": "0",
                "bf": str(spec.bframes),
                **({} if spec.bitrate else {"crf": "30"}),
            }
        else:
            params = (
                f"keyint={spec.gop}:min-keyint={spec.gop}:scenecut=0:bframes={spec.bframes}"
                ":log-level=error"
            )
            stream.options = {
                "preset": "ultrafast",
                "x265-params": params + ("" if spec.bitrate else ":crf=32"),
            }

        def mux(packets: list[av.Packet[Any]]) -> None:
            for packet in packets:
                assert packet.pts is not None
                n = packet.pts
                data = _stamp(bytes(packet), spec.codec, spec.capture_us(n), spec.first_frame + n)
                stamped = av.Packet(data)
                stamped.pts, stamped.dts = packet.pts, packet.dts
                stamped.time_base = packet.time_base
                stamped.is_keyframe = packet.is_keyframe
                stamped.stream = stream
                out.mux(stamped)

        for n in range(spec.frames):
            frame = _frame(spec, _pattern(spec, n, noise))
            frame.pts = n
            mux(stream.encode(frame))
        mux(stream.encode(None))
    tmp.replace(path)
    return path


@dataclass
class StampedPacket:
    packet: av.Packet[Any]
    stamp: FrameStamp


class StampedSource:
    """A demuxed stamped file: `stream` is the writer's template, `packets()` its packets."""

    def __init__(self, container: Any) -> None:
        self._container = container
        self.stream = container.streams.video[0]
        self.codec: Literal["h264", "hevc"] = (
            "hevc" if self.stream.codec_context.name == "hevc" else "h264"
        )

    def packets(self) -> Iterator[StampedPacket]:
        for packet in self._container.demux(self.stream):
            if not packet.size:
                continue
            stamps = read_stamps(bytes(packet), self.codec, length_prefixed=False)
            assert stamps, "every test packet carries a stamp"
            yield StampedPacket(packet, stamps[0])


@contextmanager
def stamped_source(path: Path) -> Iterator[StampedSource]:
    container = av.open(str(path))
    try:
        yield StampedSource(container)
    finally:
        container.close()


class PacketWriter(Protocol):
    def write(self, packet: av.Packet[Any], received_us: int) -> None: ...


def feed(
    writer: PacketWriter,
    source: StampedSource,
    *,
    latency_us: int = 20_000,
    jitter_us: int = 0,
    speed: float | None = None,
    seed: int = 0,
    until: Callable[[StampedPacket], bool] | None = None,
    after: Callable[[StampedPacket], None] | None = None,
) -> FrameStamp | None:
    """Write every packet (or until `until` says stop); return the last stamp fed."""
    rng = random.Random(seed)
    started = time.monotonic()
    first_us: int | None = None
    last: FrameStamp | None = None
    for item in source.packets():
        if until is not None and until(item):
            break
        if first_us is None:
            first_us = item.stamp.capture_us
        if speed:
            due = started + (item.stamp.capture_us - first_us) / 1_000_000 / speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        received = (
            item.stamp.capture_us + latency_us + (rng.randrange(jitter_us) if jitter_us else 0)
        )
        writer.write(item.packet, received)
        last = item.stamp
        if after is not None:
            after(item)
    return last
