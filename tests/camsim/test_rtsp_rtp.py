"""RTP packetisation (RFC 6184 FU-A, RFC 7798 FU), header stamping and RTCP sender reports."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camsim.media import EncodedStream
from camsim.rtsp.rtp import (
    MAX_PAYLOAD,
    NTP_EPOCH_OFFSET,
    build_run,
    packetize_access_unit,
    packetize_nal,
    packetize_stream,
    rtp_packets,
    sender_report,
    stamp,
)
from camsim.sei import Codec
from tests.support.rtsp_client import RtpPacket, access_units


def _packets(data: bytes, offsets: tuple[int, ...]) -> list[RtpPacket]:
    out = []
    for offset in offsets:
        assert data[offset : offset + 1] == b"$"
        size = int.from_bytes(data[offset + 2 : offset + 4], "big")
        out.append(RtpPacket.parse(data[offset + 1], data[offset + 4 : offset + 4 + size], 0.0))
    return out


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_stream_frames_survive_packetisation(
    codec: Codec, h264_stream: EncodedStream, hevc_stream: EncodedStream
) -> None:
    stream = h264_stream if codec == "h264" else hevc_stream
    prepared = packetize_stream(stream)
    assert packetize_stream(stream) is prepared  # prepared once, shared by every server
    seq = 65_530  # crosses the 16-bit wrap
    for index, frame in enumerate(stream.frames):
        run = prepared.frames[index]
        buf = bytearray(run.data)
        stamp(buf, run.offsets, channel=2, first_seq=seq, timestamp=90_000 + index, ssrc=0xABC)
        packets = _packets(bytes(buf), run.offsets)
        assert all(len(p.payload) <= MAX_PAYLOAD for p in packets)
        assert [p.seq for p in packets] == [(seq + i) & 0xFFFF for i in range(len(packets))]
        assert {(p.channel, p.timestamp, p.ssrc, p.payload_type) for p in packets} == {
            (2, 90_000 + index, 0xABC, 96)
        }
        assert [p.marker for p in packets] == [False] * (len(packets) - 1) + [True]
        (unit,) = access_units(packets, codec)
        assert tuple(unit.nal_units) == frame.nal_units
        assert sum(len(p.payload) for p in packets) == run.payload_bytes
        seq = (seq + len(packets)) & 0xFFFF
    assert prepared.keyframes == tuple(f.keyframe for f in stream.frames)


def test_parameter_sets_and_runs_concatenate() -> None:
    a = build_run([b"\x67abc", b"\x68d"], marker_last=False)
    b = build_run([b"\x65" + b"x" * 3000], marker_last=True)
    joined = a + b
    assert joined.count == 2 + 1 and joined.payload_bytes == a.payload_bytes + b.payload_bytes
    buf = bytearray(joined.data)
    stamp(buf, joined.offsets, channel=0, first_seq=1, timestamp=7, ssrc=9)
    packets = _packets(bytes(buf), joined.offsets)
    assert [p.seq for p in packets] == [1, 2, 3]
    assert [p.marker for p in packets] == [False, False, True]
    # UDP gets the same packets without the interleaved header.
    bare = [bytes(v) for v in rtp_packets(buf, joined.offsets)]
    assert [RtpPacket.parse(0, d, 0.0) for d in bare] == packets


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["h264", "hevc"]),
    st.lists(st.binary(min_size=3, max_size=5000), min_size=1, max_size=4),
    st.integers(min_value=100, max_value=1500),
)
def test_fragmentation_round_trip(codec: Codec, bodies: list[bytes], max_payload: int) -> None:
    # A valid NAL header: forbidden bit clear, a picture slice type.
    header = b"\x41" if codec == "h264" else b"\x02\x01"
    nals = [header + body for body in bodies]
    payloads = packetize_access_unit(nals, codec, max_payload)
    assert all(len(p) <= max_payload for p in payloads)
    run = build_run(payloads, marker_last=True)
    buf = bytearray(run.data)
    stamp(buf, run.offsets, channel=0, first_seq=0, timestamp=0, ssrc=1)
    (unit,) = access_units(_packets(bytes(buf), run.offsets), codec)
    assert unit.nal_units == nals


def test_small_nal_is_a_single_nal_unit_packet() -> None:
    assert packetize_nal(b"\x06" + b"s" * 30, "h264") == [b"\x06" + b"s" * 30]


def test_fu_a_headers() -> None:
    nal = bytes([0x65]) + bytes(range(256)) * 12
    payloads = packetize_nal(nal, "h264", 1000)
    assert [p[0] for p in payloads] == [0x7C] * len(payloads)  # NRI 3, type 28
    assert payloads[0][1] == 0x85 and payloads[-1][1] == 0x45
    assert all(p[1] == 0x05 for p in payloads[1:-1])


def test_hevc_fu_headers() -> None:
    nal = bytes([19 << 1, 0x01]) + b"z" * 4000  # IDR_W_RADL
    payloads = packetize_nal(nal, "hevc", 1000)
    assert all(p[:2] == bytes([49 << 1, 0x01]) for p in payloads)
    assert payloads[0][2] == 0x80 | 19 and payloads[-1][2] == 0x40 | 19


def test_sender_report_layout() -> None:
    report = sender_report(
        ssrc=0x01020304,
        wallclock=1_700_000_000.5,
        rtp_time=123,
        packets=10,
        octets=9999,
        cname="camsim@127.0.0.1",
    )
    assert report[0] == 0x80 and report[1] == 200
    length = struct.unpack(">H", report[2:4])[0]
    assert length == 6
    ssrc, seconds, fraction, rtp_time, packets, octets = struct.unpack(">IIIIII", report[4:28])
    assert ssrc == 0x01020304
    assert seconds == 1_700_000_000 + NTP_EPOCH_OFFSET
    assert fraction == 1 << 31
    assert (rtp_time, packets, octets) == (123, 10, 9999)
    sdes = report[28:]
    assert sdes[0] == 0x81 and sdes[1] == 202
    assert (struct.unpack(">H", sdes[2:4])[0] + 1) * 4 == len(sdes)
    assert len(report) % 4 == 0
    assert b"camsim@127.0.0.1" in sdes
