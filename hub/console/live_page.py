"""The live wall: a grid of live views through this hub's relay, each with the time left, a
stop button, and a plain message when it cannot play (ended and why, H.265 in a browser that
cannot decode it, the site refused)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub import audit, live
from hub.console.app import console_of, refusal, render
from hub.console.auth import Who, page
from hub.console.sse import event_stream, stream_changes
from hub.live import LiveError, Tile
from hub.relay_sessions import SessionStore


def tile_json(tile: Tile) -> dict[str, Any]:
    relay = tile.relay or {}
    request = tile.request
    if tile.ended:
        kind = "ended"
    elif relay.get("state") == "live" or request.state == "streaming":
        kind = "live"
    else:
        kind = "waiting"
    if request.state in ("rejected", "failed", "unsent"):
        kind = "problem"
    return {
        "id": request.id,
        "camera": tile.camera_name,
        "site": request.site_id,
        "case": request.case,
        "requester": request.requester,
        "status": tile.status,
        "kind": kind,
        "time_left": None if tile.time_left_s is None else round(tile.time_left_s),
        "codec": relay.get("codec"),
        "video": kind == "live",
    }


def _relay_status(request: web.Request) -> Any:
    relay = console_of(request).relay(request.app)
    return relay.status if relay is not None else None


@page()
async def wall_view(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    tiles = await live.wall(console.hub, relay_stats=_relay_status(request))
    return render(
        request,
        "wall.html",
        {
            "active": "wall",
            "tiles": [(t, tile_json(t)) for t in tiles],
            "note": request.query.get("note"),
        },
    )


@page()
async def start(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    form = await request.post()
    try:
        minutes = int(str(form.get("minutes", "5")))
    except ValueError:
        minutes = 0
    try:
        await live.start_live(
            console.hub,
            console.publisher,
            site=str(form.get("site", "")),
            camera=str(form.get("camera", "")),
            case=str(form.get("case", "")),
            reason=str(form.get("reason", "")),
            minutes=minutes,
            actor=who.actor,
        )
    except LiveError as exc:
        return refusal(request, "Live view not started", str(exc), status=400)
    raise web.HTTPSeeOther("/wall")


@page()
async def stop(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    try:
        await live.stop_live(
            console.hub,
            console.publisher,
            request.match_info["id"],
            who.actor,
            may_stop_any=who.can("supervisor"),
        )
    except LiveError as exc:
        return refusal(request, "Live view not stopped", str(exc), status=400)
    raise web.HTTPSeeOther("/wall?note=stopping")


@page()
async def video(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    relay = console.relay(request.app)
    found = await live.tile(console.hub, request.match_info["id"])
    if relay is None or found is None or found.request.relay_session is None:
        raise web.HTTPNotFound(text="no live video for this request on this hub\n")
    record = SessionStore(console.hub.home).get(found.request.relay_session)
    if record is None:
        raise web.HTTPNotFound(text="the relay does not know this session\n")
    await audit.record(
        console.hub.db,
        who.actor,
        "view",
        case=found.request.case,
        target=f"{found.request.site_id}/{found.request.camera_id}",
        detail=f"live, request {found.request.id}",
    )
    return await relay.serve_viewer(request, record)


@page()
async def events(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    response = event_stream()
    await response.prepare(request)
    stats = _relay_status(request)

    async def snapshot() -> str:
        tiles = await live.wall(console.hub, relay_stats=stats)
        return json.dumps({"tiles": [tile_json(t) for t in tiles]})

    await stream_changes(
        request, response, console.hub.bus, ["live"], snapshot, stop=console.closing
    )
    return response


def routes(app: web.Application) -> None:
    app.router.add_get("/wall", wall_view)
    app.router.add_post("/wall", start)
    app.router.add_get("/wall/events", events)
    app.router.add_post("/wall/{id}/stop", stop)
    app.router.add_get("/wall/{id}/video.mp4", video)
