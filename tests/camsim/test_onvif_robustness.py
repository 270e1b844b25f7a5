"""Bad input to camsim's ONVIF service gets the error a camera would give and never stops it;
faults (slow answers, unplug) behave as on a real camera."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camsim.onvif.http_auth import parse_auth_params
from camsim.onvif.soap import SoapFault, parse_request
from camsim.onvif.wsse import parse_created
from tests.support.camsim import (
    CamsimRun,
    camera,
    http_post,
    run_cameras,
    soap_envelope,
    username_token,
)

INFO = "<tds:GetDeviceInformation/>"


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(camera("hikvision", id="hik"), camera("generic", id="faulty")) as run:
        yield run


def assert_alive(cams: CamsimRun) -> None:
    cam = cams["hik"]
    reply = http_post(
        cam.onvif_url, soap_envelope(INFO, security=username_token(cam.username, cam.password))
    )
    assert reply.status == 200 and b"HIKVISION" in reply.body


@pytest.mark.parametrize(
    ("body", "status", "code", "subcodes"),
    [
        (b"", 400, "Sender", ["WellFormed"]),
        (b"<not xml", 400, "Sender", ["WellFormed"]),
        (b"\x00\xff\xfe garbage", 400, "Sender", ["WellFormed"]),
        (b"<a>no envelope</a>", 400, "Sender", ["WellFormed"]),
        (
            b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>',
            400,
            "Sender",
            ["WellFormed"],
        ),
        (
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<s:Body><x/></s:Body></s:Envelope>",
            400,
            "VersionMismatch",
            [],
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
            b"<s:Body><x>&b;</x></s:Body></s:Envelope>",
            400,
            "Sender",
            ["WellFormed"],
        ),
        (
            b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
            b"<s:Body><x>&e;</x></s:Body></s:Envelope>",
            400,
            "Sender",
            ["WellFormed"],
        ),
        (soap_envelope("<tds:Reboot/>"), 500, "Receiver", ["ActionNotSupported"]),
        (soap_envelope("<x:Foo xmlns:x='urn:x'/>"), 500, "Receiver", ["ActionNotSupported"]),
    ],
)
def test_malformed_soap_gets_a_fault(
    cams: CamsimRun, body: bytes, status: int, code: str, subcodes: list[str]
) -> None:
    reply = http_post(cams["hik"].onvif_url, body)
    assert (reply.status, reply.fault_code, reply.subcodes) == (status, code, subcodes)
    assert b"root:" not in reply.body  # no external entity was ever read
    assert_alive(cams)


def test_bad_arguments_get_invalid_arg_faults(cams: CamsimRun) -> None:
    cam = cams["hik"]
    media = f"http://{cam.host}:{cam.onvif_port}/onvif/Media"
    cases = {
        "<trt:GetStreamUri><trt:ProfileToken>nope</trt:ProfileToken></trt:GetStreamUri>": [
            "InvalidArgVal",
            "NoProfile",
        ],
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Multicast</tt:Stream>"
        "</trt:StreamSetup><trt:ProfileToken>Profile_1</trt:ProfileToken></trt:GetStreamUri>": [
            "InvalidArgVal",
            "InvalidStreamSetup",
        ],
        "<trt:GetVideoEncoderConfiguration><trt:ConfigurationToken>x"
        "</trt:ConfigurationToken></trt:GetVideoEncoderConfiguration>": [
            "InvalidArgVal",
            "NoConfig",
        ],
    }
    for operation, expected in cases.items():
        token = username_token(cam.username, cam.password)  # a nonce is good once
        reply = http_post(media, soap_envelope(operation, security=token))
        assert (reply.status, reply.subcodes) == (400, expected), operation
    category = "<tds:GetCapabilities><tds:Category>PTZ</tds:Category></tds:GetCapabilities>"
    token = username_token(cam.username, cam.password)
    reply = http_post(cam.onvif_url, soap_envelope(category, security=token))
    assert (reply.status, reply.subcodes) == (500, ["ActionNotSupported", "NoSuchService"])


def test_huge_body_is_refused_with_413(cams: CamsimRun) -> None:
    body = soap_envelope(f"<tds:GetDeviceInformation>{'x' * 200_000}</tds:GetDeviceInformation>")
    assert http_post(cams["hik"].onvif_url, body).status == 413
    assert_alive(cams)


def test_wrong_method_and_unknown_path(cams: CamsimRun) -> None:
    cam = cams["hik"]
    assert http_post(cam.onvif_url, b"", method="GET").status == 405
    assert http_post(f"http://{cam.host}:{cam.onvif_port}/cgi-bin/x", b"").status == 404


def test_garbage_on_the_socket_does_not_stop_the_server(cams: CamsimRun) -> None:
    cam = cams["hik"]
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET " + b"A" * 20000, b"\r\n"):
        with socket.create_connection((cam.host, cam.onvif_port), timeout=5) as sock:
            sock.sendall(junk + b"\r\n\r\n")
            sock.settimeout(5)
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                sock.recv(4096)
    assert_alive(cams)


_names = st.sampled_from(
    [
        "tds:GetDeviceInformation",
        "tds:GetCapabilities",
        "tds:GetServices",
        "tds:GetScopes",
        "tds:Category",
        "tds:IncludeCapability",
        "trt:GetStreamUri",
        "trt:GetProfile",
        "trt:GetSnapshotUri",
        "trt:GetVideoEncoderConfiguration",
        "trt:ProfileToken",
        "trt:ConfigurationToken",
        "trt:StreamSetup",
        "tt:Stream",
        "tt:Transport",
        "tt:Protocol",
        "x:y",
        "Envelope",
    ]
)
# Annotated: hypothesis wants the category names as literals, and a bare tuple is tuple[str].
_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
_text = st.text(
    alphabet=st.characters(blacklist_categories=_SURROGATES, blacklist_characters="<&\x00"),
    max_size=40,
)


def _element(name: str, children: list[str]) -> str:
    declare = ' xmlns:x="urn:x"' if name.startswith("x:") else ""
    return f"<{name}{declare}>{''.join(children)}</{name}>"


_elements = st.recursive(
    _text,
    lambda children: st.builds(_element, _names, st.lists(children, max_size=3)),
    max_leaves=8,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(operation=_elements, authenticate=st.booleans())
def test_fuzzed_envelopes_get_an_answer_or_a_fault(
    cams: CamsimRun, operation: str, authenticate: bool
) -> None:
    cam = cams["hik"]
    # PasswordText gets the fuzz past authentication into the operation handlers.
    security = username_token(cam.username, cam.password, text=True) if authenticate else ""
    for url in (cam.onvif_url, f"http://{cam.host}:{cam.onvif_port}/onvif/Media"):
        reply = http_post(url, soap_envelope(operation, security=security))
        assert reply.status in (200, 400, 500), reply.body[:200]
        if reply.status != 200:
            assert reply.fault_code in ("Sender", "Receiver")
        assert b"Internal error" not in reply.body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=600))
def test_fuzzed_bytes_get_a_sender_fault(cams: CamsimRun, body: bytes) -> None:
    reply = http_post(cams["hik"].onvif_url, body)
    assert reply.status == 400
    assert reply.fault_code in ("Sender", "VersionMismatch")


def test_service_survives_the_fuzzing(cams: CamsimRun) -> None:
    assert_alive(cams)


@given(body=st.binary(max_size=2000))
def test_parse_request_only_raises_soap_faults(body: bytes) -> None:
    try:
        parse_request(body)
    except SoapFault as fault:
        assert fault.code in ("Sender", "VersionMismatch")


@given(value=st.text(max_size=300))
def test_auth_header_parser_never_raises(value: str) -> None:
    params = parse_auth_params(value)
    assert all(key == key.lower() for key in params)


@given(value=st.text(max_size=80))
def test_created_parser_raises_only_value_error(value: str) -> None:
    try:
        parsed = parse_created(value)
    except ValueError:
        return
    assert parsed.tzinfo is not None


def test_slow_camera_answers_late(cams: CamsimRun) -> None:
    cam = cams["faulty"]
    cam.faults.soap_delay = 3.0
    try:
        with pytest.raises(TimeoutError):
            http_post(cam.onvif_url, soap_envelope("<tds:GetSystemDateAndTime/>"), timeout=0.5)
    finally:
        cam.faults.soap_delay = 0.0
    assert http_post(cam.onvif_url, soap_envelope("<tds:GetSystemDateAndTime/>")).status == 200


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def _wait_for(predicate: object, what: str, limit: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"still not {what} after {limit} s"
        time.sleep(0.05)


def _raw_request(cam_host: str, port: int, body: bytes) -> bytes:
    return (
        f"POST /onvif/device_service HTTP/1.1\r\nHost: {cam_host}:{port}\r\n"
        f"Content-Type: application/soap+xml\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _read_closed(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes (a reset counts as closed)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_unplug_refuses_and_replug_serves_again(cams: CamsimRun) -> None:
    cam = cams["faulty"]
    request = _raw_request(cam.host, cam.onvif_port, soap_envelope("<tds:GetSystemDateAndTime/>"))
    # A keep-alive connection that has already been served: unplugging must drop it too, and a
    # request sent on it gets no answer at all (as from a camera that lost power).
    keep = socket.create_connection((cam.host, cam.onvif_port), timeout=5)
    try:
        keep.sendall(request)
        assert keep.recv(65536).startswith(b"HTTP/1.1 200")
        cam.faults.unplug()
        with contextlib.suppress(OSError):
            keep.sendall(request)
        assert _read_closed(keep) == b""
        _wait_for(lambda: _refused(cam.host, cam.onvif_port), "refusing connections")
    finally:
        keep.close()
        cam.faults.replug()
    _wait_for(lambda: not _refused(cam.host, cam.onvif_port), "accepting connections")
    reply = http_post(cam.onvif_url, soap_envelope("<tds:GetSystemDateAndTime/>"))
    assert reply.status == 200
