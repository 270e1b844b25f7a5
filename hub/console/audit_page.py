"""The audit log (supervisors and admins): who did what, when, for which case and why."""

from __future__ import annotations

from aiohttp import web

from hub import audit
from hub.audit import ACTIONS
from hub.console.app import console_of, render
from hub.console.auth import Who, page


@page("supervisor")
async def audit_view(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    analyst = request.query.get("analyst", "").strip() or None
    case = request.query.get("case", "").strip() or None
    rows = await audit.entries(console.hub.db, analyst=analyst, case=case, limit=500)
    return render(
        request,
        "audit.html",
        {
            "active": "audit",
            "rows": rows,
            "actions": ACTIONS,
            "analyst": analyst or "",
            "case": case or "",
        },
    )


@page("supervisor")
async def audit_export(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    analyst = request.query.get("analyst", "").strip() or None
    case = request.query.get("case", "").strip() or None
    rows = await audit.entries(console.hub.db, analyst=analyst, case=case, limit=None)
    await audit.record(
        console.hub.db,
        who.actor,
        "export",
        case=case,
        detail=f"audit log, {len(rows)} entries" + (f", analyst {analyst}" if analyst else ""),
    )
    return web.Response(
        text=audit.to_csv(rows),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
    )


def routes(app: web.Application) -> None:
    app.router.add_get("/audit", audit_view)
    app.router.add_get("/audit.csv", audit_export)
