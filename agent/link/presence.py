"""What the site says about itself: the retained status and registry messages (DESIGN §4.7).

The daemon knows the facts (cameras online, store usage, hours held); the session knows the
link (online or not, when). So the daemon hands the session *providers*: callables returning the
claims of `StatusClaims` / `RegistryClaims` without `iss`, `iat` (and, for status, `online`),
which the session completes, validates and signs. A provider may be sync or async.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agent import __version__
from agent.config import AgentConfig, SharingMode
from agent.wire import CameraListing, RegistryClaims, StatusClaims
from agent.wire.registry import Location, SiteInfo

Claims = Mapping[str, Any]
StatusProvider = Callable[[], Claims | Awaitable[Claims]]
RegistryProvider = Callable[[], Claims | Awaitable[Claims]]


async def call_provider(provider: Callable[[], Claims | Awaitable[Claims]]) -> Claims:
    result = provider()
    if inspect.isawaitable(result):
        return await result
    return result


def status_claims(site_id: str, fields: Claims, *, online: bool, now: float) -> StatusClaims:
    return StatusClaims.model_validate(
        {**fields, "iss": site_id, "iat": int(now), "online": online}
    )


def registry_claims(site_id: str, fields: Claims, *, now: float) -> RegistryClaims:
    return RegistryClaims.model_validate({**fields, "iss": site_id, "iat": int(now)})


def basic_status(*, started: float | None = None) -> StatusProvider:
    """The agent version and the uptime since `started` (a `time.monotonic()` value)."""
    origin = time.monotonic() if started is None else started

    def provide() -> Claims:
        return {"version": __version__, "uptime_s": round(time.monotonic() - origin, 1)}

    return provide


def bare_registry(site_id: str) -> RegistryProvider:
    """A registry naming the site and no cameras (tests; an agent with nothing listed)."""

    def provide() -> Claims:
        return {"site": {"id": site_id, "name": site_id}, "cameras": []}

    return provide


def registry_from_config(config: AgentConfig) -> RegistryProvider:
    """The site and its listed (non-private) cameras as configured, before anything is measured:
    verdict unknown, not online, no footage held. The daemon replaces this with live facts."""

    def provide() -> Claims:
        site = SiteInfo(
            id=config.site.id,
            name=config.site.name,
            address=config.site.address,
            contact=config.site.contact,
        )
        cameras = [
            CameraListing(
                id=camera.id,
                name=camera.name,
                location=Location(
                    lat=camera.location.lat,
                    lon=camera.location.lon,
                    heading=camera.location.heading,
                    fov=camera.location.fov,
                    description=camera.location.description,
                )
                if camera.location
                else None,
                sharing="registry" if camera.sharing is SharingMode.REGISTRY else "integrated",
                live=camera.live,
                online=False,
                footage_hours=0.0,
            )
            for camera in config.cameras
            if camera.sharing is not SharingMode.PRIVATE
        ]
        return {
            "site": site.model_dump(),
            "cameras": [c.model_dump(mode="json") for c in cameras],
        }

    return provide
