"""RTP packetisation of H.264 (RFC 6184) and H.265 (RFC 7798), prepared once per stream.

Serving must cost almost nothing, so each looped frame is split into its RTP payloads at
start-up and laid out as ready-to-send interleaved packets (`$`, channel, length, 12-byte RTP
header, payload). Sending a frame to a client is then one copy of that template and, per packet,
one `struct.pack_into` of channel, sequence number, timestamp and SSRC.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from camsim.media import EncodedStream
from camsim.sei import Codec

RTP_CLOCK = 90_000
PAYLOAD_TYPE = 96
# Payload size of cameras on Ethernet: a 1500-byte MTU minus IP, UDP and RTP headers.
MAX_PAYLOAD = 1400

_H264_FU_A = 28
_HEVC_FU = 49
_INTERLEAVED_HEADER = 4
RTP_HEADER = 12
_PREFIX = _INTERLEAVED_HEADER + RTP_HEADER
# Sequence number, timestamp and SSRC, 6 bytes into an interleaved packet (after `$`, channel,
# length and the first two RTP header bytes). The channel byte is at +1.
_PATCH = struct.Struct(">HII")
_PATCH_AT = 6
_TEMPLATE = struct.Struct(">cBHBBHII")
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def packetize_nal(nal: bytes, codec: Codec, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads for one NAL unit: itself if it fits, else fragmentation units."""
    if len(nal) <= max_payload:
        return [nal]
    if codec == "h264":
        header = nal[0]
        indicator = bytes([(header & 0xE0) | _H264_FU_A])
        kind = header & 0x1F
        body = nal[1:]
        prefix_len = 2
    else:
        kind = (nal[0] >> 1) & 0x3F
        indicator = bytes([(nal[0] & 0x81) | (_HEVC_FU << 1), nal[1]])
        body = nal[2:]
        prefix_len = 3
    chunk = max_payload - prefix_len
    payloads = []
    for start in range(0, len(body), chunk):
        fu_header = kind
        if start == 0:
            fu_header |= 0x80
        if start + chunk >= len(body):
            fu_header |= 0x40
        payloads.append(indicator + bytes([fu_header]) + body[start : start + chunk])
    return payloads


def packetize_access_unit(
    nal_units: Iterable[bytes], codec: Codec, max_payload: int = MAX_PAYLOAD
) -> list[bytes]:
    return [p for nal in nal_units for p in packetize_nal(nal, codec, max_payload)]


@dataclass(frozen=True)
class PacketRun:
    """Consecutive interleaved RTP packets with blank channel, sequence, timestamp and SSRC."""

    data: bytes
    offsets: tuple[int, ...]  # where each packet's `$` is
    payload_bytes: int

    @property
    def count(self) -> int:
        return len(self.offsets)

    def __add__(self, other: PacketRun) -> PacketRun:
        shift = len(self.data)
        return PacketRun(
            self.data + other.data,
            self.offsets + tuple(o + shift for o in other.offsets),
            self.payload_bytes + other.payload_bytes,
        )


EMPTY_RUN = PacketRun(b"", (), 0)


def build_run(payloads: Sequence[bytes], *, marker_last: bool) -> PacketRun:
    parts: list[bytes] = []
    offsets: list[int] = []
    pos = 0
    last = len(payloads) - 1
    for index, payload in enumerate(payloads):
        if len(payload) > 0xFFFF - RTP_HEADER:
            raise ValueError("RTP payload too large for interleaved framing")
        marker = 0x80 if marker_last and index == last else 0
        header = _TEMPLATE.pack(
            b"$", 0, RTP_HEADER + len(payload), 0x80, marker | PAYLOAD_TYPE, 0, 0, 0
        )
        parts += (header, payload)
        offsets.append(pos)
        pos += _PREFIX + len(payload)
    return PacketRun(b"".join(parts), tuple(offsets), sum(len(p) for p in payloads))


def stamp(
    buf: bytearray,
    offsets: Sequence[int],
    *,
    channel: int,
    first_seq: int,
    timestamp: int,
    ssrc: int,
) -> None:
    """Fill in channel, consecutive sequence numbers, timestamp and SSRC of every packet."""
    pack = _PATCH.pack_into
    for index, offset in enumerate(offsets):
        pack(buf, offset + _PATCH_AT, (first_seq + index) & 0xFFFF, timestamp, ssrc)
    if channel:  # templates carry channel 0, what nearly every client asks for
        for offset in offsets:
            buf[offset + 1] = channel


def rtp_packets(buf: bytes | bytearray, offsets: Sequence[int]) -> list[memoryview]:
    """The bare RTP packets (no interleaved header) of a stamped run, for UDP."""
    view = memoryview(buf)
    out = []
    for offset in offsets:
        size = (buf[offset + 2] << 8) | buf[offset + 3]
        start = offset + _INTERLEAVED_HEADER
        out.append(view[start : start + size])
    return out


@dataclass(frozen=True)
class PacketizedStream:
    codec: Codec
    frames: tuple[PacketRun, ...]
    keyframes: tuple[bool, ...]
    parameter_sets: PacketRun  # sent before every keyframe
    pts_offsets: tuple[int, ...]  # per frame, presentation minus decode index (B-frames)
    reorder_delay: int  # the largest of them: frames from capture to sending, at least


_prepared: weakref.WeakKeyDictionary[EncodedStream, PacketizedStream] = weakref.WeakKeyDictionary()


def packetize_stream(stream: EncodedStream) -> PacketizedStream:
    """Every frame of the loop as a PacketRun; computed once per stream object and shared."""
    prepared = _prepared.get(stream)
    if prepared is None:
        codec = stream.spec.codec
        frames = tuple(
            build_run(packetize_access_unit(f.nal_units, codec), marker_last=True)
            for f in stream.frames
        )
        params = build_run(
            packetize_access_unit(stream.parameter_sets.nal_units(), codec), marker_last=False
        )
        prepared = PacketizedStream(
            codec,
            frames,
            tuple(f.keyframe for f in stream.frames),
            params,
            tuple(f.pts_offset for f in stream.frames),
            stream.reorder_delay,
        )
        _prepared[stream] = prepared
    return prepared


# ---------------------------------------------------------------------------------------------
# RTCP


def sender_report(
    *,
    ssrc: int,
    wallclock: float,
    rtp_time: int,
    packets: int,
    octets: int,
    cname: str,
) -> bytes:
    """A compound RTCP packet: SR (RFC 3550 §6.4.1) followed by SDES with the CNAME."""
    ntp = wallclock + NTP_EPOCH_OFFSET
    seconds = int(ntp)
    fraction = int((ntp - seconds) * (1 << 32)) & 0xFFFFFFFF
    sr = struct.pack(
        ">BBHIIIIII",
        0x80,
        200,
        6,
        ssrc,
        seconds & 0xFFFFFFFF,
        fraction,
        rtp_time & 0xFFFFFFFF,
        packets & 0xFFFFFFFF,
        octets & 0xFFFFFFFF,
    )
    text = cname.encode()[:255]
    item = struct.pack(">IBB", ssrc, 1, len(text)) + text + b"\x00"
    item += b"\x00" * (-len(item) % 4)
    sdes = struct.pack(">BBH", 0x81, 202, len(item) // 4) + item
    return sr + sdes


def interleave(channel: int, packet: bytes) -> bytes:
    return struct.pack(">cBH", b"$", channel, len(packet)) + packet
