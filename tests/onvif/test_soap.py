"""Our own SOAP for the unauthenticated calls: every way an answer can be wrong is named."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from agent.onvif.errors import AuthFailed, MalformedAnswer, NotOnvif, OnvifError, OnvifFault
from agent.onvif.soap import HttpAnswer, parse_answer, parse_clock, system_date_and_time
from tests.onvif.servers import Handler, http_server

ENV = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TT = "http://www.onvif.org/ver10/schema"


def envelope(body: str) -> bytes:
    return (
        f'<?xml version="1.0"?><s:Envelope xmlns:s="{ENV}" xmlns:tds="{TDS}" xmlns:tt="{TT}" '
        'xmlns:ter="http://www.onvif.org/ver10/error">'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def fault(subcodes: list[str], reason: str) -> bytes:
    code = "".join(f"<s:Subcode><s:Value>ter:{s}</s:Value>" for s in subcodes)
    code += "</s:Subcode>" * len(subcodes)
    return envelope(
        f"<s:Fault><s:Code><s:Value>s:Sender</s:Value>{code}</s:Code>"
        f'<s:Reason><s:Text xml:lang="en">{reason}</s:Text></s:Reason></s:Fault>'
    )


def clock(date: str, time: str, kind: str = "NTP") -> bytes:
    return envelope(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        f"<tt:DateTimeType>{kind}</tt:DateTimeType><tt:UTCDateTime>"
        f"<tt:Time>{time}</tt:Time><tt:Date>{date}</tt:Date>"
        "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )


def date(y: int, m: int, d: int) -> str:
    return f"<tt:Year>{y}</tt:Year><tt:Month>{m}</tt:Month><tt:Day>{d}</tt:Day>"


def hms(h: int, m: int, s: int) -> str:
    return f"<tt:Hour>{h}</tt:Hour><tt:Minute>{m}</tt:Minute><tt:Second>{s}</tt:Second>"


def test_a_clock_answer_is_read() -> None:
    body = parse_answer(HttpAnswer(200, {}, clock(date(2024, 2, 29), hms(23, 59, 60))), "op")
    when, ntp = parse_clock(body)
    assert when == datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)  # a leap second is folded
    assert ntp is True


def test_a_clock_without_utc_is_unknown_not_an_error() -> None:
    answer = envelope(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        "<tt:DateTimeType>Manual</tt:DateTimeType></tds:SystemDateAndTime>"
        "</tds:GetSystemDateAndTimeResponse>"
    )
    assert parse_clock(parse_answer(HttpAnswer(200, {}, answer), "op")) == (None, False)


def test_an_impossible_date_is_malformed() -> None:
    body = parse_answer(HttpAnswer(200, {}, clock(date(2024, 2, 30), hms(1, 2, 3))), "op")
    with pytest.raises(MalformedAnswer):
        parse_clock(body)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (HttpAnswer(401, {}, b""), AuthFailed),
        (HttpAnswer(404, {}, b"<html><body>Not Found</body></html>"), NotOnvif),
        (HttpAnswer(200, {}, b"Hello"), NotOnvif),
        (HttpAnswer(200, {}, b""), NotOnvif),
        (HttpAnswer(200, {}, b"<?xml version='1.0'?><rss/>"), NotOnvif),
        (HttpAnswer(200, {}, envelope("<tds:X>")[:-20]), MalformedAnswer),
        (HttpAnswer(200, {}, envelope("")), MalformedAnswer),
        (HttpAnswer(500, {}, envelope("<tds:Odd/>")), MalformedAnswer),
        (HttpAnswer(400, {}, fault(["NotAuthorized"], "Sender not Authorized")), AuthFailed),
        (HttpAnswer(500, {}, fault(["ActionNotSupported"], "Optional Action")), OnvifFault),
    ],
)
def test_wrong_answers_are_named(answer: HttpAnswer, error: type[OnvifError]) -> None:
    with pytest.raises(error):
        parse_answer(answer, "GetSystemDateAndTime")


def test_an_unsupported_action_is_recognised() -> None:
    with pytest.raises(OnvifFault) as caught:
        parse_answer(HttpAnswer(500, {}, fault(["ActionNotSupported"], "Nope")), "GetServices")
    assert caught.value.not_supported
    assert caught.value.subcodes == ("ActionNotSupported",)


def test_entities_are_never_expanded() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        + envelope("<x>&b;</x>").split(b"?>", 1)[1]
    )
    with pytest.raises(MalformedAnswer):
        parse_answer(HttpAnswer(200, {}, laughs), "op")


@given(st.sampled_from([200, 400, 401, 404, 500]), st.binary(max_size=2000))
def test_any_bytes_give_a_named_error_or_an_element(status: int, data: bytes) -> None:
    with contextlib.suppress(OnvifError):
        parse_answer(HttpAnswer(status, {}, data), "op")


@given(st.text(max_size=500))
def test_any_envelope_content_gives_a_named_error_or_an_element(content: str) -> None:
    data = envelope(content.replace("\x00", ""))
    with contextlib.suppress(OnvifError):
        parse_clock(parse_answer(HttpAnswer(200, {}, data), "op"))


async def _hang_up_mid_answer(request: web.Request) -> web.StreamResponse:
    """A camera that starts answering and then drops the connection."""
    response = web.StreamResponse(headers={"Content-Length": "5000"})
    await response.prepare(request)
    await response.write(b'<?xml version="1.0"?><s:Envelope')
    assert request.transport is not None
    request.transport.abort()
    return response


async def _hang_up_at_once(request: web.Request) -> web.StreamResponse:
    await request.read()
    assert request.transport is not None
    request.transport.abort()
    return web.Response()


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        (_hang_up_mid_answer, "broke off in the middle"),
        (_hang_up_at_once, "closed the connection before it answered"),
    ],
)
def test_a_dropped_connection_is_said_in_words(handler: Handler, words: str) -> None:
    """Issue 13, item 8: no "[Errno …]" and no library class names, a sentence instead."""

    async def ask(port: int) -> OnvifError:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(OnvifError) as caught:
                await system_date_and_time(
                    session, f"http://127.0.0.1:{port}/onvif/device_service", within=3
                )
            return caught.value

    with http_server(handler) as port:
        error = asyncio.run(ask(port))
    assert error.kind == "timeout" and words in str(error), error
    assert "Errno" not in str(error) and "Error" not in str(error)


def test_an_unresolvable_host_is_said_in_words() -> None:
    async def ask() -> OnvifError:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(OnvifError) as caught:
                await system_date_and_time(
                    session, "http://no-such-camera.invalid/onvif/device_service", within=3
                )
            return caught.value

    error = asyncio.run(ask())
    assert error.kind == "unreachable" and "cannot be resolved" in str(error), error
    assert "Errno" not in str(error)


def test_the_remedy_for_a_port_that_is_not_onvif_does_not_guess_a_web_server() -> None:
    """Random bytes on the port are not "a web server"."""
    from agent.compat.verdicts import _ONVIF_REMEDIES

    assert "web server" not in _ONVIF_REMEDIES["not_onvif"]
