"""The Cameras page's changes to the cameras themselves: location and field of view (on a small
map), rename, change password, remove, and add a camera (from the last discovery or an RTSP
URL).

One code path with the CLI: every change is the library behind `rtcc-edge cameras …`
(`agent.cameras.edit`, `agent.cameras.plan_onvif`/`plan_rtsp`/`write_cameras`), which edits
the configuration file (writable by the owner group, so by the page's user) and refuses, with
nothing written, what would not load. Then the daemon is told over the control socket:
`reload` (the SIGHUP path; the page's user may not signal the daemon) applies the cameras'
recording at once, and the page says exactly what that did and what waits for a restart
(what the RTCC is shown). Camera passwords are encrypted by the daemon (`seal`): the key is
readable by the service user only. A new password is tried on the camera first; one the camera
refuses is never stored.

The map is Leaflet from the installed `xstatic-leaflet` package, tiles from
`[owner_page] tiles` (none by default: a plain background); the page's one script gets its data
from `data-` attributes (no inline script: `script-src 'self'`), and every field works without
the map and without JavaScript.

    configure(app, config_path=path, control_socket=socket, tiles=None)   # the page's setup
    routes(app)                                                             # from pages.routes
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import xstatic.pkg.leaflet
from aiohttp import web

from agent.cameras import (
    AddError,
    Login,
    Plan,
    Sharing,
    parse_channels,
    plan_onvif,
    plan_rtsp,
    split_rtsp_url,
    write_cameras,
)
from agent.cameras.edit import (
    CameraChange,
    EditError,
    camera_with_username,
    change_camera,
    check_password,
    remove_camera,
    rename_camera,
    set_password,
)
from agent.compat.discovery_cache import load_cache
from agent.compat.profiles import ProfileError, ProfileSet, load_profiles
from agent.compat.report import DiscoveredCamera
from agent.config import ID_PATTERN, AgentConfig, CameraConfig, ConfigError, load_config
from agent.control.async_client import AsyncControlClient
from agent.control.client import ControlError, DaemonNotRunning
from agent.log import get_logger
from agent.owner_page.app import back_to, render
from agent.owner_page.auth import SESSION, signed_in
from agent.secretbox import SecretError

log = get_logger(__name__)

CALL_TIMEOUT = 5.0  # per camera call, as the CLI's default
RELOAD_TIMEOUT = 90.0


@dataclass(frozen=True)
class CameraEditing:
    config_path: Path  # the owner's configuration, which the page edits
    control: AsyncControlClient  # the daemon: `reload` and `seal`
    tiles: str | None = None  # map tiles URL template; None: no tiles


EDITING = web.AppKey("rtcc_owner_camera_editing", CameraEditing)


def configure(
    app: web.Application, *, config_path: Path, control_socket: Path, tiles: str | None = None
) -> None:
    """Let the page change cameras: without this, the pages below say it is not set up."""
    # A reload waits for the recorders it stops (each closes its segment first): not 15 s.
    control = AsyncControlClient(control_socket, timeout=RELOAD_TIMEOUT)
    app[EDITING] = CameraEditing(config_path, control, tiles)


def routes(app: web.Application) -> None:
    # Its own prefix: under /static the page's own static route would answer (404) first.
    app.router.add_static("/leaflet", xstatic.pkg.leaflet.BASE_DIR)
    app.router.add_get("/cameras/add", signed_in(add_page))
    app.router.add_post("/cameras/add", signed_in(add))
    app.router.add_get("/cameras/{camera}/settings", signed_in(settings_page))
    app.router.add_post("/cameras/{camera}/location", signed_in(set_location))
    app.router.add_post("/cameras/{camera}/rename", signed_in(rename))
    app.router.add_post("/cameras/{camera}/password", signed_in(change_password))
    app.router.add_get("/cameras/{camera}/remove", signed_in(remove_page))
    app.router.add_post("/cameras/{camera}/remove", signed_in(remove))


# -- what every page here shares ---------------------------------------------------------------


def tiles_origin(tiles: str | None) -> str:
    """The origin map tiles come from, as a CSP source (`https://*.tile.example` for `{s}`)."""
    if tiles is None:
        return ""
    parts = urlsplit(tiles.replace("{s}", "a"))
    host = parts.netloc.replace("a.", "*.", 1) if "{s}" in tiles else parts.netloc
    return f"{parts.scheme}://{host}"


def attribution(tiles: str | None) -> str:
    """Whom the map's pictures are from, as the map shows it."""
    host = urlsplit((tiles or "").replace("{s}", "a")).hostname or ""
    if host == "openstreetmap.org" or host.endswith(".openstreetmap.org"):
        return "© OpenStreetMap contributors"
    return f"Map: {host}" if host else ""


