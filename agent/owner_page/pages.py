"""The owner's pages: sign in and out, Overview, Requests (approve, deny), Pause and resume,
Cameras, Activity.

Handlers render what the daemon says over its control socket and hand every change to the
owner's library (`AsyncOwnerClient`, the CLI's own steps). Whatever goes wrong is one plain
sentence on the page, never a traceback: the recording service not running, the page's user
not allowed to act as the owner, the site not enrolled, or the daemon's refusal.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import datetime
from typing import Any

from aiohttp import web

from agent.config import SharingMode
from agent.control.client import ControlError, DaemonNotRunning
from agent.control.owner_client import AsyncOwnerClient
from agent.log import get_logger
from agent.owner_page import activity, auth, preview
from agent.owner_page import cameras as camera_forms
from agent.owner_page.activity import human_bytes
from agent.owner_page.app import PageContext, back_to, csrf_of, page_of, render
from agent.owner_page.auth import COOKIE, LOGIN_CSRF_COOKIE, SESSION, gate_of, signed_in
from agent.owner_page.words import RECORDER_WORDS, Clock, attention, span
from agent.policy import NotOwnerError, OwnerStateError, PolicyError
from agent.units import ParseError, parse_duration
from agent.wire import FINAL_STATES, EventState

log = get_logger(__name__)

NOT_ENROLLED = (
    "This site is not enrolled with an RTCC yet, so there are no requests to answer. "
    "Recording goes on."
)
NOT_RUNNING = (
    "The recording service is not running, so this page can neither show nor change anything "
    "right now. Start it on the machine with `sudo systemctl start rtcc-edge`, then reload."
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
# Outcomes the owner should read as theirs rather than as the agent's refusal.
CODE_WORDS = {
    "denied_by_owner": "denied by you",
    "paused": "refused while sharing was paused",
    "approval_expired": "expired: nobody answered in time",
}


def routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", signed_in(logout))
    app.router.add_get("/", signed_in(overview))
    app.router.add_get("/requests", signed_in(requests_page))
    app.router.add_get("/requests/{jti}", signed_in(one_request))
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
    preview.routes(app)
    camera_forms.routes(app)  # location, rename, password, remove, add (agent.owner_page.cameras)


# -- what went wrong, in plain words ---------------------------------------------------------

# Refusals the owner's library raises: the daemon's (ControlError), the owner directory's.
Refusal = (ControlError, NotOwnerError, PolicyError, OwnerStateError, ValueError)


def not_owner_words(page: PageContext) -> str:
    # Short enough to travel back in the page's address after a refused change.
    return (
        f"This page runs as the user {page.user}, which may not act as the owner. Run the page "
        f"as its own user in the {page.owner_group} group (the installer's rtcc-edge-page), "
        "or use `sudo rtcc-edge` on the machine."
    )


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return "That did not work."
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def refusal_words(page: PageContext, exc: Exception) -> str:
    """One sentence for the owner about what the owner's library refused."""
    if isinstance(exc, DaemonNotRunning):
        return NOT_RUNNING
    if isinstance(exc, NotOwnerError):
        return not_owner_words(page)
    if isinstance(exc, ControlError):
        if exc.code == "not_owner":
            return not_owner_words(page)
        if exc.code == "not_enrolled":
            return NOT_ENROLLED
        if exc.code == "permission_denied":
            return (
                f"This page may not reach the recording service: its user {page.user} must be "
                "a member of the rtcc-edge group. Add it, then restart the page."
            )
        return _sentence(exc.message)
    return _sentence(str(exc))


