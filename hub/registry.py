"""The map registry in the database: every site's signed registry and status, as received.

`record_presence` stores one checked registry or status message. A verified registry replaces
the site's camera list; a registry that does not verify (forged, malformed, from a site whose
key the hub does not hold) removes the site's cameras from the map and records why, for the
fleet page: a camera is only ever shown on the word of its site's own key.

Messages are applied in the order they arrive (the broker delivers a topic in order), so a
site's last will (`online: false`, signed when it connected, so with an older `iat`) still
marks it offline. A copy identical to what is stored changes nothing. An empty message (the
broker deleting a retained one: a site uninstalled, or retired by `rtcc-hub sites retire`)
withdraws what the site had said.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent.units import haversine_m
from agent.wire import RegistryClaims, StatusClaims
from hub.db import Camera, Database, Site
from hub.db.ops import insert_ignore
from hub.state import TrustedSite
from hub.trust import Checked, Verdict, check_message


@dataclass(frozen=True)
class PresenceChange:
    site: str
    kind: str  # registry | status
    changed: bool


def _time(epoch: int | float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def _site(session: AsyncSession, site_id: str) -> Site:
    """The site's row, locked for this transaction (made if new)."""
    await insert_ignore(session, Site, {"id": site_id})
    site = await session.get(Site, site_id, with_for_update=True, populate_existing=True)
    assert site is not None
    return site


async def record_presence(
    db: Database, checked: Checked, token: str, *, received: datetime, retained: bool
) -> PresenceChange | None:
    """Store a checked registry or status message of a site. None if it is neither (or names
    no site)."""
    if checked.site is None or checked.kind not in ("registry", "status"):
        return None
    async with db.session() as session:
        site = await _site(session, checked.site)
        if not token:
            changed = await _withdraw(session, site, checked.kind)
        elif checked.kind == "registry":
            changed = await _apply_registry(session, site, checked, token, received)
        else:
            changed = _apply_status(site, checked, token, received, retained=retained)
    return PresenceChange(checked.site, checked.kind, changed)


async def withdraw_site(db: Database, site_id: str) -> bool:
    """Forget a retired site's registry and status (what `rtcc-hub sites retire` does to the
    database at once; a running ingestion does the same when the empty messages arrive)."""
    async with db.session() as session:
        site = await session.get(Site, site_id, with_for_update=True, populate_existing=True)
        if site is None:
            return False
        registry = await _withdraw(session, site, "registry")
        status = await _withdraw(session, site, "status")
    return registry or status


async def _withdraw(session: AsyncSession, site: Site, kind: str) -> bool:
    """An empty retained message: the site (uninstalling) or the hub (`sites retire`) deleted
    it from the broker. Only those two may write there (the broker's ACL), so the map forgets
    what it said rather than flagging the site as malformed."""
    if kind == "registry":
        if site.registry_token is None and site.registry_verdict is None:
            return False
        site.registry_token = site.registry_verdict = site.registry_iat = None
        site.registry_reason = ""
        site.registry_received = None
        await session.execute(delete(Camera).where(Camera.site_id == site.id))
        return True
    if site.status_verdict is None and site.online is None:
        return False
    site.status_verdict, site.status_reason = None, ""
    site.status_iat = site.status_received = None
    site.online = None
    return True


async def _apply_registry(
    session: AsyncSession, site: Site, checked: Checked, token: str, received: datetime
) -> bool:
    if site.registry_token == token and site.registry_verdict == checked.verdict.value:
        return False
    site.registry_token = token
    site.registry_received = received
    site.registry_verdict = checked.verdict.value
    site.registry_reason = checked.reason
    await session.execute(delete(Camera).where(Camera.site_id == site.id))
    model = checked.model
    if not checked.ok or not isinstance(model, RegistryClaims):
        site.registry_iat = None
        return True
    site.registry_iat = _time(model.iat)
    site.name, site.address, site.contact = model.site.name, model.site.address, model.site.contact
    site.last_seen = max(filter(None, (site.last_seen, _time(model.iat))))
    for listing in model.cameras:
        location = listing.location
        session.add(
            Camera(
                site_id=site.id,
                id=listing.id,
                name=listing.name,
                lat=location.lat if location else None,
                lon=location.lon if location else None,
                heading=location.heading if location else None,
                fov=location.fov if location else None,
                description=location.description if location else "",
                sharing=listing.sharing,
                live=listing.live,
                verdict=listing.verdict,
                online=listing.online,
                footage_hours=listing.footage_hours,
                vendor=listing.vendor,
                model=listing.model,
                firmware=listing.firmware,
                updated=received,
            )
        )
    return True


def _apply_status(
    site: Site, checked: Checked, token: str, received: datetime, *, retained: bool
) -> bool:
    model = checked.model
    if not checked.ok or not isinstance(model, StatusClaims):
        if site.status_verdict == checked.verdict.value and site.status_reason == checked.reason:
            return False
        site.status_verdict, site.status_reason = checked.verdict.value, checked.reason
        site.status_received = received
        return True
    signed = _time(model.iat)
    if (
        site.status_verdict == Verdict.VERIFIED.value
        and site.status_iat == signed
        and site.online == model.online
    ):
        return False
    site.status_verdict, site.status_reason = checked.verdict.value, ""
    site.status_iat, site.status_received = signed, received
    site.online = model.online
    site.version = model.version
    site.uptime_s = model.uptime_s
    site.cameras_online, site.cameras_total = model.cameras_online, model.cameras_total
    if model.clock is not None:
        site.clock_synced, site.clock_source = model.clock.synchronized, model.clock.source
    if model.store is not None:
        site.store_used, site.store_budget = model.store.bytes_used, model.store.bytes_budget
        site.disk_free = model.store.disk_free
    site.paused_until = _time(model.paused_until) if model.paused_until else None
    if model.online:
        site.last_seen = max(filter(None, (site.last_seen, signed)))
    if not retained and model.online:
        note_clock(site, signed, received)
    return True


