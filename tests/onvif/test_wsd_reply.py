"""WS-Discovery replies as cameras really send them (issue 13, item 1): every form the specs
allow and every common deviation is read, a reply to someone else's Probe is not ours, and
whatever arrives never raises. Property tests build the replies from their parts."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.onvif import find_cameras
from agent.onvif.finder import scope_text
from agent.onvif.wsd_reply import (
    LOOSE_RELATES_TO,
    LOOSE_XADDRS,
    NO_ENVELOPE,
    NO_WRAPPER,
    NOT_WELL_FORMED,
    SOAP11,
    normalise_id,
    read_reply,
)
from agent.quirks import QuirkId
from camsim.persona import Quirk
from tests.support.camsim import camera, run_cameras

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
PROBE_ID = "urn:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
SENDER = ("192.168.1.64", 3702)


@dataclass(frozen=True)
class Shape:
    """How one reply is written."""

    wrapper: bool
    envelope: bool
    soap11: bool
    prefixes: tuple[str, str, str]  # SOAP, WS-Addressing, WS-Discovery (may be "")
    relates_to: str | None  # as the camera echoes our MessageID (None: left out)
    separator: str  # between XAddrs
    padding: str  # around XAddrs
    encoding: str
    trailing_nul: bool


def qname(prefix: str, local: str) -> str:
    return f"{prefix}:{local}" if prefix else local


def build(shape: Shape, endpoint: str, scopes: list[str], xaddrs: list[str]) -> bytes:
    env, wsa, wsd = shape.prefixes

    def ns(prefix: str, uri: str) -> str:
        return f' xmlns:{prefix}="{uri}"' if prefix else f' xmlns="{uri}"'

    match = (
        f"<{qname(wsd, 'ProbeMatch')}{ns(wsd, WSD) if not wsd else ''}>"
        f"<{qname(wsa, 'EndpointReference')}{ns(wsa, WSA) if not wsa else ''}>"
        f"<{qname(wsa, 'Address')}>{endpoint}</{qname(wsa, 'Address')}>"
        f"</{qname(wsa, 'EndpointReference')}>"
        f"<{qname(wsd, 'Types')}>dn:NetworkVideoTransmitter</{qname(wsd, 'Types')}>"
        f"<{qname(wsd, 'Scopes')}>{' '.join(scopes)}</{qname(wsd, 'Scopes')}>"
        f"<{qname(wsd, 'XAddrs')}>{shape.padding}{shape.separator.join(xaddrs)}{shape.padding}"
        f"</{qname(wsd, 'XAddrs')}>"
        f"</{qname(wsd, 'ProbeMatch')}>"
    )
    body = (
        f"<{qname(wsd, 'ProbeMatches')}{ns(wsd, WSD) if not wsd else ''}>{match}"
        f"</{qname(wsd, 'ProbeMatches')}>"
        if shape.wrapper
        else match
    )
    declared = "".join(ns(p, u) for p, u in ((wsa, WSA), (wsd, WSD)) if p)
    declared += ' xmlns:dn="http://www.onvif.org/ver10/network/wsdl"'
    if shape.envelope:
        soap = SOAP11_NS if shape.soap11 else SOAP12
        header = ""
        if shape.relates_to is not None:
            header = (
                f"<{qname(env, 'Header')}><{qname(wsa, 'RelatesTo')}"
                f"{ns(wsa, WSA) if not wsa else ''}>{shape.relates_to}"
                f"</{qname(wsa, 'RelatesTo')}></{qname(env, 'Header')}>"
            )
        text = (
            f"<{qname(env, 'Envelope')}{ns(env, soap)}{declared}>{header}"
            f"<{qname(env, 'Body')}>{body}</{qname(env, 'Body')}></{qname(env, 'Envelope')}>"
        )
    else:
        text = body.replace(">", f"{declared}>", 1)
    data = f'<?xml version="1.0" encoding="{shape.encoding}"?>{text}'.encode(shape.encoding)
    return data + (b"\x00" if shape.trailing_nul else b"")


prefixes = st.sampled_from(["", "s", "SOAP-ENV", "env"]).flatmap(
    lambda env: st.tuples(
        st.just(env),
        st.sampled_from(["a", "wsa", "wsa5"]),  # an unprefixed WS-Addressing would clash
        st.sampled_from(["d", "wsdd", "dis"]),
    )
)
shapes = st.builds(
    Shape,
    wrapper=st.booleans(),
    envelope=st.booleans(),
    soap11=st.booleans(),
    prefixes=prefixes,
    relates_to=st.sampled_from(
        [PROBE_ID, None, PROBE_ID.removeprefix("urn:"), PROBE_ID.upper(), f"  {PROBE_ID}\n"]
    ),
    separator=st.sampled_from([" ", "\n", "\t", "\r\n\t", ",", "  "]),
    padding=st.sampled_from(["", " ", "\n  ", "\t"]),
    encoding=st.sampled_from(["UTF-8", "ISO-8859-1", "UTF-16"]),
    trailing_nul=st.booleans(),
)
octets = st.integers(1, 254)
ipv4 = st.tuples(octets, octets, octets, octets).map(lambda p: ".".join(map(str, p)))
xaddr_lists = st.lists(
    st.tuples(ipv4, st.integers(1, 65535)).map(
        lambda hp: f"http://{hp[0]}:{hp[1]}/onvif/device_service"
    ),
    min_size=1,
    max_size=4,
    unique=True,
)
# Scopes are URIs: spaces separate them; their text is percent-encoded UTF-8 (or Latin-1).
names = st.text(
    alphabet=st.characters(codec="latin-1", categories=["L", "N"]), min_size=1, max_size=20
)
scope_lists = st.lists(
    st.tuples(names, st.sampled_from(["utf-8", "latin-1"])).map(
        lambda ne: (
            "onvif://www.onvif.org/name/"
            + "".join(
                c if c.isascii() and c.isalnum() else "".join(f"%{b:02X}" for b in c.encode(ne[1]))
                for c in ne[0]
            )
        )
    ),
    max_size=5,
)


@given(shapes, st.uuids(), scope_lists, xaddr_lists)
def test_every_shape_of_reply_is_read(
    shape: Shape, endpoint: object, scopes: list[str], xaddrs: list[str]
) -> None:
    data = build(shape, f"urn:uuid:{endpoint}", scopes, xaddrs)
    reading = read_reply(data, SENDER, message_ids=frozenset({PROBE_ID}), via="unicast")
    assert reading.ours and reading.problem is None
    [match] = reading.matches
    assert match.endpoint == f"urn:uuid:{endpoint}"
    assert list(match.scopes) == scopes
    assert list(match.xaddrs) == xaddrs
    assert match.sender == SENDER[0] and match.types == ("dn:NetworkVideoTransmitter",)
    deviations = set(match.deviations)
    assert (NO_WRAPPER in deviations) == (not shape.wrapper)
    assert (NO_ENVELOPE in deviations) == (not shape.envelope)
    assert (SOAP11 in deviations) == (shape.envelope and shape.soap11)
    assert (LOOSE_XADDRS in deviations) == (shape.separator != " " and len(xaddrs) > 1)


@given(shapes, st.uuids())
def test_an_answer_to_someone_elses_probe_is_not_ours(shape: Shape, other: object) -> None:
    if not shape.envelope:
        return  # without a header nothing says whose Probe it answers
    shape = Shape(**{**shape.__dict__, "relates_to": f"urn:uuid:{other}"})
    data = build(shape, "urn:uuid:x", [], ["http://10.0.0.2/onvif/device_service"])
    reading = read_reply(data, SENDER, message_ids=frozenset({PROBE_ID}), via="unicast")
    assert not reading.ours and reading.matches == []


@given(st.binary(max_size=2000))
def test_any_datagram_gives_matches_a_problem_or_nothing(data: bytes) -> None:
    reading = read_reply(data, SENDER, message_ids=frozenset({PROBE_ID}), via="multicast")
    assert reading.matches == [] or reading.problem is None


def test_the_deviations_are_named() -> None:
    loose = Shape(
        wrapper=False,
        envelope=True,
        soap11=False,
        prefixes=("env", "wsa", "wsdd"),
        relates_to=PROBE_ID.removeprefix("urn:"),
        separator="\n\t",
        padding=" ",
        encoding="ISO-8859-1",
        trailing_nul=True,
    )
    [match] = read_reply(
        build(loose, "urn:uuid:1", [], ["http://10.0.0.2/a", "http://10.0.0.2/b"]),
        SENDER,
        message_ids=frozenset({PROBE_ID}),
        via="unicast",
    ).matches
    assert set(match.deviations) == {NO_WRAPPER, LOOSE_RELATES_TO, LOOSE_XADDRS}
    broken = (
        f'<s:Envelope xmlns:s="{SOAP12}" xmlns:d="{WSD}"><s:Body><d:ProbeMatches><d:ProbeMatch>'
        "<d:XAddrs>http://10.0.0.2/onvif/device_service?a=1&b=2</d:XAddrs>"
        "</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
    ).encode()
    [match] = read_reply(broken, SENDER, message_ids=frozenset(), via="unicast").matches
    assert NOT_WELL_FORMED in match.deviations and match.xaddrs


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x00\xff" * 40, "not XML"),
        (b"<hello/>", "no ProbeMatch"),
        (f'<s:Envelope xmlns:s="{SOAP12}"><s:Body/></s:Envelope>'.encode(), "no ProbeMatch"),
    ],
)
def test_an_unusable_answer_says_why(data: bytes, problem: str) -> None:
    reading = read_reply(data, SENDER, message_ids=frozenset({PROBE_ID}), via="unicast")
    assert reading.matches == [] and reading.problem is not None and problem in reading.problem


def test_message_ids_compare_without_prefix_or_case() -> None:
    assert normalise_id(" URN:UUID:AB-cd ") == normalise_id("uuid:ab-CD") == "ab-cd"


def test_scope_text_in_utf8_and_latin1() -> None:
    assert scope_text("Cam%C3%A9ra%20entr%C3%A9e") == "Caméra entrée"
    assert scope_text("Cam%E9ra%20entr%E9e") == "Caméra entrée"  # Latin-1 bytes
    assert scope_text("%E5%89%8D%E9%97%A8") == "前门"


# -- against real cameras and a real socket --------------------------------------------------------


def test_a_camera_with_a_loose_reply_is_found_by_its_reply() -> None:
    """The camera the issue describes: it answers every Probe, bent; it must not be reported
    as ignoring Probes."""
    with run_cameras(camera("loose-wsd", id="loose", host="127.0.0.91")) as cams:
        cam = cams["loose"]
        result = asyncio.run(
            find_cameras(
                scan=[f"{cam.host}/32"],
                multicast=False,
                ws_port=cams.discovery_port or 0,
                sweep_ports=[cam.onvif_port],
                wait=0.5,
            )
        )
    [found] = result.cameras
    assert found.found_by == ["unicast", "port_sweep"]
    assert found.endpoint == cam.endpoint and found.device_url == cam.onvif_url
    assert found.quirks == ["wsd_loose_reply"]
    assert {NO_WRAPPER, LOOSE_XADDRS, LOOSE_RELATES_TO} <= set(
        found.notes[QuirkId.WSD_LOOSE_REPLY].split(", ")
    )
    assert found.name == "Caméra entrée" and found.model == "HX-2321-IR"


@pytest.fixture
def junk_responder() -> Iterator[int]:
    """Answers every datagram on 127.0.0.92 with XML that holds no ProbeMatch."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.92", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                _data, sender = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sock.sendto(b"<ProbeMatches><Nothing/></ProbeMatches>", sender)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def test_an_answer_that_cannot_be_used_is_not_called_silence(junk_responder: int) -> None:
    with run_cameras(
        camera("generic", id="odd", host="127.0.0.92", quirks=[Quirk.NO_WS_DISCOVERY]),
        discovery=False,
    ) as cams:
        cam = cams["odd"]
        result = asyncio.run(
            find_cameras(
                scan=[f"{cam.host}/32"],
                multicast=False,
                ws_port=junk_responder,
                sweep_ports=[cam.onvif_port],
                wait=0.5,
            )
        )
    [found] = result.cameras
    assert found.found_by == ["port_sweep"]
    assert found.quirks == ["wsd_reply_unusable"]
    assert "holds no ProbeMatch" in found.notes[QuirkId.WSD_REPLY_UNUSABLE]
