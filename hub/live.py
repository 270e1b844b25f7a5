"""The live wall: live views of integrated cameras through this hub's relay.

`start_live` mints a relay session and sends a signed `stream` request; `stop_live` sends the
signed `cancel` for it; `wall` lists the sessions worth showing (running, starting, or ended in
the last minutes, so an analyst sees *why* a tile went dark).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from agent.wire import EventState
from hub import audit
from hub.audit import Actor
from hub.core import Hub
from hub.db import Camera, RequestRow
from hub.events import SETTLED
from hub.request import RequestError
from hub.workflow import Publisher, RequestSpec, prepare_request, publish, record_request

MAX_MINUTES = 60
START_TTL = timedelta(minutes=5)  # a stream request not taken on within this is of no use
SHOW_ENDED_FOR = timedelta(minutes=10)

# Why a session ended, in the analyst's words (the site's `ended` reasons and the relay's).
END_REASONS = {
    "max_seconds": "the time asked for is up",
    "cancelled": "stopped from the hub",
    "owner_stopped": "the camera's owner stopped it",
    "paused": "the owner paused sharing",
    "sharing_changed": "the owner stopped sharing this camera live",
    "agent_stopped": "the site's agent is shutting down",
    "camera_offline": "the camera stopped sending video",
    "relay_closed": "the relay closed the session (its time ran out)",
    "relay_error": "the connection between the site and the relay broke",
    "publisher_closed": "the site closed the connection",
    "expired": "the session expired",
}


class LiveError(Exception):
    """A live view that cannot be started or stopped (the message says why)."""


def describe_end(reason: str | None) -> str:
    if not reason:
        return "ended"
    return END_REASONS.get(reason, reason.replace("_", " "))


async def start_live(
    hub: Hub,
    publisher: Publisher | None,
    *,
    site: str,
    camera: str,
    case: str,
    reason: str,
    minutes: int,
    actor: Actor,
) -> RequestRow:
    if not 1 <= minutes <= MAX_MINUTES:
        raise LiveError(f"a live view lasts 1 to {MAX_MINUTES} minutes")
    if not case.strip() or not reason.strip():
        raise LiveError("give the case number and a reason: the owner's log records both")
    async with hub.db.session() as session:
        listed = await session.get(Camera, (site, camera))
    if listed is None:
        raise LiveError(f"camera {camera} of site {site} is not on the map")
    if listed.sharing != "integrated" or not listed.live:
        raise LiveError(f"the owner of {listed.name or camera} does not share live video")
    if publisher is None:
        raise LiveError("this hub is not connected to the broker; nothing was sent")
    spec = RequestSpec(
        cmd="stream",
        site=site,
        camera=camera,
        case=case.strip(),
        requester=actor.username,
        reason=reason.strip(),
        max_seconds=minutes * 60,
        ttl=START_TTL,
    )
    try:
        prepared = prepare_request(hub.home, hub.signing_key(), hub.issuer(), spec)
    except RequestError as exc:
        raise LiveError(str(exc)) from None
    row = await record_request(hub.db, prepared, sharing=listed.sharing)
    await publish(publisher, prepared)
    await audit.record(
        hub.db,
        actor,
        "live",
        case=spec.case,
        reason=spec.reason,
        target=f"{site}/{camera}",
        detail=f"{minutes} min, request {row.id}",
    )
    hub.bus.publish("live", f"request:{row.id}")
    return row


async def stop_live(
    hub: Hub, publisher: Publisher | None, request_id: str, actor: Actor, *, may_stop_any: bool
) -> RequestRow:
    async with hub.db.session() as session:
        row = await session.get(RequestRow, request_id)
    if row is None or row.cmd != "stream":
        raise LiveError("there is no such live view")
    if row.requester != actor.username and not may_stop_any:
        raise LiveError("only the analyst who started it, or a supervisor, can stop it")
    if row.state in SETTLED:
        return row
    if publisher is None:
        raise LiveError("this hub is not connected to the broker; the view was not stopped")
    spec = RequestSpec(
        cmd="cancel", site=row.site_id, target=row.id, requester=actor.username,
        reason="stopped from the live wall",
    )  # fmt: skip
    prepared = prepare_request(hub.home, hub.signing_key(), hub.issuer(), spec)
    await record_request(hub.db, prepared)
    await publish(publisher, prepared)
    await audit.record(
        hub.db, actor, "live_stop", case=row.case, target=f"{row.site_id}/{row.camera_id}",
        detail=f"request {row.id}",
    )  # fmt: skip
    hub.bus.publish("live", f"request:{row.id}")
    return row


@dataclass(frozen=True)
class Tile:
    request: RequestRow
    camera_name: str
    time_left_s: float | None
    relay: dict[str, Any] | None  # the relay's view of the session, when this process holds it

    @property
    def ended(self) -> bool:
        return self.request.state in SETTLED

    @property
    def status(self) -> str:
        """What the tile says, in the analyst's words."""
        state = self.request.state
        if state == "sent":
            return "Asking the site…"
        if state == EventState.ACCEPTED.value:
            return "The site accepted; starting the video…"
        if state == EventState.STREAMING.value:
            return "Live"
        if state == EventState.REJECTED.value:
            return f"Refused by the site: {self.request.message or self.request.code}"
        if state == EventState.FAILED.value:
            return f"Failed: {self.request.message or self.request.code}"
        if state in (EventState.ENDED.value, EventState.CANCELLED.value):
            return f"Ended: {describe_end(self.request.end_reason or state)}"
        if state == "unsent":
            return f"Not sent: {self.request.message}"
        return state.replace("_", " ")


def time_left(row: RequestRow, now: datetime) -> float | None:
    if row.state in SETTLED:
        return None
    if row.started is not None and row.max_seconds is not None:
        return max(0.0, (row.started + timedelta(seconds=row.max_seconds) - now).total_seconds())
    return float(row.max_seconds) if row.max_seconds is not None else None


async def wall(
    hub: Hub, *, relay_stats: Callable[[str], dict[str, Any] | None] | None = None
) -> list[Tile]:
    now = datetime.now(UTC)
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                select(RequestRow, Camera.name)
                .outerjoin(
                    Camera,
                    (Camera.site_id == RequestRow.site_id) & (Camera.id == RequestRow.camera_id),
                )
                .where(RequestRow.cmd == "stream")
                .where(
                    or_(
                        RequestRow.state.not_in(SETTLED),
                        RequestRow.updated >= now - SHOW_ENDED_FOR,
                    )
                )
                .order_by(RequestRow.issued.desc())
            )
        ).all()
    tiles = []
    for row, name in rows:
        if row.state not in SETTLED and row.state == "sent" and row.expires < now:
            continue  # never taken on, and now too old to be
        stats = relay_stats(row.relay_session) if relay_stats and row.relay_session else None
        tiles.append(Tile(row, name or row.camera_id or "", time_left(row, now), stats))
    return tiles


async def tile(
    hub: Hub,
    request_id: str,
    *,
    relay_stats: Callable[[str], dict[str, Any] | None] | None = None,
) -> Tile | None:
    for found in await wall(hub, relay_stats=relay_stats):
        if found.request.id == request_id:
            return found
    async with hub.db.session() as session:
        row = await session.get(RequestRow, request_id)
    if row is None or row.cmd != "stream":
        return None
    stats = relay_stats(row.relay_session) if relay_stats and row.relay_session else None
    return Tile(row, row.camera_id or "", time_left(row, datetime.now(UTC)), stats)
