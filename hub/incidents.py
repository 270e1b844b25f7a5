"""Incidents (DC's CameraConnect alert): a point, a radius, a time window, a case and a reason;
every shared camera in range gets a signed clip request at once.

    plan = await plan_incident(hub.db, lat, lon, radius_m)    # what would be asked, split
    outcome = await open_incident(hub, publisher, IncidentSpec(...), actor)

Cameras in range are split the way their owners share them: `integrated` cameras give their
footage at once (within the owner's limits), `registry` cameras wait for the owner to approve
each request. Both get the request; the page shows which is which so nobody waits on the wrong
thing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiomqtt
from sqlalchemy import select

from agent.units import haversine_m, human_distance
from agent.wire import EventState
from hub import audit
from hub.audit import Actor
from hub.core import Hub
from hub.db import Camera, Evidence, Incident, RequestRow
from hub.mqtt import HubConnectionError
from hub.presign import check_segment
from hub.registry import MapCamera, cameras_near
from hub.request import RequestError
from hub.workflow import (
    FOOTAGE_TTL,
    PreparedRequest,
    Publisher,
    RequestSpec,
    prepare_request,
    publish,
    request_row,
)

MAX_RADIUS_M = 5_000.0
MAX_WINDOW = timedelta(hours=24)
CLIP_TTL = FOOTAGE_TTL  # an owner has this long to approve a registry camera's request


class IncidentError(Exception):
    """The incident cannot be opened as given (the message says which field and why)."""


@dataclass(frozen=True)
class IncidentPlan:
    lat: float
    lon: float
    radius_m: float
    integrated: list[MapCamera]
    registry: list[MapCamera]

    @property
    def cameras(self) -> list[MapCamera]:
        return [*self.integrated, *self.registry]

    @property
    def sites(self) -> set[str]:
        return {camera.site for camera in self.cameras}


async def plan_incident(hub: Hub, lat: float, lon: float, radius_m: float) -> IncidentPlan:
    check_area(lat, lon, radius_m)
    found = await cameras_near(hub.db, lat, lon, radius_m)
    return IncidentPlan(
        lat,
        lon,
        radius_m,
        integrated=[c for c in found if c.sharing == "integrated"],
        registry=[c for c in found if c.sharing == "registry"],
    )


def check_area(lat: float, lon: float, radius_m: float) -> None:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise IncidentError(f"{lat},{lon} is not a place on Earth (latitude, longitude)")
    if not 0 < radius_m <= MAX_RADIUS_M:
        raise IncidentError(f"the radius must be more than 0 and at most {MAX_RADIUS_M:.0f} m")


@dataclass(frozen=True)
class IncidentSpec:
    case: str
    reason: str
    lat: float
    lon: float
    radius_m: float
    start: datetime
    end: datetime

    def check(self, now: datetime) -> None:
        check_area(self.lat, self.lon, self.radius_m)
        try:
            check_segment(self.case, "case number")
        except ValueError as exc:
            raise IncidentError(str(exc)) from None
        if not self.reason.strip():
            raise IncidentError("give a reason: the owners read it before they share footage")
        if self.end <= self.start:
            raise IncidentError("the window must end after it starts")
        if self.end - self.start > MAX_WINDOW:
            raise IncidentError("the window may be at most 24 hours long")
        if self.start > now:
            raise IncidentError("the window starts in the future: there is no footage yet")


@dataclass
class IncidentOutcome:
    incident: Incident
    plan: IncidentPlan
    sent: list[RequestRow] = field(default_factory=list)
    unsent: list[tuple[MapCamera, str]] = field(default_factory=list)


async def open_incident(
    hub: Hub, publisher: Publisher | None, spec: IncidentSpec, actor: Actor
) -> IncidentOutcome:
    """Create the incident and send a clip request to every shared camera in range.

    The window is capped at now for the request (footage cannot be asked of the future).
    A request that cannot be sent (the broker is unreachable, `publisher` is None) is kept with
    the state `unsent` and the reason, so the page says so rather than waiting forever."""
    now = datetime.now(UTC)
    spec.check(now)
    plan = await plan_incident(hub, spec.lat, spec.lon, spec.radius_m)
    incident = Incident(
        case=spec.case,
        reason=spec.reason.strip(),
        lat=spec.lat,
        lon=spec.lon,
        radius_m=spec.radius_m,
        start=spec.start,
        end=spec.end,
        created=now,
        created_by=actor.username,
    )
    async with hub.db.session() as session:
        session.add(incident)
    await audit.record(
        hub.db,
        actor,
        "incident",
        case=spec.case,
        reason=spec.reason,
        target=f"incident {incident.id}",
        detail=f"{len(plan.cameras)} camera(s) at {len(plan.sites)} site(s) within "
        f"{human_distance(spec.radius_m)} of {spec.lat:.5f},{spec.lon:.5f}, "
        f"{spec.start.isoformat()} to {spec.end.isoformat()}",
    )
    outcome = IncidentOutcome(incident, plan)
    end = min(spec.end, now)
    key, issuer = hub.signing_key(), hub.issuer()
    batch: list[tuple[MapCamera, PreparedRequest]] = []
    for camera in plan.cameras:
        request_spec = RequestSpec(
            cmd="clip",
            site=camera.site,
            camera=camera.camera,
            case=spec.case,
            requester=actor.username,
            reason=spec.reason.strip(),
            start=spec.start,
            end=end,
            ttl=CLIP_TTL,
        )
        try:
            batch.append((camera, prepare_request(hub.home, key, issuer, request_spec, now=now)))
        except RequestError as exc:
            outcome.unsent.append((camera, str(exc)))
    # Every request recorded (with its audit entry) in one transaction before any is sent, so
    # no event can arrive for an unknown request; then all sent at once.
    rows = {}
    async with hub.db.session() as session:
        for camera, prepared in batch:
            row = request_row(prepared, incident_id=incident.id, sharing=camera.sharing)
            session.add(row)
            rows[prepared.jti] = row
            session.add(
                audit.make_entry(
                    actor,
                    "request",
                    case=spec.case,
                    reason=spec.reason,
                    target=f"{camera.site}/{camera.camera}",
                    detail=f"clip {spec.start.isoformat()} to {end.isoformat()}, request "
                    f"{prepared.jti}, {camera.sharing}",
                )
            )
    results = await asyncio.gather(
        *(_send(publisher, prepared) for _, prepared in batch), return_exceptions=True
    )
    for (camera, prepared), result in zip(batch, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, _SEND_ERRORS):
                raise result
            await _mark_unsent(hub, prepared.jti, f"not sent: {result}")
            outcome.unsent.append((camera, f"not sent: {result}"))
        else:
            outcome.sent.append(rows[prepared.jti])
    hub.bus.publish(f"incident:{incident.id}", "incidents")
    return outcome


_SEND_ERRORS = (HubConnectionError, aiomqtt.MqttError, OSError)


async def _send(publisher: Publisher | None, prepared: PreparedRequest) -> None:
    if publisher is None:
        raise HubConnectionError("this hub is not connected to the broker")
    await publish(publisher, prepared)


async def _mark_unsent(hub: Hub, request_id: str, message: str) -> None:
    async with hub.db.session() as session:
        row = await session.get(RequestRow, request_id)
        if row is not None:
            row.state, row.code, row.message = "unsent", "not_sent", message[:500]


@dataclass(frozen=True)
class IncidentCamera:
    """One camera's line on the incident page."""

    request: RequestRow
    evidence: Evidence | None
    distance_m: float | None
    lat: float | None
    lon: float | None
    name: str | None = None  # as the site's registry lists it now

    @property
    def waiting_for_owner(self) -> bool:
        return self.request.state == EventState.PENDING_APPROVAL.value


