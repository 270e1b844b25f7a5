"""The owner's pages: sign in and out, Overview, Requests (approve, deny), Pause and resume.

Handlers render what `OwnerActions` and the daemon's overview say, and hand every change to
`OwnerActions`; its refusals (`OwnerActionError`, `PolicyError`, `NotOwnerError`) are shown as
one plain sentence on the page, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import datetime
from typing import Any

from aiohttp import web

from agent.config import SharingMode
from agent.ledger import LedgerFormatError
from agent.link.owner_actions import OwnerActionError, OwnerActions
from agent.link.requests_db import RequestRecord
from agent.log import get_logger
from agent.owner_page import activity, auth, cameras
from agent.owner_page.activity import human_bytes
from agent.owner_page.app import BY, page_of, render
from agent.owner_page.auth import COOKIE, LOGIN_CSRF_COOKIE, SESSION, gate_of, signed_in
from agent.policy import NotOwnerError, PolicyError
from agent.units import ParseError, parse_duration
from agent.wire import EventState

log = get_logger(__name__)

NOT_ENROLLED = (
    "This site is not enrolled with an RTCC yet, so there are no requests to answer. "
    "Recording goes on."
)
NOT_OWNER = (
    "The agent may not record your choice: its owner folder is not writable by the service. "
    "Use `sudo rtcc-edge` on the machine for now."
)
STATE_WORDS = {
    "pending_approval": "waiting for you",
    "accepted": "accepted",
    "approved": "approved",
    "uploading": "sending",
    "completed": "sent",
    "rejected": "refused",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled by the RTCC",
}
RECORDER_WORDS = {
    "starting": "starting",
    "connecting": "connecting",
    "recording": "recording",
    "reconnecting": "reconnecting",
    "offline": "offline",
    "disk_full": "stopped: the disk is full",
    "store_error": "stopped: the disk refuses writes",
    "failed": "failing",
    "stopped": "stopped",
}


def routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", signed_in(logout))
    app.router.add_get("/", signed_in(overview))
    app.router.add_get("/requests", signed_in(requests_page))
    app.router.add_post("/requests/{jti}/approve", signed_in(approve))
    app.router.add_post("/requests/{jti}/deny", signed_in(deny))
    app.router.add_get("/pause", signed_in(pause_page))
    app.router.add_post("/pause", signed_in(pause))
    app.router.add_post("/resume", signed_in(resume))
    app.router.add_get("/activity", signed_in(activity_page))
    app.router.add_get("/cameras", signed_in(cameras_page))
    app.router.add_get("/cameras/{camera}/picture.jpg", signed_in(camera_picture))
    app.router.add_post("/cameras/{camera}/sharing", signed_in(camera_sharing))
    app.router.add_get("/activity.csv", signed_in(activity_csv))
    cameras.routes(app)  # location, rename, password, remove, add (agent.owner_page.cameras)


def _when(moment: datetime | str | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone().strftime("%a %d %b %Y, %H:%M")


def _base(request: web.Request, active: str, **context: Any) -> dict[str, Any]:
    session = request[SESSION]
    message = request.query.get("done", "")
    return {"active": active, "csrf": session.csrf, "done": message[:200], **context}


# -- signing in and out -----------------------------------------------------------------------


def _login_page(request: web.Request, error: str = "", *, status: int = 200) -> web.Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"error": error, "csrf": token, "done": "", "active": "login"},
        status=status,
    )
    gate_of(request).set_cookie(response, LOGIN_CSRF_COOKIE, token)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    gate = gate_of(request)
    if gate.sessions.get(request.cookies.get(COOKIE)) is not None:
        raise web.HTTPSeeOther("/")
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    presented = form.get("csrf")
    if not auth.login_csrf_ok(request, presented if isinstance(presented, str) else None):
        raise web.HTTPForbidden(text="Refused: open the sign-in page again and sign in from it.\n")
    typed = form.get("password")
    refusal = await auth.check_login(request, typed if isinstance(typed, str) else "")
    if refusal is not None:
        return _login_page(request, refusal, status=403)
    gate = gate_of(request)
    gate.sessions.end(request.cookies.get(COOKIE))
    token, _session = gate.sessions.new()
    response = web.HTTPSeeOther("/")
    gate.set_cookie(response, COOKIE, token)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    gate_of(request).sessions.end(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# -- overview ----------------------------------------------------------------------------------


def _attention(recorders: list[dict[str, Any]], link: dict[str, Any]) -> list[str]:
    """What needs the owner, in plain words."""
    notes: list[str] = []
    for row in recorders:
        state = row["state"]
        if state != "recording":
            words = RECORDER_WORDS.get(state, state)
            since = f" since {_when(row['since'])}" if row.get("since") else ""
            notes.append(f"Camera {row['camera']} is {words}{since}.")
        elif not row["meets_bar"]:
            notes.append(
                f"Camera {row['camera']} holds {row['footage_days']:.1f} days of footage; "
                f"the program asks for {row['bar_days']:.0f} days. It fills up as it records."
            )
    if link.get("state") == "connecting":
        notes.append("The agent cannot reach the RTCC right now; it keeps trying.")
    return notes


async def overview(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    daemon = await page.overview()
    link = daemon.get("link") or {}
    recorders = daemon.get("recorders") or []
    actions = page.actions()
    status = actions.status() if actions is not None else None
    cameras = [
        {
            "camera": row["camera"],
            "state": RECORDER_WORDS.get(row["state"], row["state"]),
            "recording": row["state"] == "recording",
            "days": row["footage_days"],
            "bar": row["bar_days"],
            "meets_bar": row["meets_bar"],
        }
        for row in recorders
    ]
    context = _base(
        request,
        "overview",
        enrolled=link.get("state", "not_enrolled") != "not_enrolled",
        connected=link.get("state") == "connected",
        paused=bool(status and status["paused"]),
        paused_until=_when(status["paused_until"]) if status else "",
        pending=status["pending"] if status else 0,
        cameras=cameras,
        attention=_attention(recorders, link),
    )
    return render(request, "overview.html", context)


# -- requests ----------------------------------------------------------------------------------


def _window(record: RequestRecord) -> str:
    try:
        claims = json.loads(record.claims_json or "{}")
    except ValueError:
        return ""
    start, end = claims.get("start"), claims.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return ""
    try:
        return f"{_when(start)} to {datetime.fromisoformat(end).astimezone():%H:%M}"
    except ValueError:
        return ""


def _row(record: RequestRecord, sent: dict[str, int] | None = None) -> dict[str, Any]:
    seconds = (record.updated - record.received).total_seconds()
    return {
        "jti": record.jti,
        "agency": record.issuer,
        "kind": record.cmd or "",
        "case": record.case or "",
        "requester": record.requester or "",
        "reason": record.reason or "",
        "camera": record.camera or "",
        "window": _window(record),
        "received": _when(record.received),
        "expires": _when(record.expires),
        "state": STATE_WORDS.get(record.state.value, record.state.value),
        "message": record.message or "",
        "bytes": human_bytes(sent[record.jti]) + " sent" if sent and record.jti in sent else "",
        "duration": f"{seconds:.0f} s" if record.final else "",
    }


async def requests_page(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    actions = page.actions()
    records = actions.requests(include_final=True, limit=100) if actions is not None else []
    sent = await asyncio.get_running_loop().run_in_executor(
        None, activity.bytes_by_request, page.state_dir
    )
    pending = [_row(r) for r in records if r.state is EventState.PENDING_APPROVAL]
    history = [_row(r, sent) for r in records if r.state is not EventState.PENDING_APPROVAL]
    context = _base(
        request,
        "requests",
        enrolled=actions is not None,
        not_enrolled=NOT_ENROLLED,
        pending=pending,
        history=history,
        error=request.query.get("error", "")[:300],
    )
    return render(request, "requests.html", context)


def _actions(request: web.Request) -> OwnerActions:
    actions = page_of(request).actions()
    if actions is None:
        raise web.HTTPConflict(text=NOT_ENROLLED + "\n")
    return actions


def _back(path: str, *, done: str = "", error: str = "") -> web.HTTPSeeOther:
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in (("done", done), ("error", error)) if v})
    return web.HTTPSeeOther(f"{path}?{query}" if query else path)


def _refusal_words(exc: Exception) -> str:
    if isinstance(exc, OwnerActionError):
        return exc.message
    if isinstance(exc, NotOwnerError):
        return NOT_OWNER
    return str(exc)


async def approve(request: web.Request) -> web.StreamResponse:
    jti = request.match_info["jti"]
    try:
        record = await _actions(request).approve(jti, by=BY)
    except (OwnerActionError, PolicyError, NotOwnerError) as exc:
        raise _back("/requests", error=_refusal_words(exc)) from None
    raise _back("/requests", done=f"Approved: the footage for case {record.case} is being sent.")


async def deny(request: web.Request) -> web.StreamResponse:
    jti = request.match_info["jti"]
    form = await request.post()
    reason = form.get("reason")
    reason = reason.strip()[:500] if isinstance(reason, str) else ""
    if not reason:
        raise _back("/requests", error="Say why you deny it: the RTCC is told your reason.")
    try:
        record = await _actions(request).deny(jti, reason=reason, by=BY)
    except (OwnerActionError, PolicyError, NotOwnerError) as exc:
        raise _back("/requests", error=_refusal_words(exc)) from None
    raise _back("/requests", done=f"Denied: the RTCC is told your reason for case {record.case}.")


# -- pause and resume --------------------------------------------------------------------------


async def pause_page(request: web.Request) -> web.StreamResponse:
    actions = page_of(request).actions()
    status = actions.status() if actions is not None else None
    context = _base(
        request,
        "pause",
        enrolled=actions is not None,
        not_enrolled=NOT_ENROLLED,
        paused=bool(status and status["paused"]),
        paused_until=_when(status["paused_until"]) if status else "",
        error=request.query.get("error", "")[:300],
    )
    return render(request, "pause.html", context)


async def pause(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    text = form.get("duration")
    text = text.strip() if isinstance(text, str) else ""
    try:
        duration = parse_duration(text) if text else None
    except ParseError as exc:
        raise _back("/pause", error=str(exc)) from None
    if duration is not None and duration.total_seconds() <= 0:
        raise _back("/pause", error="The pause must last some time, e.g. 2h.")
    try:
        paused = await _actions(request).pause(duration=duration, by=BY)
    except (OwnerActionError, PolicyError, NotOwnerError) as exc:
        raise _back("/pause", error=_refusal_words(exc)) from None
    until = f"until {_when(paused.until)}" if paused.until else "until you resume"
    raise _back("/pause", done=f"Sharing is paused {until}.")


async def resume(request: web.Request) -> web.StreamResponse:
    try:
        was_on = await _actions(request).resume(by=BY)
    except (OwnerActionError, PolicyError, NotOwnerError) as exc:
        raise _back("/pause", error=_refusal_words(exc)) from None
    raise _back("/pause", done="Sharing is on again." if was_on else "Sharing was not paused.")


# -- activity ----------------------------------------------------------------------------------


def _tally_rows(rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "received": tally.received,
            "automatic": tally.automatic,
            "approved": tally.approved,
            "denied": tally.denied,
            "expired": tally.expired,
            "rejected": tally.rejected,
            "live": f"{tally.live_minutes:.0f}",
            "sent": human_bytes(tally.bytes_uploaded),
        }
        for name, tally in sorted(rows.items())
    ]


async def activity_page(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    loop = asyncio.get_running_loop()
    check = await loop.run_in_executor(None, activity.check_ledger, page.state_dir)
    try:
        report = await loop.run_in_executor(None, activity.report, page.state_dir)
    except (LedgerFormatError, OSError):
        agencies: list[dict[str, Any]] = []
        cameras: list[dict[str, Any]] = []
        total: list[dict[str, Any]] = []
    else:
        agencies = _tally_rows(report.by_agency)
        cameras = _tally_rows(report.by_camera)
        total = _tally_rows({"All": report.total})
    context = _base(
        request,
        "activity",
        check=check,
        agencies=agencies,
        cameras=cameras,
        total=total,
    )
    return render(request, "activity.html", context)


async def activity_csv(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    try:
        report = await asyncio.get_running_loop().run_in_executor(
            None, activity.report, page.state_dir
        )
    except (LedgerFormatError, OSError) as exc:
        raise web.HTTPConflict(text=f"The record cannot be read: {exc}\n") from None
    return web.Response(
        text=activity.report_csv(report),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="sharing-report.csv"'},
    )


# -- cameras -----------------------------------------------------------------------------------

MODE_WORDS = {
    "private": "Private: nothing is shared",
    "registry": "Registry: the RTCC may ask, you approve each request",
    "integrated": "Integrated: footage is sent when the RTCC asks",
}


async def _camera_ids(request: web.Request) -> set[str]:
    page = page_of(request)
    actions = page.actions()
    known = {s.camera for s in actions.sharing()} if actions is not None else set()
    rows = (await page.overview()).get("recorders") or []
    return known | {row["camera"] for row in rows}


async def cameras_page(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    actions = page.actions()
    rows = {row["camera"]: row for row in (await page.overview()).get("recorders") or []}
    sharing = {s.camera: s for s in actions.sharing()} if actions is not None else {}
    cameras = []
    for camera in dict.fromkeys([*sharing, *rows]):
        row, share = rows.get(camera), sharing.get(camera)
        # Made here rather than on the image's own request (it is kept for the next one): a
        # camera with no recent footage gets a sentence, not a broken picture.
        picture = page.pictures is not None and await page.pictures.latest(camera) is not None
        cameras.append(
            {
                "id": camera,
                "name": share.name if share is not None else camera,
                "state": RECORDER_WORDS.get(row["state"], row["state"]) if row else "unknown",
                "mode": share.mode.value if share is not None else "",
                "live": bool(share and share.live),
                "picture": picture,
            }
        )
    context = _base(
        request,
        "cameras",
        enrolled=actions is not None,
        cameras=cameras,
        modes=MODE_WORDS,
        pictures=page.pictures is not None,
        error=request.query.get("error", "")[:300],
    )
    return render(request, "cameras.html", context)


async def camera_picture(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    camera = request.match_info["camera"]
    if page.pictures is None or camera not in await _camera_ids(request):
        raise web.HTTPNotFound(text="No such camera.\n")
    picture = await page.pictures.latest(camera)
    if picture is None:
        raise web.HTTPNotFound(text="No recent footage of this camera.\n")
    return web.Response(body=picture, content_type="image/jpeg")


async def camera_sharing(request: web.Request) -> web.StreamResponse:
    camera = request.match_info["camera"]
    form = await request.post()
    mode_text = form.get("mode")
    if not isinstance(mode_text, str) or mode_text not in MODE_WORDS:
        raise _back("/cameras", error="Choose private, registry or integrated.")
    live = form.get("live") == "on"
    try:
        after = await _actions(request).set_sharing(
            camera, SharingMode(mode_text), live=live, by=BY
        )
    except (OwnerActionError, PolicyError, NotOwnerError) as exc:
        raise _back("/cameras", error=_refusal_words(exc)) from None
    live_words = " with live view" if after.live else ""
    raise _back("/cameras", done=f"{after.name} is now {after.mode.value}{live_words}.")
