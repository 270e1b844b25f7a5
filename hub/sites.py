"""The map registry: every site's retained registry and status, checked, as camera rows sorted
by distance from a point (what a city camera program's map shows an analyst)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiomqtt

from agent.units import haversine_m
from agent.wire import RegistryClaims, StatusClaims, Topics
from hub.mqtt import retained
from hub.state import TrustedSite
from hub.trust import Checked, Verdict, check_message


@dataclass
class SiteView:
    site: str
    registry: Checked | None = None
    status: Checked | None = None

    @property
    def online(self) -> bool | None:
        """The site's own word, if its status verified; None when unknown."""
        if self.status is not None and isinstance(self.status.model, StatusClaims):
            return self.status.model.online
        return None


@dataclass
class CameraRow:
    site: str
    camera: str | None
    name: str = ""
    lat: float | None = None
    lon: float | None = None
    distance_m: float | None = None
    sharing: str = ""
    live: bool | None = None
    verdict: str = ""
    online: bool | None = None
    site_online: bool | None = None
    footage_hours: float | None = None
    signature: str = Verdict.VERIFIED.value
    note: str = ""
    registry_age_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def collect_sites(
    client: aiomqtt.Client, trusted: Mapping[str, TrustedSite]
) -> dict[str, SiteView]:
    """Read and check the retained registry and status of every site."""
    messages = await retained(client, [Topics.all_sites("registry"), Topics.all_sites("status")])
    views: dict[str, SiteView] = {}
    for message in messages:
        checked = check_message(message.topic.value, bytes(message.payload), trusted)
        if checked.site is None:
            continue
        view = views.setdefault(checked.site, SiteView(checked.site))
        if checked.kind == "registry":
            view.registry = checked
        elif checked.kind == "status":
            view.status = checked
    return views


def camera_rows(
    views: Mapping[str, SiteView],
    *,
    near: tuple[float, float] | None = None,
    radius_m: float | None = None,
    now: float | None = None,
) -> list[CameraRow]:
    """One row per listed camera of a verified registry; one flagged row per site whose registry
    did not verify (its claims are not used). Sorted by distance when `near` is given (cameras
    without a location last); `radius_m` keeps only cameras known to be within it, plus the
    flagged sites, which an analyst must see rather than silently lose."""
    moment = time.time() if now is None else now
    rows: list[CameraRow] = []
    flagged: list[CameraRow] = []
    for site, view in sorted(views.items()):
        registry = view.registry
        if registry is None:
            continue  # a status without a registry lists nothing
        if not registry.ok or not isinstance(registry.model, RegistryClaims):
            flagged.append(
                CameraRow(
                    site=site,
                    camera=None,
                    signature=registry.verdict.value,
                    note=registry.reason,
                    site_online=view.online,
                )
            )
            continue
        claims = registry.model
        for camera in claims.cameras:
            location = camera.location
            distance = None
            if near is not None and location is not None:
                distance = haversine_m(near[0], near[1], location.lat, location.lon)
            rows.append(
                CameraRow(
                    site=site,
                    camera=camera.id,
                    name=camera.name,
                    lat=location.lat if location else None,
                    lon=location.lon if location else None,
                    distance_m=distance,
                    sharing=camera.sharing,
                    live=camera.live,
                    verdict=camera.verdict,
                    online=camera.online,
                    site_online=view.online,
                    footage_hours=camera.footage_hours,
                    registry_age_s=max(0.0, moment - claims.iat),
                )
            )
    if radius_m is not None:
        rows = [r for r in rows if r.distance_m is not None and r.distance_m <= radius_m]
    if near is not None:
        rows.sort(key=lambda r: (r.distance_m is None, r.distance_m or 0.0, r.site, r.camera))
    return rows + flagged