def _policy(tiles: str | None) -> str:
    """The page's own policy plus this server's scripts, and the tiles' origin for images."""
    images = " ".join(x for x in ("'self'", "data:", tiles_origin(tiles)) if x)
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def _editing(request: web.Request) -> CameraEditing:
    editing = request.app.get(EDITING)
    if editing is None:
        raise web.HTTPConflict(
            text="Changing cameras from this page is not set up. "
            "Use sudo rtcc-edge cameras on the machine.\n"
        )
    return editing


def _show(request: web.Request, template: str, **context: Any) -> web.Response:
    editing = request.app.get(EDITING)
    context = {
        "active": "cameras",
        "csrf": request[SESSION].csrf,
        "done": request.query.get("done", "")[:400],
        "error": request.query.get("error", "")[:400],
        **context,
    }
    response = render(request, template, context)
    # Set here, so the app's stricter default (no scripts at all) is kept for the other pages.
    response.headers["Content-Security-Policy"] = _policy(editing.tiles if editing else None)
    return response


async def _config(editing: CameraEditing) -> AgentConfig:
    try:
        return await asyncio.to_thread(load_config, editing.config_path)
    except ConfigError as exc:
        problems = "; ".join(str(p) for p in exc.problems[:3])
        raise web.HTTPConflict(
            text=f"The settings file {editing.config_path} cannot be read: {problems}\n"
        ) from None


async def configured_names(app: web.Application) -> dict[str, str] | None:
    """The cameras in the configuration file now (id → name), or None when this page does
    not edit cameras or the file cannot be read: the Cameras list names them as the owner
    named them, and knows which ones were removed since the agent last started."""
    editing = app.get(EDITING)
    if editing is None:
        return None
    try:
        config = await asyncio.to_thread(load_config, editing.config_path)
    except (ConfigError, OSError):
        return None
    return {camera.id: camera.name for camera in config.cameras}


def _camera(config: AgentConfig, camera_id: str) -> CameraConfig:
    camera = config.camera(camera_id)
    if camera is None:
        raise web.HTTPNotFound(text="No such camera. Go back to Cameras.\n")
    return camera


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {key: value.strip() for key, value in form.items() if isinstance(value, str)}


def _config_words(exc: ConfigError) -> str:
    problems = "; ".join(str(p) for p in exc.problems[:3])
    return f"Nothing was changed: the settings would not be valid ({problems})."


async def _edit(back: str, edit: Callable[..., None], *args: Any) -> None:
    """One change to the configuration file through `agent.cameras.edit`, off the loop; its
    refusal sends the owner back to `back` with a sentence (nothing was written)."""
    try:
        await asyncio.to_thread(edit, *args)
    except EditError as exc:
        raise back_to(back, error=f"Nothing was changed: {exc}.") from None
    except ConfigError as exc:
        raise back_to(back, error=_config_words(exc)) from None
    except OSError as exc:
        raise back_to(back, error=f"The settings file cannot be written: {exc}.") from None


# -- telling the daemon --------------------------------------------------------------------------


async def _apply(editing: CameraEditing) -> dict[str, Any] | str:
    """The daemon's `reload` answer, or why it could not be told, in words."""
    try:
        answer: dict[str, Any] = await editing.control.call("reload")
    except DaemonNotRunning:
        return "The agent is not running: it uses the new settings when it starts."
    except ControlError as exc:
        return (
            f"The agent could not be told ({exc.message}); it uses the new settings once "
            "reloaded (on the machine: sudo systemctl reload rtcc-edge)."
        )
    return answer


