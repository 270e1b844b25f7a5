"""Incidents: drop a pin, a radius, a window, a case and a reason → every shared camera in range
gets a signed clip request → each camera's progress updates live (server-sent events)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from hub import audit
from hub.console.app import console_of, render
from hub.console.auth import Who, page
from hub.console.sse import event_stream, stream_changes
from hub.console.view import size
from hub.db import Incident
from hub.incidents import (
    IncidentCamera,
    IncidentError,
    IncidentSpec,
    check_area,
    incident,
    incident_cameras,
    incidents,
    open_incident,
    plan_incident,
)

DEFAULT_RADIUS_M = 300

REJECTIONS = {
    "denied_by_owner": "the owner declined",
    "approval_expired": "the owner did not answer in time",
    "out_of_retention": "the site no longer holds that footage",
    "window_in_future": "the window is in the future",
    "window_too_long": "the window is longer than the owner allows",
    "not_shared": "the owner no longer shares this camera",
    "unknown_camera": "the site does not know this camera any more",
    "rate_limited": "the owner's limit of requests per hour was reached",
    "paused": "the owner has paused sharing",
    "upload_not_allowed": "the owner does not allow uploads to this hub",
}


def camera_line(item: IncidentCamera) -> dict[str, Any]:
    """One camera's state in the analyst's words (the page and its live updates share it)."""
    request, found = item.request, item.evidence
    state = request.state
    progress = None
    detail = ""
    if state == "sent":
        kind, text = "wait", "Sent; waiting for the site to answer"
        detail = "If the site is offline, the broker delivers it when the site reconnects."
    elif state == "accepted":
        kind, text = "info", "Accepted: the clip is being prepared"
    elif state == "pending_approval":
        kind, text = "wait", "Waiting for the owner to approve"
        detail = "Registry camera: the owner decides each request."
    elif state == "approved":
        kind, text = "info", "Approved by the owner: the clip is being prepared"
    elif state == "progress":
        total, sent = request.bytes_total or 0, request.bytes_sent or 0
        progress = sent / total if total else None
        kind = "info"
        text = f"Uploading: {size(sent)} of {size(total)}" if total else "Uploading"
    elif state == "completed":
        if found is None:
            kind, text = "info", "Delivered; checking it…"
        elif found.verified_ok:
            kind, text = "good", "Delivered and verified"
        elif found.verified_ok is False:
            kind, text = "bad", "Delivered, but it did NOT verify"
            detail = "Open it in the evidence locker to see which check failed."
        else:
            kind, text = "info", "Delivered; checking it…"
    elif state == "rejected":
        kind = "bad"
        text = f"Refused: {REJECTIONS.get(request.code or '', request.code or 'refused')}"
        detail = request.message or ""
    elif state == "failed":
        kind, text = "bad", f"Failed: {request.message or request.code}"
    elif state == "unsent":
        kind, text = "bad", "Not sent"
        detail = request.message or ""
    elif state == "cancelled":
        kind, text = "off", "Cancelled"
    else:
        kind, text = "info", state.replace("_", " ")
    return {
        "id": request.id,
        "kind": kind,
        "text": text,
        "detail": detail,
        "progress": progress,
        "evidence": found.id if found is not None else None,
        "verified": found.verified_ok if found is not None else None,
        "case": request.case,
    }


def summary(lines: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"total": len(lines), "good": 0, "wait": 0, "info": 0, "bad": 0, "off": 0}
    for line in lines:
        counts[line["kind"]] += 1
    return counts


@page()
async def list_view(request: web.Request, who: Who) -> web.StreamResponse:
    found = await incidents(console_of(request).hub)
    return render(request, "incidents.html", {"active": "incidents", "incidents": found})


def _float(value: str | None, what: str) -> float:
    try:
        number = float(value or "")
    except ValueError:
        raise IncidentError(f"{what} must be a number") from None
    return number


def _window(form: Any) -> tuple[datetime, datetime]:
    """The window from the form's local date-times and the browser's UTC offset (minutes, as
    JavaScript's getTimezoneOffset gives it; absent: the times are UTC)."""
    try:
        offset = timedelta(minutes=int(form.get("tz_offset") or 0))
    except ValueError:
        offset = timedelta(0)
    times = []
    for name, label in (("start", "From"), ("end", "To")):
        text = str(form.get(name) or "")
        try:
            local = datetime.fromisoformat(text)
        except ValueError:
            raise IncidentError(f"{label}: give a date and time") from None
        moment = local.replace(tzinfo=UTC) + offset if local.tzinfo is None else local
        times.append(moment.astimezone(UTC))
    return times[0], times[1]


@page()
async def new_view(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    query = request.query
    context: dict[str, Any] = {
        "active": "incidents",
        "lat": query.get("lat", ""),
        "lon": query.get("lon", ""),
        "radius": query.get("radius", str(DEFAULT_RADIUS_M)),
        "case": query.get("case", ""),
        "reason": query.get("reason", ""),
        "start": query.get("start", ""),
        "end": query.get("end", ""),
        "tz_offset": query.get("tz_offset", ""),
        "plan": None,
        "error": None,
    }
    if query.get("find"):
        try:
            lat, lon = _float(query.get("lat"), "Latitude"), _float(query.get("lon"), "Longitude")
            radius = _float(query.get("radius"), "Radius")
            check_area(lat, lon, radius)
            plan = await plan_incident(console.hub, lat, lon, radius)
        except IncidentError as exc:
            context["error"] = str(exc)
        else:
            context["plan"] = plan
            await audit.record(
                console.hub.db,
                who.actor,
                "search",
                case=query.get("case") or None,
                reason=query.get("reason") or None,
                detail=f"{len(plan.cameras)} camera(s) within {radius:.0f} m of "
                f"{lat:.5f},{lon:.5f}",
            )
    return render(request, "incident_new.html", context)


@page()
async def create(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    form = await request.post()
    try:
        start, end = _window(form)
        spec = IncidentSpec(
            case=str(form.get("case", "")).strip(),
            reason=str(form.get("reason", "")).strip(),
            lat=_float(str(form.get("lat")), "Latitude"),
            lon=_float(str(form.get("lon")), "Longitude"),
            radius_m=_float(str(form.get("radius")), "Radius"),
            start=start,
            end=end,
        )
        outcome = await open_incident(console.hub, console.publisher, spec, who.actor)
    except IncidentError as exc:
        context = {
            key: str(form.get(key, ""))
            for key in ("lat", "lon", "radius", "case", "reason", "start", "end", "tz_offset")
        }
        return render(
            request,
            "incident_new.html",
            {"active": "incidents", "plan": None, "error": str(exc), **context},
            status=400,
        )
    raise web.HTTPSeeOther(f"/incidents/{outcome.incident.id}")


async def _load(request: web.Request) -> Incident:
    try:
        incident_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    found = await incident(console_of(request).hub, incident_id)
    if found is None:
        raise web.HTTPNotFound(text="there is no such incident\n")
    return found


@page()
async def detail_view(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    found = await _load(request)
    items = await incident_cameras(console.hub, found)
    lines = [camera_line(item) for item in items]
    await audit.record(
        console.hub.db, who.actor, "view", case=found.case, target=f"incident {found.id}"
    )
    return render(
        request,
        "incident.html",
        {
            "active": "incidents",
            "incident": found,
            "rows": list(zip(items, lines, strict=True)),
            "counts": summary(lines),
            "points": json.dumps(
                [
                    {"la": i.lat, "lo": i.lon, "k": line["kind"], "n": i.request.camera_id}
                    for i, line in zip(items, lines, strict=True)
                    if i.lat is not None and i.lon is not None
                ]
            ),
            "tiles_url": console.settings.tiles_url or "",
        },
    )


@page()
async def events(request: web.Request, who: Who) -> web.StreamResponse:
    """Server-sent events: the incident's camera lines whenever one changes."""
    console = console_of(request)
    found = await _load(request)
    response = event_stream()
    await response.prepare(request)
    topics = [f"incident:{found.id}", f"case:{found.case}"]

    async def snapshot() -> str:
        lines = [camera_line(item) for item in await incident_cameras(console.hub, found)]
        return json.dumps({"cameras": lines, "counts": summary(lines)})

    await stream_changes(request, response, console.hub.bus, topics, snapshot, stop=console.closing)
    return response


def routes(app: web.Application) -> None:
    app.router.add_get("/incidents", list_view)
    app.router.add_get("/incidents/new", new_view)
    app.router.add_post("/incidents", create)
    app.router.add_get(r"/incidents/{id:\d+}", detail_view)
    app.router.add_get(r"/incidents/{id:\d+}/events", events)
