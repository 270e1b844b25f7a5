"""Find the cameras on a site: WS-Discovery (multicast and unicast) and the port sweep, merged.

One camera answers several times (two Probe types, two rounds, multicast and unicast, several
interfaces) and may also turn up in the port sweep; answers are merged when they carry the same
EndpointReference or lead to the same device service (host and port). A `0.0.0.0` XAddr is
replaced by the address the reply came from (so is any other host: the agent talks only to
what answered), a duplicated port is dropped. A camera that the
sweep found on a host we had sent a unicast Probe to, but that never answered it, is flagged as
ignoring WS-Discovery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import unquote

from agent.log import get_logger
from agent.onvif.addresses import (
    XADDR_DUPLICATE_PORT,
    XADDR_OTHER_HOST,
    XADDR_ZERO_HOST,
    device_service_url,
    split_url,
)
from agent.onvif.discovery import (
    DEFAULT_TIMEOUT,
    WS_DISCOVERY_PORT,
    Interface,
    ProbeMatch,
    multicast_interfaces,
    scan_hosts,
    ws_discover,
)
from agent.onvif.errors import MalformedAnswer
from agent.onvif.soap import ClockReading
from agent.onvif.sweep import DEFAULT_PORTS, SweepHit, port_sweep

log = get_logger(__name__)

FoundBy = Literal["multicast", "unicast", "port_sweep"]
NO_WS_DISCOVERY = "no_ws_discovery"
ONVIF_SCOPE = "onvif://www.onvif.org/"

_T = TypeVar("_T")
Phase = Literal["ws_discovery", "port_sweep"]
Progress = Callable[[Phase, float, float], None]  # (phase, done, total)


@dataclass
class FoundCamera:
    """One device service found on the network."""

    host: str
    port: int
    device_url: str
    endpoint: str | None = None
    scopes: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    found_by: list[FoundBy] = field(default_factory=list)
    clock: ClockReading | None = None
    quirks: list[str] = field(default_factory=list)

    def _scope(self, kind: str) -> str | None:
        prefix = f"{ONVIF_SCOPE}{kind}/"
        for scope in self.scopes:
            if scope.lower().startswith(prefix):
                value = unquote(scope[len(prefix) :]).strip()
                return value if value and value.isprintable() else None
        return None

    @property
    def model(self) -> str | None:
        return self._scope("hardware")

    @property
    def name(self) -> str | None:
        return self._scope("name")

    @property
    def location(self) -> str | None:
        return self._scope("location")


@dataclass
class DiscoveryResult:
    cameras: list[FoundCamera]
    interfaces: list[Interface]
    ranges: list[str]
    hosts_scanned: int
    ws_port: int
    sweep_ports: list[int]
    duration: float


def _extend(items: list[_T], new: Iterable[_T]) -> None:
    for item in new:
        if item not in items:
            items.append(item)


def _device_of(match: ProbeMatch) -> tuple[str, int, str, list[str]] | None:
    """(host, port, device URL, quirks) from a ProbeMatch's XAddrs (the first usable one).

    The host is always the address the reply came from: a camera's XAddr may say 0.0.0.0, a
    name, or another machine altogether, and the agent only talks to what answered."""
    for xaddr in match.xaddrs:
        try:
            parts, host, port, duplicated = split_url(xaddr, ("http",), "XAddr")
        except MalformedAnswer:
            continue
        quirks = [XADDR_DUPLICATE_PORT] if duplicated else []
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and address.version != 4:
            continue  # an IPv6 XAddr next to the IPv4 one
        if address is not None and address.is_unspecified:
            quirks.append(XADDR_ZERO_HOST)
        elif host != match.sender:
            quirks.append(XADDR_OTHER_HOST)
        url = device_service_url(match.sender, port, parts.path or "/")
        return match.sender, port, url, quirks
    return None


def merge(matches: Sequence[ProbeMatch], hits: Sequence[SweepHit]) -> list[FoundCamera]:
    """One FoundCamera per device: by EndpointReference or by device service host and port."""
    by_endpoint: dict[str, FoundCamera] = {}
    by_address: dict[tuple[str, int], FoundCamera] = {}
    cameras: list[FoundCamera] = []
    for match in matches:
        device = _device_of(match)
        if device is None:
            log.debug("ws_discovery_unusable_xaddrs", sender=match.sender)
            continue
        host, port, url, quirks = device
        camera = (by_endpoint.get(match.endpoint) if match.endpoint else None) or by_address.get(
            (host, port)
        )
        if camera is None:
            camera = FoundCamera(host=host, port=port, device_url=url, endpoint=match.endpoint)
            cameras.append(camera)
        if match.endpoint:
            by_endpoint.setdefault(match.endpoint, camera)
            camera.endpoint = camera.endpoint or match.endpoint
        by_address.setdefault((host, port), camera)
        _extend(camera.scopes, match.scopes)
        _extend(camera.types, match.types)
        _extend(camera.found_by, [match.via])
        _extend(camera.quirks, quirks)
    for hit in hits:
        camera = by_address.get((hit.host, hit.port))
        if camera is None:
            camera = FoundCamera(host=hit.host, port=hit.port, device_url=hit.device_url)
            by_address[(hit.host, hit.port)] = camera
            cameras.append(camera)
        sweep: list[FoundBy] = ["port_sweep"]
        _extend(camera.found_by, sweep)
        camera.clock = camera.clock or hit.clock
    cameras.sort(key=lambda c: (ipaddress.ip_address(c.host), c.port))
    return cameras


async def find_cameras(
    *,
    scan: Sequence[str] = (),
    interfaces: Sequence[str] = (),
    multicast: bool = True,
    ws_port: int = WS_DISCOVERY_PORT,
    sweep_ports: Sequence[int] = DEFAULT_PORTS,
    wait: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> DiscoveryResult:
    """Discover cameras: multicast Probes (unless `multicast` is False), unicast Probes and the
    port sweep over the `scan` ranges. ScanRangeError for a bad or oversized range."""
    started = time.monotonic()
    hosts = scan_hosts(scan)
    nics = multicast_interfaces(interfaces) if multicast else []
    if multicast and not nics:
        log.warning("no_multicast_interface", asked=list(interfaces))

    def ws_progress(fraction: float) -> None:
        if progress is not None:
            progress("ws_discovery", fraction, 1.0)

    def sweep_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("port_sweep", done, total)

    matches, hits = await asyncio.gather(
        ws_discover(interfaces=nics, hosts=hosts, port=ws_port, wait=wait, progress=ws_progress),
        port_sweep(hosts, sweep_ports, progress=sweep_progress),
    )
    cameras = merge(matches, hits)
    probed = set(hosts)
    for camera in cameras:
        if camera.found_by == ["port_sweep"] and camera.host in probed:
            camera.quirks.append(NO_WS_DISCOVERY)
    return DiscoveryResult(
        cameras=cameras,
        interfaces=nics,
        ranges=list(scan),
        hosts_scanned=len(hosts),
        ws_port=ws_port,
        sweep_ports=list(dict.fromkeys(sweep_ports)),
        duration=time.monotonic() - started,
    )
