"""Finding a site's cameras and recorders, as `rtcc-edge discover` reports them.

    report = await discover(scan=["192.168.1.0/24"], config=config, profiles=profiles)
    report = await discover(..., login=Login("admin", "…"))   # also identity and channels

Discovery itself (WS-Discovery and the port sweep) needs no credentials; it tells where the
ONVIF services are and what their WS-Discovery scopes say (model, name, location). With a
login, every device found is also asked who it is (GetDeviceInformation) and how many video
sources it has, so recorders list their channels. A device is taken for a recorder when it has
several video sources, or when the firmware profiles list its model among a vendor's NVRs/DVRs.
The report says, for each device, how it was found and every quirk seen on the way, in the
words of `agent.quirks`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from agent.compat.channels import recorder_info
from agent.compat.check import identity_of
from agent.compat.profiles import ProfileMatch, ProfileSet
from agent.compat.report import (
    DiscoveredCamera,
    DiscoveryReport,
    ErrorInfo,
    Identity,
    InterfaceInfo,
    QuirkFound,
    Vendor,
)
from agent.config import AgentConfig
from agent.onvif import (
    DEFAULT_PORTS,
    WS_DISCOVERY_PORT,
    Channel,
    FoundCamera,
    OnvifCamera,
    OnvifError,
    find_cameras,
)
from agent.onvif.finder import DiscoveryResult, Progress
from agent.quirks import describe

INTERROGATE_CONCURRENCY = 16


@dataclass(frozen=True)
class Login:
    username: str
    password: str = field(repr=False)


@dataclass
class DeviceDetails:
    """What logging in to one device told."""

    identity: Identity | None = None
    channels: list[Channel] = field(default_factory=list)
    error: ErrorInfo | None = None


async def _interrogate(found: FoundCamera, login: Login, call_timeout: float) -> DeviceDetails:
    details = DeviceDetails()
    camera = OnvifCamera.from_url(
        found.device_url, username=login.username, password=login.password, timeout=call_timeout
    )
    try:
        await camera.connect()
        details.channels = await camera.channels()
    except OnvifError as exc:
        details.error = ErrorInfo(kind=exc.kind, message=str(exc))
    finally:
        await camera.close()
    details.identity = identity_of(camera.info)
    return details


def _match(
    profiles: ProfileSet | None, found: FoundCamera, identity: Identity | None
) -> ProfileMatch | None:
    if profiles is None:
        return None
    return profiles.match(
        manufacturer=identity.manufacturer if identity else None,
        model=(identity.model if identity else None) or found.model,
        firmware=identity.firmware if identity else None,
        scopes=found.scopes,
    )


def _configured(config: AgentConfig | None, found: FoundCamera) -> str | None:
    if config is None:
        return None
    ids = []
    for camera in config.cameras:
        if camera.onvif_url is None:
            continue
        parts = urlsplit(camera.onvif_url)
        if parts.hostname == found.host and (parts.port or 80) == found.port:
            ids.append(camera.id)
    return ", ".join(ids) or None


def discovery_report(
    result: DiscoveryResult,
    *,
    started: datetime,
    config: AgentConfig | None = None,
    profiles: ProfileSet | None = None,
    details: Sequence[DeviceDetails | None] = (),
) -> DiscoveryReport:
    """The report of a discovery (`details`, when given, per camera in the same order)."""
    cameras: list[DiscoveredCamera] = []
    for index, found in enumerate(result.cameras, start=1):
        detail = details[index - 1] if index <= len(details) else None
        identity = detail.identity if detail is not None else None
        match = _match(profiles, found, identity)
        quirks = []
        for quirk in found.quirks:
            info = describe(quirk, why=found.notes.get(quirk))
            quirks.append(QuirkFound(id=info.id, detail=info.detail, workaround=info.workaround))
        cameras.append(
            DiscoveredCamera(
                index=index,
                host=found.host,
                port=found.port,
                device_url=found.device_url,
                endpoint=found.endpoint,
                model=(identity.model if identity else None) or found.model,
                name=found.name,
                location=found.location,
                scopes=found.scopes,
                found_by=list(found.found_by),
                vendor=Vendor(
                    id=match.vendor_id,
                    name=match.vendor_name,
                    confidence=match.confidence,
                    reasons=list(match.reasons),
                )
                if match is not None
                else None,
                clock_offset_s=round(found.clock.offset, 3)
                if found.clock is not None and found.clock.offset is not None
                else None,
                quirks=quirks,
                configured_as=_configured(config, found),
                identity=identity,
                recorder=recorder_info(
                    detail.channels if detail is not None else [], match=match, profiles=profiles
                ),
                error=detail.error if detail is not None else None,
            )
        )
    return DiscoveryReport(
        started_at=started,
        duration_s=round(result.duration, 3),
        interfaces=[InterfaceInfo(name=i.name, address=i.address) for i in result.interfaces],
        scanned=result.ranges,
        hosts_scanned=result.hosts_scanned,
        ws_port=result.ws_port,
        sweep_ports=result.sweep_ports,
        cameras=cameras,
    )


async def discover(
    *,
    scan: Sequence[str] = (),
    interfaces: Sequence[str] = (),
    multicast: bool = True,
    ws_port: int = WS_DISCOVERY_PORT,
    sweep_ports: Sequence[int] = DEFAULT_PORTS,
    wait: float = 2.0,
    progress: Progress | None = None,
    config: AgentConfig | None = None,
    profiles: ProfileSet | None = None,
    login: Login | None = None,
    onvif_timeout: float = 5.0,
) -> DiscoveryReport:
    """Find the devices (ScanRangeError for a bad --scan), and with `login` interrogate each."""
    started = datetime.now(UTC)
    result = await find_cameras(
        scan=scan,
        interfaces=interfaces,
        multicast=multicast,
        ws_port=ws_port,
        sweep_ports=sweep_ports,
        wait=wait,
        progress=progress,
    )
    details: list[DeviceDetails | None] = []
    if login is not None and result.cameras:
        limit = asyncio.Semaphore(INTERROGATE_CONCURRENCY)

        async def one(found: FoundCamera) -> DeviceDetails:
            async with limit:
                return await _interrogate(found, login, onvif_timeout)

        details = list(await asyncio.gather(*(one(c) for c in result.cameras)))
    return discovery_report(
        result, started=started, config=config, profiles=profiles, details=details
    )
