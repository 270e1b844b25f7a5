"""Real camsim cameras for any test: started in a background thread with its own event loop, so
sync and async tests alike talk to them over real sockets on loopback.

    from tests.support.camsim import camera, run_cameras

    with run_cameras("hikvision", camera("dahua", add_quirks=["no_snapshot"])) as cams:
        cam = cams[0]
        ONVIFCamera(cam.host, cam.onvif_port, cam.username, cam.password)
        av.open(cam.rtsp_url("main", credentials=True), options={"rtsp_transport": "tcp"})
        cam.faults.unplug()

or the `run_camsim` fixture (a factory; everything it started is stopped after the test):
`cams = run_camsim("axis", "generic")`. To use it, import it into the test package's conftest:
`from tests.support.camsim import run_camsim  # noqa: F401`. `onvif_client(cam)` opens an
onvif-zeep-async `ONVIFCamera` on a handle and closes it afterwards.

Media is encoded once per stream spec and cached in memory and on disk by `camsim.media`, so
many cameras with the same persona cost no more than one. Discovery listens on a free UDP port
(unicast only: multicast belongs in a network namespace), see `ws_probe`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from lxml import etree

from camsim.camera import Camera
from camsim.config import CameraConfig, HostConfig
from camsim.faults import Faults
from camsim.host import CameraHost
from camsim.persona import Persona, Quirk, StreamName

DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "camsim-Pa55"
START_TIMEOUT = 120.0

_T = TypeVar("_T")

CameraSpec = str | dict[str, Any] | CameraConfig


def camera(persona: str = "generic", **fields: Any) -> dict[str, Any]:
    """A camera description for `run_cameras`: any `CameraConfig` field may be given.

    The id defaults to `cam<N>` (its position), username/password to the module defaults.
    """
    return {"persona": persona, **fields}


@dataclass(frozen=True)
class CameraHandle:
    """Everything a test needs to reach one running camera."""

    id: str
    persona: Persona
    host: str
    onvif_port: int
    rtsp_port: int
    username: str
    password: str
    faults: Faults
    quirks: frozenset[Quirk]
    endpoint: str  # WS-Discovery EndpointReference (urn:uuid:...)
    serial: str
    mac: str
    camera: Camera  # the live object, for anything not surfaced here

    @property
    def onvif_url(self) -> str:
        return self.camera.onvif_url

    def rtsp_url(
        self, stream: StreamName = "main", *, credentials: bool = False, channel: int = 1
    ) -> str:
        return self.camera.rtsp_url(stream, credentials=credentials, channel=channel)

    @property
    def snapshot_url(self) -> str | None:
        return self.camera.snapshot_url


class CamsimRun:
    """Cameras running in a background event loop; index by position or id."""

    def __init__(self, host: CameraHost, loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.loop = loop
        self.cameras = [_handle(c) for c in host.cameras]

    def __getitem__(self, key: int | str) -> CameraHandle:
        if isinstance(key, int):
            return self.cameras[key]
        return next(c for c in self.cameras if c.id == key)

    def __iter__(self) -> Iterator[CameraHandle]:
        return iter(self.cameras)

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def discovery_port(self) -> int | None:
        return self.host.discovery_port

    @property
    def control_url(self) -> str | None:
        return self.host.control_url

    def call(self, coro: Coroutine[Any, Any, _T], *, timeout: float = 30.0) -> _T:
        """Run a coroutine on the cameras' loop (e.g. to poke a server) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def _handle(cam: Camera) -> CameraHandle:
    return CameraHandle(
        id=cam.id,
        persona=cam.persona,
        host=cam.host,
        onvif_port=cam.onvif_port,
        rtsp_port=cam.rtsp_port,
        username=cam.config.username,
        password=cam.config.password,
        faults=cam.faults,
        quirks=cam.quirks,
        endpoint=cam.endpoint,
        serial=cam.identity.serial,
        mac=cam.identity.mac,
        camera=cam,
    )