@web.middleware
async def daemon_trouble(request: web.Request, handler: Any) -> web.StreamResponse:
    """A page that could not be shown because of the daemon: a sentence, not an error page."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except (DaemonNotRunning, ControlError) as exc:
        page = page_of(request)
        log.warning("owner_page_daemon_trouble", path=request.path, error=str(exc))
        if isinstance(exc, DaemonNotRunning):
            status = 503
        else:
            status = 403 if exc.code in ("not_owner", "permission_denied") else 502
        return _trouble(request, refusal_words(page, exc), status=status)
    except web.HTTPException:
        raise
    except Exception:
        # A sentence, not a bare "500": what broke is in the page's log.
        log.exception("owner_page_failed", path=request.path)
        words = (
            "Something went wrong on this page. Try again; if it keeps happening, the page's log "
            "says what (`journalctl -u rtcc-edge-page`)."
        )
        return _trouble(request, words, status=500)


def _trouble(request: web.Request, words: str, *, status: int) -> web.Response:
    context = {"active": "", "csrf": csrf_of(request), "done": "", "trouble": words}
    return render(request, "trouble.html", context, status=status)


def _owner(request: web.Request) -> AsyncOwnerClient:
    return page_of(request).owner


def _base(request: web.Request, active: str, **context: Any) -> dict[str, Any]:
    session = request[SESSION]
    message = request.query.get("done", "")
    return {"active": active, "csrf": session.csrf, "done": message[:200], **context}


# -- signing in and out -----------------------------------------------------------------------


def _login_page(request: web.Request, error: str = "", *, status: int = 200) -> web.Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    after = auth.local_path(request.query.get("next"))
    response = render(
        request,
        "login.html",
        {"error": error, "csrf": token, "done": "", "active": "login", "next": after},
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
    after = form.get("next")
    after = auth.local_path(after if isinstance(after, str) else None)
    if refusal is not None:
        return _login_page(request, refusal, status=403)
    gate = gate_of(request)
    gate.sessions.end(request.cookies.get(COOKIE))
    token, _session = gate.sessions.new()
    response = web.HTTPSeeOther(after)
    gate.set_cookie(response, COOKIE, token)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    gate_of(request).sessions.end(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# -- overview ----------------------------------------------------------------------------------


async def overview(request: web.Request) -> web.StreamResponse:
    clock = page_of(request).clock
    status = await _owner(request).status()
    link = status.get("link") or {}
    recorders = status.get("recorders") or []
    enrolled = bool(status.get("enrolled"))
    names = {row["camera"]: row.get("name") for row in status.get("cameras") or []}
    cameras = [
        {
            "camera": names.get(row["camera"]) or row["camera"],
            "state": RECORDER_WORDS.get(row["state"], row["state"]),
            "recording": row["state"] == "recording",
            "held": span(row["footage_days"]),
            "bar": row["bar_days"],
            "meets_bar": row["meets_bar"],
        }
        for row in recorders
    ]
    context = _base(
        request,
        "overview",
        enrolled=enrolled,
        connected=link.get("state") == "connected",
        paused=bool(status.get("paused")),
        paused_until=clock.when(status.get("paused_until")),
        pending=status.get("pending", 0),
        cameras=cameras,
        attention=attention(status, clock),
    )
    return render(request, "overview.html", context)


# -- requests ----------------------------------------------------------------------------------


def _window(record: dict[str, Any], clock: Clock) -> str:
    window = record.get("window")
    return clock.window(window[0], window[1]) if window else ""


def _row(record: dict[str, Any], clock: Clock, names: dict[str, str]) -> dict[str, Any]:
    state = record["state"]
    final = state in {s.value for s in FINAL_STATES}
    seconds = 0.0
    if final and record.get("updated"):
        ended = datetime.fromisoformat(record["updated"])
        seconds = (ended - datetime.fromisoformat(record["received"])).total_seconds()
    sent = record.get("bytes_sent")
    return {
        "jti": record["id"],
        "agency": record["issuer"],
        "kind": record.get("cmd") or "",
        "case": record.get("case") or "",
        "requester": record.get("requester") or "",
        "reason": record.get("reason") or "",
        "camera": record.get("camera") or "",
        "camera_name": names.get(record.get("camera") or "", record.get("camera") or ""),
        "window": _window(record, clock),
        "received": clock.when(record["received"]),
        "expires": clock.when(record.get("expires")),
        "state": CODE_WORDS.get(record.get("code") or "") or STATE_WORDS.get(state, state),
        "message": record.get("message") or "",
        "bytes": human_bytes(sent) + " sent" if sent else "",
        "duration": f"{seconds:.0f} s" if final else "",
    }


async def requests_page(request: web.Request) -> web.StreamResponse:
    enrolled = True
    try:
        records = await _owner(request).requests(include_final=True, limit=100)
    except ControlError as exc:
        if exc.code != "not_enrolled":
            raise
        enrolled, records = False, []
    waiting = EventState.PENDING_APPROVAL.value
    clock = page_of(request).clock
    names = await camera_forms.configured_names(request.app) or {}
    pending = [_row(r, clock, names) for r in records if r["state"] == waiting]
    await preview.describe(request, pending)
    context = _base(
        request,
        "requests",
        enrolled=enrolled,
        not_enrolled=NOT_ENROLLED,
        pending=pending,
        history=[_row(r, clock, names) for r in records if r["state"] != waiting],
        error=request.query.get("error", "")[:300],
    )
    return render(request, "requests.html", context)


async def one_request(request: web.Request) -> web.StreamResponse:
    """Where a notification's link points: the request's card on Requests."""
    jti = request.match_info["jti"]
    if not REQUEST_ID.match(jti):
        raise web.HTTPNotFound(text="No such request.\n")
    raise web.HTTPSeeOther(f"/requests#request-{jti}")


REQUEST_ID = re.compile(r"^[0-9A-Za-z-]{4,64}$")


def _refused(request: web.Request, path: str, exc: Exception) -> web.HTTPSeeOther:
    log.warning("owner_page_refused", path=request.path, error=str(exc))
    return back_to(path, error=refusal_words(page_of(request), exc))


async def approve(request: web.Request) -> web.StreamResponse:
    jti = request.match_info["jti"]
    try:
        record = await _owner(request).approve(jti)
    except (DaemonNotRunning, *Refusal) as exc:
        raise _refused(request, "/requests", exc) from None
    raise back_to(
        "/requests", done=f"Approved: the footage for case {record.get('case')} is being sent."
    )


async def deny(request: web.Request) -> web.StreamResponse:
    jti = request.match_info["jti"]
    form = await request.post()
    reason = form.get("reason")
    reason = reason.strip()[:500] if isinstance(reason, str) else ""
    if not reason:
        raise back_to("/requests", error="Say why you deny it: the RTCC is told your reason.")
    try:
        record = await _owner(request).deny(jti, reason=reason)
    except (DaemonNotRunning, *Refusal) as exc:
        raise _refused(request, "/requests", exc) from None
    raise back_to(
        "/requests", done=f"Denied: the RTCC is told your reason for case {record.get('case')}."
    )


# -- pause and resume --------------------------------------------------------------------------


async def pause_page(request: web.Request) -> web.StreamResponse:
    status = await _owner(request).status()
    enrolled = bool(status.get("enrolled"))
    context = _base(
        request,
        "pause",
        enrolled=enrolled,
        not_enrolled=NOT_ENROLLED,
        paused=bool(status.get("paused")),
        paused_until=page_of(request).clock.when(status.get("paused_until")),
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
        raise back_to("/pause", error=str(exc)) from None
    if duration is not None and duration.total_seconds() <= 0:
        raise back_to("/pause", error="The pause must last some time, e.g. 2h.")
    seconds = None if duration is None else duration.total_seconds()
    try:
        paused = await _owner(request).pause(seconds=seconds)
    except (DaemonNotRunning, *Refusal) as exc:
        raise _refused(request, "/pause", exc) from None
    clock = page_of(request).clock
    until = f"until {clock.when(paused['until'])}" if paused.get("until") else "until you resume"
    raise back_to("/pause", done=f"Sharing is paused {until}.")


async def resume(request: web.Request) -> web.StreamResponse:
    try:
        result = await _owner(request).resume()
    except (DaemonNotRunning, *Refusal) as exc:
        raise _refused(request, "/pause", exc) from None
    words = "Sharing is on again." if result.get("was_paused") else "Sharing was not paused."
    raise back_to("/pause", done=words)


# -- activity ----------------------------------------------------------------------------------


def _tally_rows(rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "received": tally["received"],
            "automatic": tally["automatic"],
            "approved": tally["approved"],
            "denied": tally["denied"],
            "expired": tally["expired"],
            "rejected": tally["rejected"],
            "live": f"{tally['live_minutes']:.0f}",
            "sent": human_bytes(tally["bytes_uploaded"]),
        }
        for name, tally in sorted(rows.items())
    ]


async def activity_page(request: web.Request) -> web.StreamResponse:
    found = await _owner(request).activity()
    report = found.get("report")
    context = _base(
        request,
        "activity",
        check=found["check"],
        agencies=_tally_rows(report["by_agency"]) if report else [],
        cameras=_tally_rows(report["by_camera"]) if report else [],
        total=_tally_rows({"All": report["total"]}) if report else [],
    )
    return render(request, "activity.html", context)


async def activity_csv(request: web.Request) -> web.StreamResponse:
    found = await _owner(request).activity()
    report = found.get("report")
    if not report:
        problem = found.get("report_error") or "The record cannot be read."
        raise web.HTTPConflict(text=f"{problem}\n")
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


async def cameras_page(request: web.Request) -> web.StreamResponse:
    owner = _owner(request)
    status = await owner.status()
    rows = {row["camera"]: row for row in status.get("recorders") or []}
    sharing = {row["camera"]: row for row in status.get("cameras") or []}
    checks: dict[str, Any] = status.get("checks") or {}
    error = request.query.get("error", "")[:300]
    configured = await camera_forms.configured_names(request.app)
    refused = False  # this page's user may not see pictures: the banner says why, once
    cameras = []
    for camera in dict.fromkeys([*sharing, *rows]):
        row, share = rows.get(camera), sharing.get(camera)
        # Asked here rather than on the image's own request (the daemon keeps it for the next
        # one): a camera with no recent footage gets a sentence, not a broken picture.
        try:
            picture = await owner.picture(camera) is not None
        except ControlError as exc:
            if exc.code not in ("not_owner", "not_found"):
                raise
            picture = False
            if exc.code == "not_owner":
                refused = True
                error = error or refusal_words(page_of(request), exc)
        cameras.append(
            {
                "id": camera,
                "name": _camera_name(camera, share, configured),
                # Removed from the file since the agent started: it leaves this list (and the
                # RTCC's map) when the agent restarts.
                "removed": configured is not None and camera not in configured,
                "state": RECORDER_WORDS.get(row["state"], row["state"]) if row else "unknown",
                "recording": bool(row and row["state"] == "recording"),
                "mode": share["mode"] if share is not None else "",
                "live": bool(share and share["live"]),
                "picture": picture,
                **_verdict(checks.get(camera), camera, page_of(request).clock),
            }
        )
    context = _base(
        request,
        "cameras",
        enrolled=bool(status.get("enrolled")),
        cameras=cameras,
        pictures_refused=refused,
        modes=MODE_WORDS,
        error=error,
    )
    return render(request, "cameras.html", context)


def _camera_name(
    camera: str, share: dict[str, Any] | None, configured: dict[str, str] | None
) -> str:
    if configured is not None and camera in configured:
        return configured[camera]
    return str(share["name"]) if share is not None else camera


VERDICT_WORDS = {
    "pass": "works with the program",
    "warn": "works, with something to improve",
    "fail": "does not work with the program as it is",
}


def _verdict(check: dict[str, Any] | None, camera: str, clock: Clock) -> dict[str, Any]:
    """The camera's last compatibility check as the owner reads it: the verdict in words and,
    for anything short of a pass, what to do (the check's own advice)."""
    verdict = (check or {}).get("verdict") or "unknown"
    words = VERDICT_WORDS.get(verdict)
    command = ""
    if words is None:
        words, command = "not checked yet.", f"sudo rtcc-edge check {camera}"
    elif check and check.get("checked"):
        words += f" (checked {clock.when(check['checked'])})."
    else:
        words += "."
    advice = [str(line) for line in (check or {}).get("advice") or []][:8]
    return {"verdict": verdict, "verdict_words": words, "check_command": command, "advice": advice}


async def camera_picture(request: web.Request) -> web.StreamResponse:
    camera = request.match_info["camera"]
    try:
        encoded = await _owner(request).picture(camera)
    except ControlError as exc:
        if exc.code not in ("not_found", "bad_arguments"):
            raise
        raise web.HTTPNotFound(text="No such camera.\n") from None
    if encoded is None:
        raise web.HTTPNotFound(text="No recent footage of this camera.\n")
    try:
        picture = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise web.HTTPBadGateway(text="The picture could not be read.\n") from None
    return web.Response(body=picture, content_type="image/jpeg")


async def camera_sharing(request: web.Request) -> web.StreamResponse:
    camera = request.match_info["camera"]
    form = await request.post()
    mode_text = form.get("mode")
    if not isinstance(mode_text, str) or mode_text not in MODE_WORDS:
        raise back_to("/cameras", error="Choose private, registry or integrated.")
    live = form.get("live") == "on"
    try:
        after = await _owner(request).set_sharing(camera, SharingMode(mode_text), live=live)
    except (DaemonNotRunning, *Refusal) as exc:
        raise _refused(request, "/cameras", exc) from None
    live_words = " with live view" if after.get("live") else ""
    raise back_to("/cameras", done=f"{after['name']} is now {after['mode']}{live_words}.")
