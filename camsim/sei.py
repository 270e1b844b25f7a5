"""Wall-clock capture times carried in every frame, as an SEI user-data-unregistered message.

camsim stamps each access unit it sends with the time it was "captured" (sent), so a test can
read the exact time span of any recording, clip or live stream back out of the bitstream,
independently of the agent's own bookkeeping. Format of the SEI payload (after the 16-byte UUID):

    version (u8 = 1) | capture time, microseconds since the Unix epoch (i64, big endian)
    | frame number since the stream started (u32, big endian)

H.264 carries it in an SEI NAL unit (type 6), H.265 in a prefix SEI NAL unit (type 39).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Codec = Literal["h264", "hevc"]

SEI_UUID = bytes.fromhex("7274636365646765a1b2c3d4e5f60718")  # "rtccedge" + 8 random bytes
_PAYLOAD = struct.Struct(">BqI")
_USER_DATA_UNREGISTERED = 5


@dataclass(frozen=True)
class FrameStamp:
    capture_us: int
    frame_number: int

    @property
    def capture_time(self) -> float:
        return self.capture_us / 1_000_000


def escape_rbsp(payload: bytes) -> bytes:
    """Insert emulation-prevention bytes: 00 00 0x (x <= 3) becomes 00 00 03 0x."""
    out = bytearray()
    zeros = 0
    for byte in payload:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def unescape_rbsp(data: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    i = 0
    while i < len(data):
        byte = data[i]
        if zeros >= 2 and byte == 3:
            zeros = 0
            i += 1
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
        i += 1
    return bytes(out)


def _sei_value(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes([value % 255])


def build_sei_nal(capture_us: int, frame_number: int, codec: Codec = "h264") -> bytes:
    """One SEI NAL unit (no start code, no length prefix) carrying a FrameStamp."""
    body = SEI_UUID + _PAYLOAD.pack(1, capture_us, frame_number & 0xFFFFFFFF)
    message = _sei_value(_USER_DATA_UNREGISTERED) + _sei_value(len(body)) + body
    rbsp = message + b"\x80"
    header = b"\x06" if codec == "h264" else bytes([39 << 1, 0x01])
    return header + escape_rbsp(rbsp)


def _parse_sei_rbsp(rbsp: bytes) -> Iterator[FrameStamp]:
    i = 0
    while i < len(rbsp) and rbsp[i] != 0x80:
        payload_type = 0
        while i < len(rbsp) and rbsp[i] == 0xFF:
            payload_type += 255
            i += 1
        if i >= len(rbsp):
            return
        payload_type += rbsp[i]
        i += 1
        size = 0
        while i < len(rbsp) and rbsp[i] == 0xFF:
            size += 255
            i += 1
        if i >= len(rbsp):
            return
        size += rbsp[i]
        i += 1
        body = rbsp[i : i + size]
        i += size
        if (
            payload_type == _USER_DATA_UNREGISTERED
            and len(body) == 16 + _PAYLOAD.size
            and body[:16] == SEI_UUID
        ):
            version, capture_us, frame_number = _PAYLOAD.unpack(body[16:])
            if version == 1:
                yield FrameStamp(capture_us, frame_number)


def iter_nal_units(data: bytes, *, length_prefixed: bool) -> Iterator[bytes]:
    """NAL units of one access unit: AVCC/HVCC (4-byte lengths, as in MP4) or Annex B."""
    if length_prefixed:
        i = 0
        while i + 4 <= len(data):
            size = int.from_bytes(data[i : i + 4], "big")
            i += 4
            if size <= 0 or i + size > len(data):
                return
            yield data[i : i + size]
            i += size
        return
    starts: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        unit = data[start:end]
        # A 4-byte start code leaves one zero byte at the end of the previous unit.
        yield unit.rstrip(b"\x00") if n + 1 < len(starts) else unit


def _is_sei(nal: bytes, codec: Codec) -> bool:
    if not nal:
        return False
    if codec == "h264":
        return nal[0] & 0x1F == 6
    return len(nal) >= 2 and (nal[0] >> 1) & 0x3F in (39, 40)


def read_stamps(data: bytes, codec: Codec = "h264", *, length_prefixed: bool) -> list[FrameStamp]:
    """Every camsim FrameStamp found in one access unit (usually exactly one)."""
    stamps: list[FrameStamp] = []
    header_len = 1 if codec == "h264" else 2
    for nal in iter_nal_units(data, length_prefixed=length_prefixed):
        if _is_sei(nal, codec):
            stamps.extend(_parse_sei_rbsp(unescape_rbsp(nal[header_len:])))
    return stamps


def stamps_in_file(path: str, *, stream_index: int = 0) -> list[FrameStamp]:
    """Every stamp in a media file (MP4 or any container PyAV reads), in decode order."""
    import av  # the reader is only for tests, benchmarks and the hub

    stamps: list[FrameStamp] = []
    with av.open(path) as container:
        stream = container.streams.video[stream_index]
        codec: Codec = "hevc" if stream.codec_context.name == "hevc" else "h264"
        length_prefixed = container.format.name not in ("h264", "hevc", "mpegts", "rtsp")
        for packet in container.demux(stream):
            if packet.size:
                stamps.extend(read_stamps(bytes(packet), codec, length_prefixed=length_prefixed))
    return stamps
