"""Plain SOAP over aiohttp for the few calls made before (or without) the ONVIF library.

The port sweep and the device wrapper both start with the one operation ONVIF lets anyone call
without credentials, GetSystemDateAndTime (ONVIF Core §5.9.4.3): it proves a device service is
there and gives the camera's clock, measured against ours at the middle of the round trip. A
second unauthenticated call, GetDeviceInformation, shows how the camera wants to be
authenticated (an HTTP Digest challenge, or a WS-Security fault).

Answers are read with a size limit and parsed without DTDs, entities or network access; every
way an answer can be wrong becomes one of `agent.onvif.errors`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from lxml import etree

from agent.neterrors import describe_network_error
from agent.onvif.errors import (
    AuthFailed,
    MalformedAnswer,
    NoAnswer,
    NotOnvif,
    OnvifFault,
    Unreachable,
    quoted,
)

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
TDS = "http://www.onvif.org/ver10/device/wsdl"
DEVICE_SERVICE_PATH = "/onvif/device_service"
MAX_ANSWER_BYTES = 1024 * 1024
# Subcodes cameras use when WS-Security credentials are refused (ONVIF Core §5.11.2.2 names
# NotAuthorized; WS-Security 1.1 §12 the others).
AUTH_SUBCODES = frozenset(
    {"NotAuthorized", "FailedAuthentication", "InvalidSecurity", "InvalidSecurityToken"}
)

_NOT_ONVIF = "not an ONVIF device service"
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_pis=True,
    remove_comments=True,
)


def envelope(operation: str) -> bytes:
    """A SOAP 1.2 request whose Body is `<operation xmlns=tds/>`."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP12}">'
        f'<s:Body><{operation} xmlns="{TDS}"/></s:Body></s:Envelope>'
    ).encode()


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class ClockReading:
    """The camera's clock as GetSystemDateAndTime reported it."""

    camera_utc: datetime | None  # None: the camera gave no UTC time
    offset: float | None  # camera minus this host, seconds (at the middle of the round trip)
    round_trip: float
    ntp: bool | None  # the camera says it sets its clock by NTP


def describe_connect_error(exc: BaseException) -> str:
    """Why a connection failed, in words (aiohttp's own message is "Connect call failed")."""
    described = describe_network_error(exc)
    if described is not None:
        return described
    error = getattr(exc, "os_error", None) or exc
    return f"cannot connect: {quoted(getattr(error, 'strerror', None) or error, 120)}"


