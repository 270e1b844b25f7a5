"""RTSP framing and header parsing: real client requests, hostile bytes, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camsim.rtsp.protocol import (
    InterleavedFrame,
    ParserLimits,
    RequestParser,
    RtspError,
    RtspRequest,
    TransportRequest,
    check_range,
    format_response,
    parse_transport,
    request_target,
    session_id,
)

# What FFmpeg (Lavf) sends, verbatim.
FFMPEG_SETUP = (
    b"SETUP rtsp://127.0.0.1:37307/Streaming/Channels/101/trackID=1 RTSP/1.0\r\n"
    b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
    b"CSeq: 4\r\n"
    b"User-Agent: Lavf62.12.102\r\n"
    b'Authorization: Digest username="admin", realm="camsim", nonce="00", uri="x", '
    b'response="ad16"\r\n'
    b"\r\n"
)


def _one(data: bytes, limits: ParserLimits | None = None) -> RtspRequest:
    messages = RequestParser(limits).feed(data)
    assert len(messages) == 1
    assert isinstance(messages[0], RtspRequest)
    return messages[0]


def _error(data: bytes, limits: ParserLimits | None = None) -> RtspError:
    with pytest.raises(RtspError) as info:
        RequestParser(limits).feed(data)
    return info.value


def test_parses_a_real_client_request() -> None:
    request = _one(FFMPEG_SETUP)
    assert request.method == "SETUP"
    assert request.uri == "rtsp://127.0.0.1:37307/Streaming/Channels/101/trackID=1"
    assert request.cseq == 4
    assert request.header("TRANSPORT") == "RTP/AVP/TCP;unicast;interleaved=0-1"
    assert (request.header("authorization") or "").startswith("Digest ")
    assert request.body == b""


def test_every_split_point_gives_the_same_messages() -> None:
    data = (
        FFMPEG_SETUP
        + b"$\x01\x00\x04abcd"
        + b"GET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 9\r\n\r\nposition\n"
        + b"\r\n"  # a stray empty line between requests is allowed
        + b"OPTIONS * RTSP/1.0\nCSeq: 6\n\n"  # bare LF line ends, as some clients send
    )
    whole = RequestParser().feed(data)
    assert [type(m).__name__ for m in whole] == [
        "RtspRequest",
        "InterleavedFrame",
        "RtspRequest",
        "RtspRequest",
    ]
    assert whole[1] == InterleavedFrame(1, b"abcd")
    assert isinstance(whole[2], RtspRequest) and whole[2].body == b"position\n"
    for cut in range(1, len(data)):
        parser = RequestParser()
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == whole
        assert not parser.pending


def test_pending_while_a_request_is_incomplete() -> None:
    parser = RequestParser()
    assert parser.feed(b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSe") == []
    assert parser.pending
    assert len(parser.feed(b"q: 1\r\n\r\n")) == 1
    assert not parser.pending


def test_folded_and_repeated_headers() -> None:
    request = _one(
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-A: one\r\n  two\r\nX-B: 1\r\nX-B: 2\r\n\r\n"
    )
    assert request.header("x-a") == "one two"
    assert request.header("x-b") == "1, 2"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS ClientHello
        (b"\x00\xff\xfe garbage", 400),
        (b"OPTIONS * RTSP/1.0\r\n\r\n", 400),  # no CSeq
        (b"OPTIONS * RTSP/1.0\r\nCSeq: -1\r\n\r\n", 400),
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 1234567890123\r\n\r\n", 400),
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nCSeq: 2\r\n\r\n", 400),
        (b"OPTIONS *  RTSP/1.0\r\nCSeq: 1\r\n\r\n", 400),  # two spaces
        (b"OPTIONS RTSP/1.0\r\nCSeq: 1\r\n\r\n", 400),
        (b"OPT(ONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", 400),
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nno colon here\r\n\r\n", 400),
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nBad Name: x\r\n\r\n", 400),
        (b"OPTIONS * RTSP/1.0\r\n folded-first: x\r\nCSeq: 1\r\n\r\n", 400),
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: a\x00b\r\n\r\n", 400),
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: \xff\xfe\r\n\r\n", 400),  # not UTF-8
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: x\r\n\r\n", 400),
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 999999\r\n\r\n", 413),
        (b"OPTIONS * RTSP/2.0\r\nCSeq: 7\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 505),
        (b"OPTIONS * RTSP/1\r\nCSeq: 1\r\n\r\n", 400),
    ],
)
def test_malformed_requests_are_refused(data: bytes, status: int) -> None:
    assert _error(data).status == status


def test_cseq_is_kept_when_the_version_is_wrong() -> None:
    assert _error(b"OPTIONS * RTSP/2.0\r\nCSeq: 7\r\n\r\n").cseq == 7


def test_over_long_head_is_refused_without_waiting_for_its_end() -> None:
    parser = RequestParser(ParserLimits(max_head_bytes=1024))
    parser.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Junk: ")
    with pytest.raises(RtspError) as info:
        for _ in range(100):  # a 10 MB header line arrives in pieces; the first few suffice
            parser.feed(b"A" * 100_000)
    assert info.value.status == 400


def test_too_many_headers() -> None:
    head = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n" + b"X-H: v\r\n" * 10 + b"\r\n"
    assert _error(head, ParserLimits(max_headers=5)).status == 400
    assert _one(head, ParserLimits(max_headers=11)).cseq == 1


def test_format_response() -> None:
    data = format_response(454, cseq=3, headers=[("Session", "ABC;timeout=60")], body=b"v=0\r\n")
    assert data == (
        b"RTSP/1.0 454 Session Not Found\r\nCSeq: 3\r\nSession: ABC;timeout=60\r\n"
        b"Content-Length: 5\r\n\r\nv=0\r\n"
    )
    with pytest.raises(ValueError):
        format_response(200, cseq=1, headers=[("X", "a\r\nInjected: yes")])


@pytest.mark.parametrize(
    ("uri", "target"),
    [
        ("rtsp://10.0.0.5:554/Streaming/Channels/101", "/Streaming/Channels/101"),
        (
            "RTSP://user:pw@host/cam/realmonitor?channel=1&subtype=0",
            "/cam/realmonitor?channel=1&subtype=0",
        ),
        ("rtsp://host", "/"),
        ("rtsp://host?x=1", "/?x=1"),
        ("/h264Preview_01_main", "/h264Preview_01_main"),
        ("*", None),
        ("http://host/x", None),
        ("rtsp:///nohost", None),
    ],
)
def test_request_target(uri: str, target: str | None) -> None:
    assert request_target(uri) == target


def test_session_id() -> None:
    assert session_id("1A2B3C;timeout=60") == "1A2B3C"
    assert session_id(" 12345 ") == "12345"
    assert session_id(None) is None
    assert session_id("") is None
    assert session_id("a b") is None
    assert session_id("x" * 65) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("RTP/AVP/TCP;unicast;interleaved=0-1", TransportRequest(tcp=True, interleaved=(0, 1))),
        ('RTP/AVP/TCP;unicast;interleaved=4-5;mode="PLAY"', TransportRequest(True, (4, 5))),
        ("RTP/AVP/TCP;unicast", TransportRequest(tcp=True)),
        ("RTP/AVP/TCP;unicast;interleaved=3-7", TransportRequest(tcp=True)),  # server picks
        ("RTP/AVP;unicast;client_port=5000-5001", TransportRequest(False, None, (5000, 5001))),
        ("RTP/AVP/UDP;unicast;client_port=5000", TransportRequest(False, None, (5000, 5001))),
        (
            "RTP/AVP;multicast, RTP/AVP/TCP;unicast;interleaved=0-1",
            TransportRequest(tcp=True, interleaved=(0, 1)),
        ),
        ("RTP/AVP;multicast;destination=239.1.1.1", None),
        ("RTP/AVP;unicast", None),  # UDP without ports
        ("RTP/SAVP;unicast;client_port=5000-5001", None),
        ("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record", None),
        ("", None),
    ],
)
def test_parse_transport(value: str, expected: TransportRequest | None) -> None:
    assert parse_transport(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "RTP/AVP/TCP;interleaved=x-y",
        "RTP/AVP/TCP;interleaved=0-300",
        "RTP/AVP;unicast;client_port=0-1",
        "RTP/AVP;unicast;client_port=70000-70001",
        "RTP/AVP;unicast;client_port=5000-",
        "RTP/AVP/TCP;interleaved=" + "9" * 50,
        "x" * 2000,
    ],
)
def test_malformed_transport_is_a_400(value: str) -> None:
    with pytest.raises(RtspError) as info:
        parse_transport(value)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "value", [None, "npt=0-", "npt=0.000-", "npt=now-", "npt=12.5-20", "npt=0:00:10.5-"]
)
def test_live_ranges_are_accepted(value: str | None) -> None:
    check_range(value)


@pytest.mark.parametrize(
    "value", ["clock=20260101T000000Z-", "npt=abc-", "npt=5", "smpte=0:00:00-", "garbage"]
)
def test_other_ranges_are_457(value: str) -> None:
    with pytest.raises(RtspError) as info:
        check_range(value)
    assert info.value.status == 457


# ---------------------------------------------------------------------------------------------
# Fuzzing: whatever arrives, the parser returns messages or raises RtspError, nothing else, and
# never holds more than its limits allow.

_LIMITS = ParserLimits(max_head_bytes=2048, max_headers=16, max_body_bytes=512)


def _check_feed(chunks: list[bytes]) -> None:
    parser = RequestParser(_LIMITS)
    try:
        for chunk in chunks:
            for message in parser.feed(chunk):
                if isinstance(message, RtspRequest):
                    assert len(message.body) <= _LIMITS.max_body_bytes
                    assert "\r" not in message.uri and "\n" not in message.uri
                else:
                    assert 0 <= message.channel <= 255
            # Bounded: a head limit, a body limit and one interleaved frame at most.
            assert len(parser._buf) <= _LIMITS.max_head_bytes + 4 + 65_535 + len(chunk)
    except RtspError as exc:
        assert 400 <= exc.status < 600


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_fuzz_random_bytes(chunks: list[bytes]) -> None:
    _check_feed(chunks)


_methods = st.sampled_from(["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "X", "", "GET"])
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_line = st.one_of(
    st.builds(
        lambda k, v: f"{k}: {v}",
        st.sampled_from(["CSeq", "Content-Length", "Session", "Transport", "X-Y", "Bad Name"]),
        _text,
    ),
    _text,
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _methods,
    _text,
    st.sampled_from(["RTSP/1.0", "RTSP/2.0", "HTTP/1.1", "", "RTSP/1.0 extra"]),
    st.lists(_line, max_size=6),
    st.sampled_from(["\r\n", "\n"]),
    st.binary(max_size=40),
    st.integers(min_value=1, max_value=20),
)
def test_fuzz_request_like_input(
    method: str,
    uri: str,
    version: str,
    lines: list[str],
    eol: str,
    tail: bytes,
    split: int,
) -> None:
    data = (eol.join([f"{method} {uri} {version}", *lines]) + eol + eol).encode() + tail
    _check_feed([data[i : i + split] for i in range(0, len(data), split)])


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_header_values(value: str) -> None:
    for check in (parse_transport, check_range):
        try:
            check(value)
        except RtspError as exc:
            assert exc.status in (400, 457)
    request_target(value)
    session_id(value)