def _applied(answer: dict[str, Any] | str, camera: str, change: str) -> str:
    """What the daemon did with `change` to `camera`, exactly, in words."""
    if isinstance(answer, str):
        return answer
    if not answer.get("applied"):
        return f"The agent kept its current settings: {answer.get('reason', 'no reason given')}."
    later = "after the agent's next restart"
    if change == "remove":
        if camera in answer.get("removed", []):
            return (
                "It is no longer recorded; its footage stays until it ages out. The RTCC stops "
                f"listing it {later}."
            )
        return "The agent was not recording it."
    if change == "add":
        if camera in answer.get("added", []):
            return (
                "Recording starts now. It shares nothing (private); the RTCC can be offered "
                f"it {later}."
            )
        return "The agent did not start recording it: look at Overview."
    if change == "password":
        if camera in answer.get("restarted", []):
            return "Recording restarted with the new password."
        return "The agent records with the new password from its next connection."
    what = {"rename": "the new name", "location": "the new location and field of view"}[change]
    return f"Recording goes on without a break; the RTCC sees {what} {later}."


# -- the camera's settings: location, name, password, remove -------------------------------------


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.10g}"  # all a tap's digits: saved again as is


async def settings_page(request: web.Request) -> web.StreamResponse:
    editing = _editing(request)
    camera = _camera(await _config(editing), request.match_info["camera"])
    where = camera.location
    return _show(
        request,
        "camera_settings.html",
        camera={
            "id": camera.id,
            "name": camera.name,
            "lat": _number(where.lat if where else None),
            "lon": _number(where.lon if where else None),
            "heading": _number(where.heading if where else None),
            "fov": _number(where.fov if where else None),
            "has_password": camera.username is not None,
            "username": camera.username or "",
        },
        tiles=editing.tiles or "",
        attribution=attribution(editing.tiles),
    )


def _float(form: dict[str, str], key: str, words: str, low: float, high: float) -> float | None:
    """The field as a number within [low, high], None when empty; ValueError in words."""
    text = form.get(key, "").replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"The {words} must be a number, not {text[:30]!r}.") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"The {words} must be between {low:g} and {high:g}.")
    return value


async def set_location(request: web.Request) -> web.StreamResponse:
    editing = _editing(request)
    camera_id = request.match_info["camera"]
    here = f"/cameras/{camera_id}/settings"
    form = await _form(request)
    try:
        lat = _float(form, "lat", "latitude", -90, 90)
        lon = _float(form, "lon", "longitude", -180, 180)
        heading = _float(form, "heading", "direction", 0, 360)
        fov = _float(form, "fov", "field of view", 1, 360)
    except ValueError as exc:
        raise back_to(here, error=str(exc)) from None
    if (lat is None) != (lon is None):
        raise back_to(here, error="Give both the latitude and the longitude (or tap the map).")
    change = CameraChange(
        location=(lat, lon) if lat is not None and lon is not None else None,
        heading=heading % 360 if heading is not None else None,
        fov=fov,
    )
    if change.empty():
        raise back_to(here, error="Tap the map or fill in the latitude and longitude first.")
    await _edit(here, change_camera, editing.config_path, camera_id, change)
    log.info("owner_page_camera_located", camera=camera_id)
    words = _applied(await _apply(editing), camera_id, "location")
    raise back_to(here, done=f"Location saved. {words}")


async def rename(request: web.Request) -> web.StreamResponse:
    editing = _editing(request)
    camera_id = request.match_info["camera"]
    here = f"/cameras/{camera_id}/settings"
    name = (await _form(request)).get("name", "")
    await _edit(here, rename_camera, editing.config_path, camera_id, name)
    log.info("owner_page_camera_renamed", camera=camera_id)
    words = _applied(await _apply(editing), camera_id, "rename")
    raise back_to(here, done=f"It is now called “{name}”. {words}")