async def post_soap(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    action: str,
    within: float,
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    """POST `body`; the HTTP answer (any status), or Unreachable / NoAnswer / MalformedAnswer."""
    content_type = f'application/soap+xml; charset=utf-8; action="{action}"'
    try:
        async with asyncio.timeout(within):
            async with session.post(
                url,
                data=body,
                headers={"Content-Type": content_type, **(headers or {})},
                allow_redirects=False,
            ) as response:
                data = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        raise MalformedAnswer(
                            f"the answer is larger than {MAX_ANSWER_BYTES // 1024} KiB"
                        )
                return HttpAnswer(
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                    bytes(data),
                )
    except TimeoutError:
        raise NoAnswer(f"no answer within {within:g} s") from None
    except aiohttp.ClientConnectorError as exc:
        raise Unreachable(describe_connect_error(exc)) from None
    except aiohttp.ServerDisconnectedError:
        raise NoAnswer("the camera closed the connection before it answered") from None
    except aiohttp.ClientPayloadError:
        raise NoAnswer("the connection broke off in the middle of the camera's answer") from None
    except aiohttp.ClientOSError as exc:
        raise NoAnswer(describe_connect_error(exc)) from None
    except aiohttp.ClientResponseError as exc:
        raise NotOnvif(f"not an HTTP server we can talk to: {quoted(exc.message, 120)}") from None
    except (aiohttp.ClientError, ValueError) as exc:
        # InvalidURL, a malformed status line, a header too long: not a usable ONVIF service.
        raise NotOnvif(f"not a usable HTTP answer: {quoted(exc, 120)}") from None


def _local(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _child(element: etree._Element | None, name: str) -> etree._Element | None:
    if element is None:
        return None
    return next((c for c in element if _local(c) == name), None)


def _path(element: etree._Element | None, *names: str) -> etree._Element | None:
    for name in names:
        element = _child(element, name)
    return element


def parse_answer(answer: HttpAnswer, operation: str) -> etree._Element:
    """The Body's first element of a SOAP answer; raises what is wrong with it otherwise."""
    status = answer.status
    if status in (401, 403):
        raise AuthFailed(f"{operation}: HTTP {status}, the camera wants credentials")
    text = answer.body.lstrip()
    if not text.startswith(b"<"):
        what = "an empty answer" if not text else "an answer that is not XML"
        raise NotOnvif(f"HTTP {status}, {what}: {_NOT_ONVIF}")
    try:
        root = etree.fromstring(text, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        if b"Envelope" in text[:512]:
            raise MalformedAnswer(
                f"{operation}: the answer is not well-formed XML ({quoted(exc, 120)})"
            ) from None
        raise NotOnvif(f"HTTP {status}, an answer that is not SOAP: {_NOT_ONVIF}") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedAnswer(f"{operation}: the answer carries a DTD, which SOAP forbids")
    if _local(root).lower() == "html":
        raise NotOnvif(f"HTTP {status}, a web page: {_NOT_ONVIF}")
    if _local(root) != "Envelope" or etree.QName(root).namespace not in (SOAP12, SOAP11):
        raise NotOnvif(f"HTTP {status}, XML that is not a SOAP envelope: {_NOT_ONVIF}")
    body = _child(root, "Body")
    first = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
    if first is None:
        raise MalformedAnswer(f"{operation}: the SOAP answer has no Body content")
    if _local(first) == "Fault":
        raise _fault(first, operation)
    if not 200 <= status < 300:
        raise MalformedAnswer(f"{operation}: HTTP {status} without a SOAP fault")
    return first


def _fault(fault: etree._Element, operation: str) -> OnvifFault | AuthFailed:
    subcodes: list[str] = []
    code = _child(fault, "Code")
    depth = 0
    while code is not None and depth < 8:
        value = _child(code, "Value")
        if depth > 0 and value is not None and value.text:  # depth 0 is env:Sender/Receiver
            subcodes.append(quoted(value.text.rpartition(":")[2], 64))
        code = _child(code, "Subcode")
        depth += 1
    # SOAP 1.1 faults carry faultcode/faultstring instead.
    legacy = _child(fault, "faultcode")
    if legacy is not None and legacy.text:
        subcodes.append(quoted(legacy.text.rpartition(":")[2], 64))
    reason_el = _path(fault, "Reason", "Text")
    if reason_el is None:
        reason_el = _child(fault, "faultstring")
    reason = quoted(reason_el.text if reason_el is not None and reason_el.text else "")
    if AUTH_SUBCODES & set(subcodes) or "not authorized" in reason.lower():
        return AuthFailed(f"{operation}: the camera refused the credentials ({reason or 'fault'})")
    return OnvifFault(operation, reason, subcodes=tuple(subcodes))


def _int(element: etree._Element | None, name: str) -> int:
    child = _child(element, name)
    try:
        return int((child.text or "").strip()) if child is not None else -1
    except ValueError:
        return -1


def parse_clock(response: etree._Element) -> tuple[datetime | None, bool | None]:
    """UTC time and NTP flag from a GetSystemDateAndTimeResponse element."""
    info = _child(response, "SystemDateAndTime")
    if info is None:
        raise MalformedAnswer("GetSystemDateAndTime: the answer has no SystemDateAndTime")
    kind = _child(info, "DateTimeType")
    ntp = None if kind is None or not kind.text else kind.text.strip() == "NTP"
    utc = _child(info, "UTCDateTime")
    if utc is None:
        return None, ntp
    date, clock = _child(utc, "Date"), _child(utc, "Time")
    try:
        when = datetime(
            _int(date, "Year"),
            _int(date, "Month"),
            _int(date, "Day"),
            _int(clock, "Hour"),
            _int(clock, "Minute"),
            # A leap second (60) is legal in xs:time; fold it into the next minute's start.
            min(_int(clock, "Second"), 59),
            tzinfo=UTC,
        )
    except (ValueError, OverflowError):
        raise MalformedAnswer("GetSystemDateAndTime: the UTC date or time is not valid") from None
    return when, ntp


async def system_date_and_time(
    session: aiohttp.ClientSession, url: str, *, within: float
) -> ClockReading:
    """Unauthenticated GetSystemDateAndTime; AuthFailed if the camera insists on credentials."""
    started = time.time()
    answer = await post_soap(
        session,
        url,
        envelope("GetSystemDateAndTime"),
        action=f"{TDS}/GetSystemDateAndTime",
        within=within,
    )
    finished = time.time()
    response = parse_answer(answer, "GetSystemDateAndTime")
    if _local(response) != "GetSystemDateAndTimeResponse":
        raise MalformedAnswer(
            f"GetSystemDateAndTime: answered with {quoted(_local(response), 64)} instead"
        )
    camera_utc, ntp = parse_clock(response)
    return clock_reading(camera_utc, ntp, started=started, finished=finished)


def clock_reading(
    camera_utc: datetime | None, ntp: bool | None, *, started: float, finished: float
) -> ClockReading:
    """The camera's clock against ours, measured at the middle of the round trip."""
    offset = None
    if camera_utc is not None:
        # The camera reports whole seconds (truncated): its true time is half a second later on
        # average.
        offset = camera_utc.timestamp() + 0.5 - (started + finished) / 2
    return ClockReading(camera_utc, offset, finished - started, ntp)


async def http_auth_challenge(
    session: aiohttp.ClientSession, url: str, *, within: float
) -> str | None:
    """The HTTP authentication scheme the device service demands (`digest`, `basic`), if any.

    Asks GetDeviceInformation without credentials: a camera that only takes HTTP Digest
    answers 401 with a challenge; one that uses WS-Security answers a SOAP fault."""
    try:
        answer = await post_soap(
            session,
            url,
            envelope("GetDeviceInformation"),
            action=f"{TDS}/GetDeviceInformation",
            within=within,
        )
    except (NoAnswer, NotOnvif, MalformedAnswer):
        return None
    if answer.status != 401:
        return None
    challenge = answer.headers.get("www-authenticate", "").strip().lower()
    for scheme in ("digest", "basic"):
        if challenge.startswith(scheme):
            return scheme
    return None