@asynccontextmanager
async def onvif_client(cam: CameraHandle, **options: Any) -> AsyncIterator[Any]:
    """An onvif-zeep-async ONVIFCamera for `cam` (options as ONVIFCamera's; `password` too)."""
    from onvif import ONVIFCamera  # after tests/conftest.py has configured logging

    password = options.pop("password", cam.password)
    device = ONVIFCamera(cam.host, cam.onvif_port, cam.username, password, **options)
    try:
        yield device
    finally:
        await device.close()


def host_config(
    *cameras: CameraSpec,
    discovery: bool = True,
    discovery_port: int = 0,
    multicast: bool = False,
    control: bool = False,
) -> HostConfig:
    configs: list[CameraConfig] = []
    for index, spec in enumerate(cameras or ("generic",)):
        if isinstance(spec, CameraConfig):
            configs.append(spec)
            continue
        fields = {"persona": spec} if isinstance(spec, str) else dict(spec)
        fields.setdefault("id", f"cam{index + 1}")
        fields.setdefault("username", DEFAULT_USERNAME)
        fields.setdefault("password", DEFAULT_PASSWORD)
        configs.append(CameraConfig.model_validate(fields))
    return HostConfig(
        cameras=configs,
        discovery={"enabled": discovery, "port": discovery_port, "multicast": multicast},
        control={"enabled": control},
    )


@contextmanager
def run_cameras(
    *cameras: CameraSpec,
    discovery: bool = True,
    discovery_port: int = 0,
    multicast: bool = False,
    control: bool = False,
) -> Iterator[CamsimRun]:
    """Start cameras (default: one `generic`), yield handles, stop them on exit."""
    config = host_config(
        *cameras,
        discovery=discovery,
        discovery_port=discovery_port,
        multicast=multicast,
        control=control,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="camsim", daemon=True)
    thread.start()
    host = CameraHost(config)
    try:
        asyncio.run_coroutine_threadsafe(host.start(), loop).result(START_TIMEOUT)
        yield CamsimRun(host, loop)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(host.close(), loop).result(START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()


@pytest.fixture
def run_camsim() -> Iterator[Callable[..., CamsimRun]]:
    """Factory fixture: `run_camsim("hikvision", camera("axis"), control=True)` → CamsimRun."""
    with ExitStack() as stack:

        def start(*cameras: CameraSpec, **options: Any) -> CamsimRun:
            return stack.enter_context(run_cameras(*cameras, **options))

        yield start


# -- a minimal WS-Discovery prober (the agent has its own; this one checks camsim) -------------

WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"


def probe_message(
    message_id: str | None = None,
    *,
    types: str | None = "dn:NetworkVideoTransmitter",
    scopes: str | None = None,
) -> tuple[str, bytes]:
    """A Probe datagram as ONVIF clients send it; returns (message id, bytes)."""
    mid = message_id or f"urn:uuid:{uuid.uuid4()}"
    types_xml = f"<d:Types>{types}</d:Types>" if types is not None else ""
    scopes_xml = f"<d:Scopes>{scopes}</d:Scopes>" if scopes is not None else ""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:a="{WSA}" xmlns:d="{WSD}" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" '
        'xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
        f"<s:Header><a:Action>{WSD}/Probe</a:Action><a:MessageID>{mid}</a:MessageID>"
        "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>"
        f"<s:Body><d:Probe>{types_xml}{scopes_xml}</d:Probe></s:Body></s:Envelope>"
    )
    return mid, xml.encode()


@dataclass(frozen=True)
class ProbeMatch:
    sender: tuple[str, int]
    message_id: str
    relates_to: str
    endpoint: str
    types: list[str]
    scopes: list[str]
    xaddrs: list[str]


