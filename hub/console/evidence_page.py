"""The evidence locker: per case, every clip and snapshot received, its verification (run on
arrival, re-runnable), the bundle download and the chain of custody."""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from hub import audit, evidence
from hub.console.app import console_of, refusal, render
from hub.console.auth import Who, page
from hub.console.incidents_page import REJECTIONS
from hub.db import Custody, RequestRow
from hub.evidence import EvidenceError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@page()
async def cases_view(request: web.Request, who: Who) -> web.StreamResponse:
    found = await evidence.cases(console_of(request).hub)
    return render(request, "evidence.html", {"active": "evidence", "cases": found})


@page()
async def case_view(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    case = request.match_info["case"]
    items = await evidence.case_items(console.hub, case)
    delivered = {item.request.id for item in items}
    async with console.hub.db.session() as session:
        waiting = (
            (
                await session.execute(
                    select(RequestRow)
                    .where(RequestRow.case == case, RequestRow.cmd.in_(("clip", "snapshot")))
                    .order_by(RequestRow.issued)
                )
            )
            .scalars()
            .all()
        )
    others = [r for r in waiting if r.id not in delivered]
    if not items and not others:
        raise web.HTTPNotFound(text="there is nothing for this case\n")
    await audit.record(console.hub.db, who.actor, "view", case=case, target=f"case {case}")
    playing = request.query.get("play")
    return render(
        request,
        "case.html",
        {
            "active": "evidence",
            "case": case,
            "items": items,
            "others": others,
            "rejections": REJECTIONS,
            "playing": int(playing) if playing and playing.isdigit() else None,
        },
    )


def _evidence_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None


async def _item(request: web.Request) -> evidence.EvidenceItem:
    try:
        return await evidence.item(console_of(request).hub, _evidence_id(request))
    except EvidenceError:
        raise web.HTTPNotFound(text="there is no such evidence\n") from None


def _back(found: evidence.EvidenceItem, **query: str) -> str:
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    base = f"/evidence/case/{found.evidence.case}"
    return (
        f"{base}?{suffix}#item-{found.evidence.id}"
        if suffix
        else f"{base}#item-{found.evidence.id}"
    )


@page()
async def verify_again(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    found = await _item(request)
    result = await evidence.verify(console.hub, found.evidence.id, actor=who.analyst.username)
    await audit.record(
        console.hub.db,
        who.actor,
        "verify",
        case=found.evidence.case,
        target=f"evidence {found.evidence.id}",
        detail=evidence.summary(result),
    )
    raise web.HTTPSeeOther(_back(found))


@page()
async def view_item(request: web.Request, who: Who) -> web.StreamResponse:
    """Open the clip in the page: recorded (who watched what) before it plays."""
    console = console_of(request)
    found = await _item(request)
    async with console.hub.db.session() as session:
        session.add(
            Custody(
                evidence_id=found.evidence.id,
                actor=who.analyst.username,
                action="viewed",
                detail="played in the console",
            )
        )
    await audit.record(
        console.hub.db,
        who.actor,
        "view",
        case=found.evidence.case,
        target=f"evidence {found.evidence.id}",
    )
    raise web.HTTPSeeOther(_back(found, play=str(found.evidence.id)))


@page()
async def media(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    found = await _item(request)
    path = evidence.evidence_path(console.hub, found.evidence)
    if path is None or not await asyncio.to_thread(path.is_file):
        raise web.HTTPNotFound(text="the file is not on this hub\n")
    kind = "video/mp4" if found.evidence.kind == "clip" else "image/jpeg"
    return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": "no-store"})


@page()
async def bundle(request: web.Request, who: Who) -> web.StreamResponse:
    console = console_of(request)
    found = await _item(request)
    name = _SAFE.sub("_", f"case-{found.evidence.case}-{found.evidence.camera_id}-"
                          f"{found.evidence.id}.zip")  # fmt: skip
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="rtcc-bundle-"))
    target = folder / name
    try:
        await evidence.bundle(
            console.hub, found.evidence.id, analyst=who.analyst.username, target=target
        )
    except EvidenceError as exc:
        await asyncio.to_thread(_remove, folder)
        return refusal(request, "Cannot download", str(exc), status=404)
    await audit.record(
        console.hub.db,
        who.actor,
        "download",
        case=found.evidence.case,
        target=f"evidence {found.evidence.id}",
        detail=name,
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        }
    )
    try:
        await response.prepare(request)
        with target.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, 256 * 1024):
                await response.write(chunk)
        await response.write_eof()
    finally:
        await asyncio.to_thread(_remove, folder)
    return response


def _remove(folder: Path) -> None:
    for child in folder.iterdir():
        with contextlib.suppress(OSError):
            child.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def routes(app: web.Application) -> None:
    app.router.add_get("/evidence", cases_view)
    app.router.add_get("/evidence/case/{case}", case_view)
    app.router.add_post(r"/evidence/{id:\d+}/verify", verify_again)
    app.router.add_post(r"/evidence/{id:\d+}/view", view_item)
    app.router.add_get(r"/evidence/{id:\d+}/media", media)
    app.router.add_post(r"/evidence/{id:\d+}/bundle", bundle)