async def _seal(editing: CameraEditing, password: str) -> str:
    """The password encrypted by the daemon, which alone reads the key; EditError if it cannot
    be (nothing is stored then)."""
    try:
        answer = await editing.control.call("seal", text=password)
    except DaemonNotRunning:
        raise EditError(
            "the agent is not running, and it holds the key camera passwords are stored with; "
            "start it (on the machine: sudo systemctl start rtcc-edge) and try again"
        ) from None
    except ControlError as exc:
        raise EditError(f"the agent could not store the password: {exc.message}") from None
    sealed = answer.get("sealed") if isinstance(answer, dict) else None
    if not isinstance(sealed, str):
        raise EditError("the agent's answer was not understood")
    return sealed


async def change_password(request: web.Request) -> web.StreamResponse:
    editing = _editing(request)
    camera_id = request.match_info["camera"]
    here = f"/cameras/{camera_id}/settings"
    form = await request.post()
    typed = form.get("password")
    password = typed if isinstance(typed, str) else ""  # as typed: spaces may be part of it
    if not password:
        raise back_to(here, error="Type the camera's new password.")
    config = await _config(editing)
    try:
        camera = camera_with_username(config, camera_id)
        # On the camera first: a password it refuses would stop the recording.
        await check_password(camera, password, call_timeout=CALL_TIMEOUT)
        sealed = await _seal(editing, password)
        await asyncio.to_thread(
            set_password,
            editing.config_path,
            config,
            camera_id,
            password,
            encrypt=lambda _password: sealed,  # sealed by the daemon just above
        )
    except EditError as exc:
        refused = " The camera refused it;" if exc.code == "refused" else ""
        raise back_to(here, error=f"Nothing was changed.{refused} {_sentence(str(exc))}") from None
    except ConfigError as exc:
        raise back_to(here, error=_config_words(exc)) from None
    except (OSError, SecretError) as exc:
        raise back_to(here, error=f"The settings file cannot be written: {exc}.") from None
    log.info("owner_page_camera_password", camera=camera_id)
    words = _applied(await _apply(editing), camera_id, "password")
    raise back_to(here, done=f"The camera accepted the new password; it is stored. {words}")


def _sentence(text: str) -> str:
    for prefix in ("not changed: ", "not added: "):
        text = text.removeprefix(prefix)
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else ""


async def remove_page(request: web.Request) -> web.StreamResponse:
    editing = _editing(request)
    camera = _camera(await _config(editing), request.match_info["camera"])
    return _show(request, "camera_remove.html", camera={"id": camera.id, "name": camera.name})


async def remove(request: web.Request) -> web.StreamResponse:
    editing = _editing(request)
    camera_id = request.match_info["camera"]
    form = await _form(request)
    if form.get("confirm") != "yes":
        raise back_to(f"/cameras/{camera_id}/remove", error="Confirm with the button below.")
    config = await _config(editing)
    name = _camera(config, camera_id).name
    await _edit("/cameras", remove_camera, editing.config_path, camera_id)
    log.info("owner_page_camera_removed", camera=camera_id)
    words = _applied(await _apply(editing), camera_id, "remove")
    raise back_to("/cameras", done=f"{name} is removed. {words}")


# -- adding a camera -----------------------------------------------------------------------------


def _discovered(config: AgentConfig) -> tuple[list[DiscoveredCamera], str]:
    """The last discovery's devices not configured yet, and a note on it in words."""
    try:
        report = load_cache(config.state_dir)
    except FileNotFoundError:
        return [], (
            "No search for cameras has been made yet (on the machine: sudo rtcc-edge discover)."
        )
    except PermissionError:
        return [], "The last search for cameras cannot be read by the page."
    except (OSError, ValueError):
        return [], "The last search for cameras cannot be read."
    configured = {c.onvif_url for c in config.cameras if c.onvif_url}
    fresh = [
        c for c in report.cameras if c.configured_as is None and c.device_url not in configured
    ]
    when = report.started_at.astimezone().strftime("%a %d %b %Y, %H:%M")
    if not fresh:
        return [], f"The last search ({when}) found no camera that is not added yet."
    return fresh, f"Found by the last search, {when}:"


def _label(camera: DiscoveredCamera) -> str:
    made = camera.model or camera.name or "a camera"
    if camera.recorder is not None:
        count = len(camera.recorder.channels)
        made += f", a recorder with {count} channels" if count else ", a recorder"
    return f"{made} at {camera.host}:{camera.port}"


