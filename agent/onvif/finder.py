"""Find the cameras on a site: WS-Discovery (multicast and unicast) and the port sweep, merged.

One camera answers several times (two Probe types, two rounds, multicast and unicast, several
interfaces) and may also turn up in the port sweep; answers are merged when they carry the same
EndpointReference or lead to the same device service (host and port). A `0.0.0.0` XAddr is
replaced by the address the reply came from (so is any other host: the agent talks only to
what answered), a duplicated port is dropped. A camera that the
sweep found on a host we had sent a unicast Probe to, but that never answered it, is flagged as
ignoring WS-Discovery; one that answered with something unusable is flagged as such, with why.
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
from agent.onvif.addresses import device_service_url, split_url
from agent.onvif.discovery import (
    DEFAULT_TIMEOUT,
    WS_DISCOVERY_PORT,
    Interface,
    multicast_interfaces,
    scan_hosts,
    ws_discover,
)
from agent.onvif.errors import MalformedAnswer, quoted
from agent.onvif.soap import ClockReading
from agent.onvif.sweep import DEFAULT_PORTS, SweepHit, port_sweep
from agent.onvif.wsd_reply import ProbeMatch
from agent.quirks import QuirkId

log = get_logger(__name__)

FoundBy = Literal["multicast", "unicast", "port_sweep"]
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
    quirks: list[QuirkId] = field(default_factory=list)
    notes: dict[QuirkId, str] = field(default_factory=dict)  # what exactly was seen, per quirk

    def note(self, quirk: QuirkId, why: str | None = None) -> None:
        if quirk not in self.quirks:
            self.quirks.append(quirk)
        if why and why not in self.notes.get(quirk, ""):
            self.notes[quirk] = f"{self.notes[quirk]}, {why}" if quirk in self.notes else why

    def _scope(self, kind: str) -> str | None:
        prefix = f"{ONVIF_SCOPE}{kind}/"
        for scope in self.scopes:
            if scope.lower().startswith(prefix):
                value = scope_text(scope[len(prefix) :])
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


def scope_text(value: str) -> str:
    """A scope's percent-encoded tail as text: UTF-8 as the spec says, else Latin-1 (older
    firmware encodes its name in the camera's code page)."""
    try:
        return unquote(value, errors="strict").strip()
    except UnicodeDecodeError:
        return unquote(value, encoding="latin-1").strip()


def _extend(items: list[_T], new: Iterable[_T]) -> None:
    for item in new:
        if item not in items:
            items.append(item)


def _device_of(match: ProbeMatch) -> tuple[str, int, str, list[QuirkId]] | None:
    """(host, port, device URL, quirks) from a ProbeMatch's XAddrs: the one on the address the
    reply came from if there is one, else the first usable one.

    The host is always the address the reply came from: a camera's XAddr may say 0.0.0.0, a
    name, or another machine altogether, and the agent only talks to what answered."""
    usable: list[tuple[str, int, str, list[QuirkId]]] = []
    for xaddr in match.xaddrs:
        try:
            parts, host, port, duplicated = split_url(xaddr, ("http",), "XAddr")
        except MalformedAnswer:
            continue  # https (not supported yet), or not a URL at all
        quirks = [QuirkId.XADDR_DUPLICATE_PORT] if duplicated else []
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and address.version != 4:
            continue  # an IPv6 XAddr next to the IPv4 one
        url = device_service_url(match.sender, port, parts.path or "/")
        if host == match.sender:
            return match.sender, port, url, quirks
        if address is not None and address.is_unspecified:
            quirks.append(QuirkId.XADDR_ZERO_HOST)
        else:
            quirks.append(QuirkId.XADDR_OTHER_HOST)
        usable.append((match.sender, port, url, quirks))
    return usable[0] if usable else None


def merge(
    matches: Sequence[ProbeMatch],
    hits: Sequence[SweepHit],
    *,
    unusable: dict[str, str] | None = None,
) -> list[FoundCamera]:
    """One FoundCamera per device: by EndpointReference or by device service host and port.
    Replies without a usable XAddr are left out, and said why in `unusable` (by sender)."""
    by_endpoint: dict[str, FoundCamera] = {}
    by_address: dict[tuple[str, int], FoundCamera] = {}
    cameras: list[FoundCamera] = []
    for match in matches:
        device = _device_of(match)
        if device is None:
            log.debug("ws_discovery_unusable_xaddrs", sender=match.sender)
            if unusable is not None:
                shown = ", ".join(quoted(x, 60) for x in match.xaddrs[:2]) or "none"
                unusable.setdefault(
                    match.sender, f"its XAddrs name no http:// IPv4 address ({shown})"
                )
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
        for quirk in quirks:
            camera.note(quirk)
        for deviation in match.deviations:
            camera.note(QuirkId.WSD_LOOSE_REPLY, deviation)
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

    replies, hits = await asyncio.gather(
        ws_discover(interfaces=nics, hosts=hosts, port=ws_port, wait=wait, progress=ws_progress),
        port_sweep(hosts, sweep_ports, progress=sweep_progress),
    )
    cameras = merge(replies.matches, hits, unusable=replies.unusable)
    probed = set(hosts)
    for camera in cameras:
        if camera.found_by != ["port_sweep"]:
            continue
        problem = replies.unusable.get(camera.host)
        if problem is not None:
            # It did answer: saying it ignores Probes would send the technician the wrong way.
            camera.note(QuirkId.WSD_REPLY_UNUSABLE, problem)
        elif camera.host in probed:
            camera.note(QuirkId.NO_WS_DISCOVERY)
    return DiscoveryResult(
        cameras=cameras,
        interfaces=nics,
        ranges=list(scan),
        hosts_scanned=len(hosts),
        ws_port=ws_port,
        sweep_ports=list(dict.fromkeys(sweep_ports)),
        duration=time.monotonic() - started,
    )