def parse_probe_match(data: bytes, sender: tuple[str, int]) -> ProbeMatch:
    root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    header = root.find(f"{{{SOAP_ENV}}}Header")
    match = root.find(f"{{{SOAP_ENV}}}Body/{{{WSD}}}ProbeMatches/{{{WSD}}}ProbeMatch")
    assert header is not None and match is not None, data[:300]
    assert header.findtext(f"{{{WSA}}}Action") == f"{WSD}/ProbeMatches"
    return ProbeMatch(
        sender=sender,
        message_id=header.findtext(f"{{{WSA}}}MessageID") or "",
        relates_to=header.findtext(f"{{{WSA}}}RelatesTo") or "",
        endpoint=match.findtext(f"{{{WSA}}}EndpointReference/{{{WSA}}}Address") or "",
        types=(match.findtext(f"{{{WSD}}}Types") or "").split(),
        scopes=(match.findtext(f"{{{WSD}}}Scopes") or "").split(),
        xaddrs=(match.findtext(f"{{{WSD}}}XAddrs") or "").split(),
    )


def ws_probe(
    target: tuple[str, int],
    *,
    payload: bytes | None = None,
    wait: float = 1.0,
    bind: str = "127.0.0.1",
    multicast_interface: str | None = None,
) -> tuple[str, list[ProbeMatch]]:
    """Send one Probe to `target` (unicast, or multicast with `multicast_interface`) and collect
    ProbeMatches for `wait` seconds. Returns (the probe's message id, matches)."""
    message_id, data = probe_message() if payload is None else ("", payload)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((bind, 0))
        if multicast_interface is not None:
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(multicast_interface)
            )
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.sendto(data, target)
        matches: list[ProbeMatch] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply, sender = sock.recvfrom(65535)
            except TimeoutError:
                break
            matches.append(parse_probe_match(reply, sender))
        return message_id, matches
    finally:
        sock.close()


# -- raw SOAP, for what a library would hide (faults, headers, hostile input) ----------------

TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_TOKEN_PROFILE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
)


def username_token(
    username: str,
    password: str,
    *,
    text: bool = False,
    created: datetime | None = None,
    nonce: bytes | None = None,
) -> str:
    """A wsse:Security header with a UsernameToken (PasswordDigest unless `text`)."""
    if text:
        password_xml = (
            f'<wsse:Password Type="{_TOKEN_PROFILE}#PasswordText">{password}</wsse:Password>'
        )
        return (
            f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
            f"<wsse:Username>{username}</wsse:Username>{password_xml}"
            "</wsse:UsernameToken></wsse:Security>"
        )
    nonce = nonce if nonce is not None else os.urandom(16)
    stamp = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    digest = base64.b64encode(hashlib.sha1(nonce + stamp.encode() + password.encode()).digest())
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
        f"<wsse:Username>{username}</wsse:Username>"
        f'<wsse:Password Type="{_TOKEN_PROFILE}#PasswordDigest">{digest.decode()}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{stamp}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


def soap_envelope(operation: str, *, security: str = "") -> bytes:
    """A SOAP 1.2 request; `operation` is the Body's XML (prefixes tds, trt, tt are declared)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP_ENV}" '
        f'xmlns:tds="{TDS}" xmlns:trt="{TRT}" xmlns:tt="http://www.onvif.org/ver10/schema">'
        f"<s:Header>{security}</s:Header><s:Body>{operation}</s:Body></s:Envelope>"
    ).encode()


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def xml(self) -> etree._Element:
        return etree.fromstring(self.body, parser=etree.XMLParser(resolve_entities=False))

    @property
    def subcodes(self) -> list[str]:
        """Local names of the fault's ter: subcodes, outermost first ([] if not a fault)."""
        values = self.xml().iterfind(f".//{{{SOAP_ENV}}}Subcode/{{{SOAP_ENV}}}Value")
        return [(v.text or "").rpartition(":")[2] for v in values]

    @property
    def fault_code(self) -> str | None:
        code = self.xml().findtext(f".//{{{SOAP_ENV}}}Fault/{{{SOAP_ENV}}}Code/{{{SOAP_ENV}}}Value")
        return code.rpartition(":")[2] if code else None


def http_post(
    url: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    timeout: float = 10.0,
) -> HttpReply:
    """One HTTP request on a fresh connection (http.client: nothing hides the raw answer)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        all_headers = {"Content-Type": "application/soap+xml; charset=utf-8", **(headers or {})}
        connection.request(
            method, parts.path + (f"?{parts.query}" if parts.query else ""), body, all_headers
        )
        response = connection.getresponse()
        return HttpReply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()