async def incident(hub: Hub, incident_id: int) -> Incident | None:
    async with hub.db.session() as session:
        return await session.get(Incident, incident_id)


async def incidents(hub: Hub, *, limit: int = 200) -> list[tuple[Incident, dict[str, int]]]:
    """Newest first, each with a count of its requests by state."""
    async with hub.db.session() as session:
        found = (
            (await session.execute(select(Incident).order_by(Incident.id.desc()).limit(limit)))
            .scalars()
            .all()
        )
        rows = (
            await session.execute(
                select(RequestRow.incident_id, RequestRow.state).where(
                    RequestRow.incident_id.in_([i.id for i in found])
                )
            )
        ).all()
    counts: dict[int, dict[str, int]] = {}
    for incident_id, state in rows:
        assert incident_id is not None
        by_state = counts.setdefault(incident_id, {})
        by_state[state] = by_state.get(state, 0) + 1
    return [(item, counts.get(item.id, {})) for item in found]


async def incident_cameras(hub: Hub, found: Incident) -> list[IncidentCamera]:
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                select(RequestRow, Evidence, Camera.lat, Camera.lon, Camera.name)
                .outerjoin(Evidence, Evidence.request_id == RequestRow.id)
                .outerjoin(
                    Camera,
                    (Camera.site_id == RequestRow.site_id) & (Camera.id == RequestRow.camera_id),
                )
                .where(RequestRow.incident_id == found.id)
            )
        ).all()
    cameras = []
    for request, evidence, lat, lon, name in rows:
        distance = None
        if lat is not None and lon is not None:
            distance = round(haversine_m(found.lat, found.lon, lat, lon), 1)
        cameras.append(IncidentCamera(request, evidence, distance, lat, lon, name))
    cameras.sort(
        key=lambda c: (c.request.sharing != "integrated", c.distance_m or 0.0, c.request.site_id)
    )
    return cameras
