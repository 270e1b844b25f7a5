"""Fleet health: every site's state and what needs attention; sortable, CSV export."""

from __future__ import annotations

from aiohttp import web

from hub import audit
from hub.console.app import console_of, render
from hub.console.auth import Who, page
from hub.fleet import SORT_KEYS, fleet, fleet_csv, sort_rows

COLUMNS = (
    ("site", "Site"),
    ("state", "State"),
    ("last_seen", "Last seen"),
    ("cameras", "Cameras"),
    ("offline", "Offline"),
    ("drift", "Clock drift"),
    ("footage", "Least footage held"),
    ("firmware", "Vulnerable firmware"),
    ("problems", "Needs attention"),
)


@page()
async def fleet_view(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    key = request.query.get("sort", "problems")
    key = key if key in SORT_KEYS else "problems"
    descending = request.query.get("dir", "desc" if key == "problems" else "asc") == "desc"
    rows = await fleet(console.hub, retention_bar_h=console.settings.retention_bar_h)
    rows = sort_rows(rows, key, descending=descending)
    return render(
        request,
        "fleet.html",
        {
            "active": "fleet",
            "rows": rows,
            "columns": COLUMNS,
            "sort": key,
            "descending": descending,
            "bar_h": console.settings.retention_bar_h,
            "online": sum(1 for r in rows if r.online),
            "offline": sum(1 for r in rows if r.online is False),
            "hidden": sum(1 for r in rows if r.registry != "verified"),
        },
    )


@page()
async def fleet_export(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    rows = await fleet(console.hub, retention_bar_h=console.settings.retention_bar_h)
    await audit.record(
        console.hub.db, who.actor, "export", detail=f"fleet health, {len(rows)} sites"
    )
    return web.Response(
        text=fleet_csv(rows),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="fleet-health.csv"'},
    )


def routes(app: web.Application) -> None:
    app.router.add_get("/fleet", fleet_view)
    app.router.add_get("/fleet.csv", fleet_export)