def note_clock(site: Site, signed: datetime, received: datetime) -> None:
    """A message signed at `signed` arrived live at `received`: the site's clock offset, as
    well as one can tell (`iat` has whole seconds; transit adds a little)."""
    site.clock_drift_s = round((received - signed).total_seconds(), 1)


async def recheck_sites(db: Database, trusted: Mapping[str, TrustedSite]) -> list[str]:
    """Check every stored registry and status again (the trusted keys changed): a site trusted
    since its registry arrived appears on the map, a site no longer trusted disappears.
    Returns the sites whose registry verdict changed."""
    async with db.session() as session:
        sites = (await session.execute(select(Site))).scalars().all()
        stored = [(s.id, s.registry_token, s.registry_verdict) for s in sites]
    changed = []
    for site_id, token, verdict in stored:
        if token is None:
            continue
        topic = f"rtcc/v1/sites/{site_id}/registry"
        checked = check_message(topic, token.encode("ascii", "replace"), trusted)
        if checked.verdict.value != verdict:
            async with db.session() as session:
                site = await _site(session, site_id)
                site.registry_token = None  # so that the same token is applied afresh
                await _apply_registry(session, site, checked, token, datetime.now(UTC))
            changed.append(site_id)
    return changed


# --- reading the map --------------------------------------------------------------------------


@dataclass(frozen=True)
class MapCamera:
    site: str
    site_name: str
    camera: str
    name: str
    lat: float | None
    lon: float | None
    heading: float | None
    fov: float | None
    sharing: str
    live: bool
    verdict: str
    online: bool
    site_online: bool | None
    footage_hours: float
    distance_m: float | None = None

    @property
    def reachable(self) -> bool:
        """The camera and its site say they are up."""
        return self.online and self.site_online is not False


async def map_cameras(
    db: Database,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    sharing: str | None = None,
    live_only: bool = False,
    online_only: bool = False,
) -> list[MapCamera]:
    """Every shared camera from a verified registry (optionally within `bbox` =
    south, west, north, east)."""
    # Columns, not ORM objects: the map of a city reads thousands of rows at each load.
    query = (
        select(*_MAP_COLUMNS, Site.name, Site.online)
        .join(Site, Site.id == Camera.site_id)
        .where(Site.registry_verdict == Verdict.VERIFIED.value)
        .order_by(Camera.site_id, Camera.id)
    )
    if bbox is not None:
        south, west, north, east = bbox
        query = query.where(Camera.lat.between(south, north), Camera.lon.between(west, east))
    if sharing is not None:
        query = query.where(Camera.sharing == sharing)
    if live_only:
        query = query.where(Camera.live.is_(True))
    if online_only:
        query = query.where(Camera.online.is_(True))
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [
        MapCamera(
            site=row[0],
            site_name=row[13],
            camera=row[1],
            name=row[2],
            lat=row[3],
            lon=row[4],
            heading=row[5],
            fov=row[6],
            sharing=row[7],
            live=row[8],
            verdict=row[9],
            online=row[10],
            site_online=row[14],
            footage_hours=row[11],
        )
        for row in rows
    ]


_MAP_COLUMNS = (
    Camera.site_id, Camera.id, Camera.name, Camera.lat, Camera.lon, Camera.heading, Camera.fov,
    Camera.sharing, Camera.live, Camera.verdict, Camera.online, Camera.footage_hours,
    Camera.updated,
)  # fmt: skip


_EARTH_M_PER_DEG = 111_320.0


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """A lat/lon box holding the circle (for the index), refined by exact distance after."""
    dlat = radius_m / _EARTH_M_PER_DEG
    dlon = radius_m / (_EARTH_M_PER_DEG * max(math.cos(math.radians(lat)), 1e-6))
    return lat - dlat, lon - dlon, lat + dlat, lon + dlon


async def cameras_near(db: Database, lat: float, lon: float, radius_m: float) -> list[MapCamera]:
    """Shared cameras within `radius_m` of a point, nearest first."""
    found = []
    for camera in await map_cameras(db, bbox=bounding_box(lat, lon, radius_m)):
        if camera.lat is None or camera.lon is None:
            continue
        distance = haversine_m(lat, lon, camera.lat, camera.lon)
        if distance <= radius_m:
            found.append((distance, camera))
    found.sort(key=lambda item: (item[0], item[1].site, item[1].camera))
    return [
        MapCamera(**{**camera.__dict__, "distance_m": round(distance, 1)})
        for distance, camera in found
    ]


async def sites(db: Database) -> Sequence[Site]:
    async with db.session() as session:
        return (await session.execute(select(Site).order_by(Site.id))).scalars().all()