async def add_page(request: web.Request) -> web.StreamResponse:
    editing = _editing(request)
    config = await _config(editing)
    found, note = await asyncio.to_thread(_discovered, config)
    devices = [{"index": c.index, "label": _label(c)} for c in found]
    return _show(request, "camera_add.html", devices=devices, note=note)


def _profiles() -> ProfileSet | None:
    try:
        return load_profiles()
    except ProfileError:
        return None  # only a recorder's channel paths need them


def _id_from(name: str | None, config: AgentConfig) -> str | None:
    """`Back yard` → `back-yard`, the id people then see, when free; None: the CLI's default
    (from the camera's address)."""
    if not name:
        return None
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:58].rstrip("-")
    if not slug or not re.fullmatch(ID_PATTERN, slug) or config.camera(slug) is not None:
        return None
    return slug


async def _plan(config: AgentConfig, form: dict[str, str], login: Login | None) -> Plan:
    name = form.get("name") or None
    camera_id = _id_from(name, config)
    profiles = await asyncio.to_thread(_profiles)
    if form.get("how") == "rtsp":
        url = form.get("rtsp", "")
        if not url:
            raise AddError("Type the camera's RTSP address (rtsp://…).", code="usage")
        return await plan_rtsp(
            url,
            login,
            config=config,
            profiles=profiles,
            camera_id=camera_id,
            name=name,
            call_timeout=CALL_TIMEOUT,
        )
    found, _note = await asyncio.to_thread(_discovered, config)
    device = next((c for c in found if str(c.index) == form.get("device")), None)
    if device is None:
        raise AddError("Choose one of the cameras found.", code="usage")
    if login is None:
        raise AddError("Type the camera's username and password.", code="usage")
    # A recorder (NVR/DVR): each channel asked for becomes a camera; all of them by default.
    typed = form.get("channels", "")
    channels = parse_channels(typed) if typed else ("all" if device.recorder else None)
    return await plan_onvif(
        device.device_url,
        login,
        config=config,
        profiles=profiles,
        camera_id=camera_id,
        name=name,
        channels=channels,
        call_timeout=CALL_TIMEOUT,
    )


def _login(fields: dict[str, str], password: str) -> Login | None:
    """The username and password typed; for an RTSP address without them, those written in
    the address (as `rtcc-edge cameras add --rtsp` takes them). AddError for a bad address."""
    username = fields.get("username", "")
    if not username and fields.get("how") == "rtsp" and fields.get("rtsp"):
        _bare, url_user, url_password = split_rtsp_url(fields["rtsp"])
        username, password = url_user or "", password or url_password or ""
    return Login(username, password) if username else None


async def add(request: web.Request) -> web.StreamResponse:
    editing = _editing(request)
    form = await request.post()
    fields = {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "password"}
    typed = form.get("password")
    config = await _config(editing)
    try:
        login = _login(fields, typed if isinstance(typed, str) else "")
        plan = await _plan(config, fields, login)
        sealed = await _seal(editing, login.password) if login is not None else None
        await asyncio.to_thread(
            write_cameras,
            editing.config_path,
            config,
            plan,
            login,
            Sharing(),
            how="the owner's page",
            encrypt=(lambda _password: sealed) if sealed is not None else None,
        )
    except (AddError, EditError) as exc:
        raise back_to("/cameras/add", error=f"Not added. {_sentence(str(exc))}") from None
    except ConfigError as exc:
        raise back_to("/cameras/add", error=_config_words(exc)) from None
    except (OSError, SecretError) as exc:
        raise back_to(
            "/cameras/add", error=f"The settings file cannot be written: {exc}."
        ) from None
    answer = await _apply(editing)
    names = ", ".join(f"{c.name} ({c.id})" for c in plan.cameras)
    log.info("owner_page_camera_added", cameras=[c.id for c in plan.cameras])
    words = _applied(answer, plan.cameras[0].id, "add")
    raise back_to("/cameras", done=f"Added {names}. {words}")
