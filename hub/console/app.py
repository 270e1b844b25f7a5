"""The console application: its life cycle (the hub library opened, the event ingestion
started), templates, static files, security headers, and the pages' routes.

Every page handler is wrapped by `page(role)` (`hub.console.auth`): no session, no page; the
role decides what is shown; every POST carries the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
import structlog
import xstatic.pkg.leaflet
import xstatic.pkg.leaflet_markercluster
from aiohttp import web

from hub.console.settings import ConsoleSettings
from hub.core import Hub
from hub.evidence import register_missing
from hub.ingest import Ingestor
from hub.relay import RELAY, Relay
from hub.server import ServerContext
from hub.state import HubStateError

log = structlog.get_logger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
PAGE_MODULES = (
    "hub.console.auth",
    "hub.console.map_page",
    "hub.console.incidents_page",
    "hub.console.evidence_page",
    "hub.console.live_page",
    "hub.console.fleet_page",
    "hub.console.audit_page",
)


class Console:
    """What the console's handlers share: the hub library, the ingestion, the settings."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.settings: ConsoleSettings = context.console
        self._hub: Hub | None = None
        self.ingestor: Ingestor | None = None
        self.secure_cookies = context.public_url.startswith("https://")
        self.problem: str | None = None  # why the console cannot work (shown on every page)
        # Set when the server shuts down: the pages' event streams end instead of holding the
        # shutdown until its timeout.
        self.closing = asyncio.Event()

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            raise web.HTTPServiceUnavailable(text=self.problem or "the console is starting\n")
        return self._hub

    @property
    def publisher(self) -> Ingestor | None:
        """The broker connection requests go out on (None: the hub has no broker)."""
        return self.ingestor

    def relay(self, app: web.Application) -> Relay | None:
        return app.get(RELAY)

    async def startup(self, app: web.Application) -> None:
        self._hub = await Hub.open(self.context.home, database=self.context.database)
        log.info("console_database", database=self._hub.db.url)
        try:
            broker = self._hub.config().broker
        except HubStateError as exc:
            broker, self.problem = None, str(exc)
        if broker is None:
            self.problem = self.problem or (
                "this hub has no broker configured (`rtcc-hub init --broker URL`): the console "
                "shows what the database holds, and cannot send requests"
            )
        elif self.settings.ingest:
            identifier = self.settings.ingest_id or default_ingest_id(self.context)
            self.ingestor = Ingestor(self._hub, broker, identifier=identifier)
            await self.ingestor.start()
            await _catch_up(self._hub)

    async def shutdown(self, app: web.Application) -> None:
        self.closing.set()
        if self._hub is not None:
            self._hub.bus.publish("shutdown")

    async def cleanup(self, app: web.Application) -> None:
        if self.ingestor is not None:
            await self.ingestor.stop()
            self.ingestor = None
        if self._hub is not None:
            await self._hub.close()
            self._hub = None


def default_ingest_id(context: ServerContext) -> str:
    """One persistent MQTT session per hub process identity (host and home)."""
    digest = hashlib.sha256(str(context.home.root.resolve()).encode()).hexdigest()[:10]
    host = "".join(c for c in socket.gethostname().lower() if c.isalnum() or c == "-")[:20]
    return f"rtcc-hub-ingest-{host}-{digest}"


async def _catch_up(hub: Hub) -> None:
    """Evidence a crash or a stop left unregistered: completed requests with no evidence."""
    try:
        count = await register_missing(hub)
    except Exception:  # the console starts regardless; the log says what went wrong
        log.exception("console_evidence_catch_up_failed")
        return
    if count:
        log.info("console_evidence_registered_late", count=count)


CONSOLE = web.AppKey("rtcc_hub_console", Console)
# Set on every console request, so the security headers apply to the console's pages only.
CONSOLE_PAGE = web.RequestKey("rtcc_console_page", bool)


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def install(app: web.Application, context: ServerContext) -> None:
    console = Console(context)
    app[CONSOLE] = console
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("hub.console", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from hub.console import view

    environment.filters.update(view.FILTERS)
    app.on_startup.append(console.startup)
    app.on_shutdown.append(console.shutdown)
    app.on_cleanup.append(console.cleanup)
    app.on_response_prepare.append(_security_headers)
    app.router.add_static("/static/console", STATIC, append_version=True, name="console_static")
    app.router.add_static("/static/leaflet", xstatic.pkg.leaflet.BASE_DIR)
    app.router.add_static("/static/markercluster", xstatic.pkg.leaflet_markercluster.BASE_DIR)
    for name in PAGE_MODULES:
        importlib.import_module(name).routes(app)


def _tiles_origin(settings: ConsoleSettings) -> str:
    if settings.tiles_url is None:
        return ""
    parts = urlsplit(settings.tiles_url.replace("{s}", "a"))
    host = parts.netloc.replace("a.", "*.", 1) if "{s}" in settings.tiles_url else parts.netloc
    return f" {parts.scheme}://{host}"


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Console pages: no framing, no sniffing, nothing but this server's own scripts."""
    if not request.get(CONSOLE_PAGE):
        return
    console = console_of(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data:{_tiles_origin(console.settings)}; media-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    from hub.console import view

    return aiohttp_jinja2.render_template(
        template, request, view.base_context(request) | context, status=status
    )


def refusal(request: web.Request, title: str, message: str, *, status: int = 400) -> web.Response:
    """A page that says, in one sentence, why something was not done."""
    return render(request, "error.html", {"title": title, "message": message}, status=status)
