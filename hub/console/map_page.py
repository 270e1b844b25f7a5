"""The map registry: every camera the sites share, from their signed registries."""

from __future__ import annotations

from aiohttp import web

from hub import audit
from hub.console.app import console_of, render
from hub.console.auth import Who, page
from hub.registry import map_cameras


@page()
async def map_view(request: web.Request, who: Who) -> web.StreamResponse:
    settings = console_of(request).settings
    return render(
        request,
        "map.html",
        {
            "active": "map",
            "tiles_url": settings.tiles_url or "",
            "tiles_attribution": settings.tiles_attribution,
            "can_live": True,
        },
    )


@page()
async def cameras_json(request: web.Request, who: Who) -> web.StreamResponse:
    """Every shared camera, compact (5,000 cameras are ~1 MB): the map filters in the page."""
    console = console_of(request)
    cameras = await map_cameras(console.hub.db)
    await audit.record(
        console.hub.db,
        who.actor,
        "search",
        detail=f"map: {len(cameras)} camera(s) at {len({c.site for c in cameras})} site(s)",
    )
    data = [
        {
            "s": c.site,
            "sn": c.site_name,
            "c": c.camera,
            "n": c.name,
            "la": c.lat,
            "lo": c.lon,
            "h": c.heading,
            "f": c.fov,
            "m": c.sharing,
            "l": c.live,
            "v": c.verdict,
            "o": c.online,
            "so": c.site_online,
            "fh": round(c.footage_hours, 1),
        }
        for c in cameras
    ]
    return web.json_response(data, headers={"Cache-Control": "no-store"})


def routes(app: web.Application) -> None:
    app.router.add_get("/", map_view)
    app.router.add_get("/api/cameras", cameras_json)
