"""An asyncio WS-Discovery prober (WS-Discovery 2005/04, as ONVIF uses it).

Probes go out by multicast on every IPv4 interface that has multicast (or the ones asked for),
and by unicast to hosts given with `--scan`: multicast does not cross VLANs or routers, a unicast
Probe does. Replies are accepted from any source port (many cameras answer from an ephemeral
port, not 3702) as long as they relate to one of our Probes. Each Probe is sent twice (UDP may
drop one), once for `dn:NetworkVideoTransmitter` and once for `tds:Device`, since some devices
declare only one of the two types. Unicast Probes are paced so a /22 does not become a burst.

Replies are read by `agent.onvif.wsd_reply`, which accepts the ways real cameras bend the spec
and says why an answer could not be used; nothing there trusts a datagram.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import ipaddress
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from agent.log import get_logger
from agent.onvif.errors import quoted
from agent.onvif.wsd_reply import ProbeMatch, Via, read_reply

log = get_logger(__name__)

MULTICAST_GROUP = "239.255.255.250"
WS_DISCOVERY_PORT = 3702
MAX_SCAN_ADDRESSES = 1024  # a /22: bigger ranges are refused
DEFAULT_TIMEOUT = 2.0
REPEAT_AFTER = 0.25  # seconds between the two rounds of Probes
UNICAST_BATCH = 128  # Probes sent before yielding for a moment
UNICAST_PAUSE = 0.01

WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
PROBE_TYPES = (
    ("dn", "http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter"),
    ("tds", "http://www.onvif.org/ver10/device/wsdl", "Device"),
)

# Linux ioctls for an interface's flags and IPv4 address (<linux/sockios.h>, <net/if.h>).
_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
_IFF_MULTICAST = 0x1000


class ScanRangeError(ValueError):
    """A --scan value that is not an IPv4 address or range, or a range that is too big."""


@dataclass(frozen=True)
class Interface:
    name: str
    address: str


@dataclass
class WsDiscovery:
    """Every ProbeMatch that arrived (duplicates included: merging is the caller's job), and
    the hosts whose answers could not be used, with why."""

    matches: list[ProbeMatch] = field(default_factory=list)
    unusable: dict[str, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[ProbeMatch]:
        return iter(self.matches)

    def __len__(self) -> int:
        return len(self.matches)


def multicast_interfaces(names: Sequence[str] = ()) -> list[Interface]:
    """Up IPv4 interfaces with multicast (all of them, or those named or addressed in `names`)."""
    found: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack_from("H", fcntl.ioctl(sock, _SIOCGIFFLAGS, request), 16)[0]
                raw = fcntl.ioctl(sock, _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address
            address = socket.inet_ntoa(raw[20:24])
            if names and name not in names and address not in names:
                continue
            if flags & _IFF_UP and flags & _IFF_MULTICAST:
                found.append(Interface(name, address))
    return found


def scan_hosts(ranges: Sequence[str], *, limit: int = MAX_SCAN_ADDRESSES) -> list[str]:
    """The addresses to probe for `--scan` values (CIDR ranges or single IPv4 addresses)."""
    hosts: dict[str, None] = {}
    for text in ranges:
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ScanRangeError(
                f"--scan {quoted(text, 60)}: not an IPv4 address or range (e.g. 192.168.1.0/24)"
            ) from None
        if network.version != 4:
            raise ScanRangeError(f"--scan {text}: only IPv4 ranges can be scanned")
        if network.num_addresses > limit:
            raise ScanRangeError(
                f"--scan {text} covers {network.num_addresses} addresses; scan at most a /22 "
                f"({limit} addresses) at a time, e.g. the camera VLAN's /24"
            )
        members = network.hosts() if network.prefixlen < 31 else iter(network)
        for address in members:
            hosts[str(address)] = None
        if len(hosts) > limit:
            raise ScanRangeError(f"--scan ranges cover more than {limit} addresses together")
    return list(hosts)


def probe_message(message_id: str, type_index: int = 0) -> bytes:
    prefix, namespace, name = PROBE_TYPES[type_index]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP12}" xmlns:a="{WSA}" xmlns:d="{WSD}" '
        f'xmlns:{prefix}="{namespace}">'
        f"<s:Header><a:Action>{WSD}/Probe</a:Action><a:MessageID>{message_id}</a:MessageID>"
        "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>"
        f"<s:Body><d:Probe><d:Types>{prefix}:{name}</d:Types></d:Probe></s:Body></s:Envelope>"
    ).encode()


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, sink: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._sink = sink

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        self._sink(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" from hosts without a responder: expected during a scan.
        log.debug("ws_discovery_socket_error", error=str(exc))


def _socket(bind: str, *, multicast: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((bind, 0))
        if multicast:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind))
            # Link-local, as WS-Discovery intends; loop so a camera on this very host answers.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


ProgressFn = Callable[[float], None]  # fraction of the discovery window elapsed


async def ws_discover(
    *,
    interfaces: Sequence[Interface],
    hosts: Sequence[str] = (),
    port: int = WS_DISCOVERY_PORT,
    wait: float = DEFAULT_TIMEOUT,
    progress: ProgressFn | None = None,
) -> WsDiscovery:
    """Probe by multicast on `interfaces` and by unicast to `hosts`; what arrives within `wait`
    seconds."""
    loop = asyncio.get_running_loop()
    replies = WsDiscovery()
    transports: list[tuple[asyncio.DatagramTransport, Via, frozenset[str]]] = []

    def sink_for(ids: frozenset[str], via: Via) -> Callable[[bytes, tuple[str, int]], None]:
        def sink(data: bytes, sender: tuple[str, int]) -> None:
            reading = read_reply(data, sender, message_ids=ids, via=via)
            replies.matches.extend(reading.matches)
            if reading.problem is not None:
                replies.unusable.setdefault(sender[0], reading.problem)

        return sink

    senders: list[tuple[str, Via]] = [(i.address, "multicast") for i in interfaces]
    if hosts:
        senders.append(("0.0.0.0", "unicast"))  # noqa: S104 - an ephemeral client port
    try:
        for bind, via in senders:
            ids = frozenset(f"urn:uuid:{uuid.uuid4()}" for _ in PROBE_TYPES)
            try:
                sock = _socket(bind, multicast=via == "multicast")
            except OSError as exc:
                log.warning("ws_discovery_socket_failed", address=bind, error=str(exc))
                continue
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Receiver, sink_for(ids, via)), sock=sock
            )
            transports.append((transport, via, ids))
        started = time.monotonic()
        for round_number in range(2):
            if round_number:
                await asyncio.sleep(REPEAT_AFTER)
            for transport, via, ids in transports:
                messages = [probe_message(mid, n) for n, mid in enumerate(sorted(ids))]
                targets = [MULTICAST_GROUP] if via == "multicast" else list(hosts)
                await _send(transport, messages, targets, port)
        while (elapsed := time.monotonic() - started) < wait:
            if progress is not None:
                progress(elapsed / wait)
            await asyncio.sleep(min(0.1, wait - elapsed))
        if progress is not None:
            progress(1.0)
    finally:
        for transport, _via, _ids in transports:
            transport.close()
    log.debug("ws_discovery_done", replies=len(replies.matches), interfaces=len(interfaces))
    return replies


async def _send(
    transport: asyncio.DatagramTransport, messages: list[bytes], targets: list[str], port: int
) -> None:
    sent = 0
    for target in targets:
        for message in messages:
            with contextlib.suppress(OSError):  # e.g. no route to one host: the rest still go
                transport.sendto(message, (target, port))
            sent += 1
            if sent % UNICAST_BATCH == 0:
                await asyncio.sleep(UNICAST_PAUSE)
