"""WS-Discovery (2005/04, as ONVIF uses it) for every camera of one camsim process.

One responder per process answers for all its cameras, which is what a tester wants from one
process and costs one group membership instead of N. Real cameras answer from their own address,
and the agent rewrites a `0.0.0.0` XAddr to the address a reply came from, so the responder keeps
one unicast socket per camera address and sends each camera's ProbeMatch from its own address:

- a socket bound to (239.255.255.250, port) joined to the group on the configured interface
  receives multicast Probes and answers for every camera;
- a socket bound to (camera address, port) receives unicast Probes sent to that address and
  answers for the cameras there; it also sends that address's replies, Hello and Bye.

The port is 3702 inside a network namespace; on a shared host it is 0 (a free port, the same for
every socket). Malformed datagrams are ignored, as is anything that is not a Probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import structlog
from lxml import etree

from camsim.onvif.xml import DN, SOAP_ENV, TDS, WSA, WSD, XmlRejected, parse_xml, q, sub, to_bytes

log = structlog.get_logger(__name__)

MULTICAST_GROUP = "239.255.255.250"
WS_DISCOVERY_PORT = 3702
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
DISCOVERY_URN = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
_ACTIONS = {name: f"{WSD}/{name}" for name in ("Probe", "ProbeMatches", "Hello", "Bye")}
_TYPES = {(DN, "NetworkVideoTransmitter"), (TDS, "Device")}
_MATCH_RFC3986 = f"{WSD}/rfc3986"
_MATCH_STRCMP = f"{WSD}/strcmp0"
_MAX_DATAGRAM = 65507
_BIND_ATTEMPTS = 10


class Discoverable(Protocol):
    """What the responder needs to know about one camera."""

    @property
    def endpoint(self) -> str: ...  # urn:uuid:...

    @property
    def host(self) -> str: ...  # the address it listens on (0.0.0.0: all)

    @property
    def discoverable(self) -> bool: ...  # answers Probes right now

    def discovery_xaddrs(self, local: str) -> str: ...

    def discovery_scopes(self) -> list[str]: ...

    @property
    def loose_discovery(self) -> bool: ...  # answers with a reply that bends the spec


@dataclass(frozen=True)
class Probe:
    message_id: str
    types: frozenset[tuple[str, str]] | None  # None: a prefix did not resolve (matches nothing)
    scopes: tuple[str, ...]
    match_by: str


def parse_probe(data: bytes) -> Probe | None:
    """A Probe from a datagram, or None for anything else (malformed input included)."""
    try:
        root = parse_xml(data, limit=_MAX_DATAGRAM)
    except XmlRejected:
        return None
    if root.tag != q(SOAP_ENV, "Envelope"):
        return None
    header = root.find(q(SOAP_ENV, "Header"))
    body = root.find(q(SOAP_ENV, "Body"))
    if header is None or body is None:
        return None
    message_id = (header.findtext(q(WSA, "MessageID")) or "").strip()
    action = (header.findtext(q(WSA, "Action")) or "").strip()
    probe = body.find(q(WSD, "Probe"))
    if probe is None or not message_id or len(message_id) > 256 or action != _ACTIONS["Probe"]:
        return None
    scopes_el = probe.find(q(WSD, "Scopes"))
    scopes = tuple((scopes_el.text or "").split()) if scopes_el is not None else ()
    match_by = str(scopes_el.get("MatchBy") or _MATCH_RFC3986) if scopes_el is not None else ""
    return Probe(
        message_id=message_id,
        types=_probe_types(probe.find(q(WSD, "Types"))),
        scopes=scopes,
        match_by=match_by or _MATCH_RFC3986,
    )


def _probe_types(element: etree._Element | None) -> frozenset[tuple[str, str]] | None:
    """The QNames of a Probe's Types, resolved with the element's prefixes (None: unresolvable)."""
    if element is None:
        return frozenset()
    names: set[tuple[str, str]] = set()
    for name in (element.text or "").split():
        prefix, _, local = name.rpartition(":")
        namespace = element.nsmap.get(prefix or None)
        if namespace is None or not local:
            return None
        names.add((namespace, local))
    return frozenset(names)


def _scope_matches(wanted: str, offered: str, match_by: str) -> bool:
    if match_by == _MATCH_STRCMP:
        return wanted == offered
    if match_by != _MATCH_RFC3986:
        return False
    # RFC 3986 rule of WS-Discovery: same scheme and authority (case-insensitive), and the
    # wanted path segments are a prefix of the offered ones.
    w, o = urlsplit(wanted), urlsplit(offered)
    if (w.scheme.lower(), w.netloc.lower()) != (o.scheme.lower(), o.netloc.lower()):
        return False
    w_parts = [p for p in w.path.split("/") if p]
    o_parts = [p for p in o.path.split("/") if p]
    return o_parts[: len(w_parts)] == w_parts


def probe_matches(probe: Probe, camera: Discoverable) -> bool:
    if probe.types is None or not probe.types <= _TYPES:
        return False
    offered = camera.discovery_scopes()
    return all(any(_scope_matches(w, o, probe.match_by) for o in offered) for w in probe.scopes)


class _Messages:
    """Builds the SOAP envelopes the responder sends."""

    def __init__(self) -> None:
        self.instance_id = int(time.time())
        self._numbers = itertools.count(1)

    def _envelope(
        self, action: str, *, relates_to: str | None = None, to: str = ANONYMOUS
    ) -> tuple[etree._Element, etree._Element]:
        nsmap = {"SOAP-ENV": SOAP_ENV, "wsa": WSA, "d": WSD, "dn": DN, "tds": TDS}
        root = etree.Element(q(SOAP_ENV, "Envelope"), nsmap=nsmap)
        header = sub(root, SOAP_ENV, "Header")
        sub(header, WSA, "MessageID", f"urn:uuid:{uuid.uuid4()}")
        if relates_to is not None:
            sub(header, WSA, "RelatesTo", relates_to)
        sub(header, WSA, "To", to)
        sub(header, WSA, "Action", action)
        sub(
            header,
            WSD,
            "AppSequence",
            InstanceId=str(self.instance_id),
            MessageNumber=str(next(self._numbers)),
        )
        return root, sub(root, SOAP_ENV, "Body")

    @staticmethod
    def _describe(parent: etree._Element, camera: Discoverable, local: str) -> None:
        reference = sub(parent, WSA, "EndpointReference")
        sub(reference, WSA, "Address", camera.endpoint)
        sub(parent, WSD, "Types", "dn:NetworkVideoTransmitter tds:Device")
        sub(parent, WSD, "Scopes", " ".join(camera.discovery_scopes()))
        sub(parent, WSD, "XAddrs", camera.discovery_xaddrs(local))
        sub(parent, WSD, "MetadataVersion", 1)

    def probe_match(self, camera: Discoverable, relates_to: str, local: str) -> bytes:
        if camera.loose_discovery:
            return self.loose_probe_match(camera, relates_to, local)
        root, body = self._envelope(_ACTIONS["ProbeMatches"], relates_to=relates_to)
        match = sub(sub(body, WSD, "ProbeMatches"), WSD, "ProbeMatch")
        self._describe(match, camera, local)
        return to_bytes(root)

    def loose_probe_match(self, camera: Discoverable, relates_to: str, local: str) -> bytes:
        """A ProbeMatch as hand-rolled firmware sends it (see Quirk.WSD_LOOSE_REPLY): no
        ProbeMatches wrapper, RelatesTo without "urn:", XAddrs led by an IPv6 and an https
        address and separated by a newline and a tab, an ISO-8859-1 declaration, a NUL at the
        end (a C string sent with its terminator)."""
        xaddr = camera.discovery_xaddrs(local)
        https = xaddr.replace("http://", "https://", 1)
        xaddrs = f"  http://[fe80::1]/onvif/device_service\n\t{https}\n\t{xaddr}  "
        scopes = " ".join(camera.discovery_scopes())
        text = (
            '<?xml version="1.0" encoding="ISO-8859-1"?>'
            f'<env:Envelope xmlns:env="{SOAP_ENV}" xmlns:wsa="{WSA}" xmlns:wsdd="{WSD}" '
            f'xmlns:dn="{DN}" xmlns:tds="{TDS}"><env:Header>'
            f"<wsa:MessageID>uuid:{uuid.uuid4()}</wsa:MessageID>"
            f"<wsa:RelatesTo>{relates_to.removeprefix('urn:')}</wsa:RelatesTo>"
            f"<wsa:To>{ANONYMOUS}</wsa:To><wsa:Action>{_ACTIONS['ProbeMatches']}</wsa:Action>"
            "</env:Header><env:Body><wsdd:ProbeMatch>"
            f"<wsa:EndpointReference><wsa:Address>{camera.endpoint}</wsa:Address>"
            "</wsa:EndpointReference><wsdd:Types>dn:NetworkVideoTransmitter tds:Device"
            f"</wsdd:Types><wsdd:Scopes>{scopes}</wsdd:Scopes><wsdd:XAddrs>{xaddrs}"
            "</wsdd:XAddrs><wsdd:MetadataVersion>1</wsdd:MetadataVersion>"
            "</wsdd:ProbeMatch></env:Body></env:Envelope>"
        )
        return text.encode("latin-1", "replace") + b"\x00"

    def hello(self, camera: Discoverable, local: str) -> bytes:
        root, body = self._envelope(_ACTIONS["Hello"], to=DISCOVERY_URN)
        self._describe(sub(body, WSD, "Hello"), camera, local)
        return to_bytes(root)

    def bye(self, camera: Discoverable) -> bytes:
        root, body = self._envelope(_ACTIONS["Bye"], to=DISCOVERY_URN)
        reference = sub(sub(body, WSD, "Bye"), WSA, "EndpointReference")
        sub(reference, WSA, "Address", camera.endpoint)
        return to_bytes(root)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, responder: DiscoveryResponder, cameras: list[Discoverable]) -> None:
        self._responder = responder
        self._cameras = cameras

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        self._responder.handle(data, (str(addr[0]), int(addr[1])), self._cameras)

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery_socket_error", error=str(exc))


def _udp_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class DiscoveryResponder:
    """Answer WS-Discovery Probes for `cameras`; send Hello on start and Bye on close."""

    def __init__(
        self,
        cameras: Sequence[Discoverable],
        *,
        port: int = WS_DISCOVERY_PORT,
        interface: str = "127.0.0.1",
        multicast: bool = True,
    ) -> None:
        self._cameras = list(cameras)
        self._requested_port = port
        self._interface = interface
        self._multicast = multicast
        self._messages = _Messages()
        self._port = 0
        self._sockets: list[socket.socket] = []
        self._senders: dict[str, socket.socket] = {}  # camera host -> socket to reply from
        self._transports: list[asyncio.DatagramTransport] = []

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        for attempt in range(_BIND_ATTEMPTS):
            try:
                self._bind()
                break
            except OSError:
                self._close_sockets()
                # Port 0 means "any free port": another process may take the one we picked for
                # the first socket before the others bind it, so try again with a new one.
                if self._requested_port != 0 or attempt == _BIND_ATTEMPTS - 1:
                    raise
        loop = asyncio.get_running_loop()
        wildcard = [c for c in self._cameras if c.host == "0.0.0.0"]  # noqa: S104
        for sock in self._sockets:
            bound = sock.getsockname()[0]
            if bound in (MULTICAST_GROUP, "0.0.0.0"):  # noqa: S104
                serves = self._cameras if bound == MULTICAST_GROUP else wildcard
            else:
                serves = [c for c in self._cameras if c.host == bound]
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Endpoint, self, serves), sock=sock
            )
            self._transports.append(transport)
        log.info("discovery_listening", port=self._port, multicast=self._multicast)
        self._announce(hello=True)

    async def close(self) -> None:
        self._announce(hello=False)
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        self._close_sockets()

    def _bind(self) -> None:
        port = self._requested_port
        hosts = sorted({c.host for c in self._cameras})
        wildcard = "0.0.0.0" in hosts  # noqa: S104
        first: list[str] = []
        if self._multicast or wildcard:
            first.append("0.0.0.0" if wildcard else MULTICAST_GROUP)  # noqa: S104
        for host in [*first, *(h for h in hosts if h != "0.0.0.0")]:  # noqa: S104
            sock = _udp_socket(host, port)
            self._sockets.append(sock)
            port = port or sock.getsockname()[1]
            if host in (MULTICAST_GROUP, "0.0.0.0"):  # noqa: S104
                if self._multicast and not self._join(sock):
                    self._multicast = False
                if wildcard:
                    self._senders["0.0.0.0"] = sock  # noqa: S104
            else:
                self._senders[host] = sock
            self._prepare_multicast_send(sock)
        self._port = port

    def _join(self, sock: socket.socket) -> bool:
        membership = socket.inet_aton(MULTICAST_GROUP) + socket.inet_aton(self._interface)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError as exc:
            # Unicast Probes still work; only multicast discovery is lost.
            log.warning("discovery_join_failed", interface=self._interface, error=str(exc))
            return False
        return True

    def _prepare_multicast_send(self, sock: socket.socket) -> None:
        # Hello/Bye stay on the configured interface and never leave the link.
        sock.setsockopt(
            socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self._interface)
        )
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        self._senders.clear()

    def _local(self, camera: Discoverable) -> str:
        return self._interface if camera.host == "0.0.0.0" else camera.host  # noqa: S104

    def _send(self, camera: Discoverable, payload: bytes, addr: tuple[str, int]) -> None:
        sock = self._senders.get(camera.host)
        if sock is None:
            return
        with contextlib.suppress(OSError):  # an unreachable prober is its own problem
            sock.sendto(payload, addr)

    def handle(self, data: bytes, addr: tuple[str, int], cameras: list[Discoverable]) -> None:
        probe = parse_probe(data)
        if probe is None:
            log.debug("discovery_ignored", sender=addr[0], bytes=len(data))
            return
        answered = 0
        for camera in cameras:
            if camera.discoverable and probe_matches(probe, camera):
                reply = self._messages.probe_match(camera, probe.message_id, self._local(camera))
                self._send(camera, reply, addr)
                answered += 1
        log.debug("discovery_probe", sender=addr[0], port=addr[1], answered=answered)

    def _announce(self, *, hello: bool) -> None:
        if not self._multicast or not self._transports:
            return
        for camera in self._cameras:
            if camera.discoverable:
                payload = (
                    self._messages.hello(camera, self._local(camera))
                    if hello
                    else self._messages.bye(camera)
                )
                self._send(camera, payload, (MULTICAST_GROUP, self._port))
