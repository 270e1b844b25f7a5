"""The owner's page as an aiohttp application: templates, its one stylesheet, security headers,
and the routes (`agent.owner_page.pages`).

The page is a process of its own (`rtcc-edge owner serve`, `agent.owner_page.serve`), never the
daemon: what it shows and changes all goes through the daemon's control socket with the owner's
library (`agent.control.owner_client.AsyncOwnerClient`, `via="page"`), exactly as the owner's
CLI does. So the page may act as the owner only when its own user may (root or the owner
group, never the service's user), and the ledger names that user "through the owner's page".
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from agent.control.owner_client import AsyncOwnerClient
from agent.owner_page.auth import GATE, SESSION, Gate
from agent.owner_page.preview import CONTROL_SOCKET
from agent.owner_page.words import Clock

STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class PageContext:
    owner: AsyncOwnerClient
    templates: jinja2.Environment
    user: str  # who this process runs as, for the sentences that say what to fix
    owner_group: str
    clock: Clock  # times on the site's wall clock


PAGE = web.AppKey("rtcc_owner_page", PageContext)


def page_of(request: web.Request) -> PageContext:
    return request.app[PAGE]


def _this_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def make_app(*, owner: AsyncOwnerClient, secure: bool = True) -> web.Application:
    from agent.owner_page import pages

    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("agent.owner_page", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    config = owner.config
    app = web.Application(
        client_max_size=64 * 1024,  # forms only: nothing large comes in
        middlewares=[server_timing, pages.daemon_trouble],  # outermost first
    )
    app[GATE] = Gate(config.owner_dir, secure=secure)
    app[PAGE] = PageContext(
        owner,
        templates,
        _this_user(),
        config.control.owner_group or "rtcc-edge-owner",
        Clock(config.site.zone()),
    )
    app[CONTROL_SOCKET] = config.control.socket  # previews come in pieces with their own wait
    app.on_response_prepare.append(_security_headers)
    app.on_response_prepare.append(_server_timing_header)
    app.router.add_static("/static", STATIC)
    pages.routes(app)
    return app


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Nothing but this page's own stylesheet and media (the previews); no framing, no scripts
    at all."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")


STARTED = web.RequestKey("rtcc_owner_started", float)


@web.middleware
async def server_timing(request: web.Request, handler: Any) -> web.StreamResponse:
    """Note when the request entered the page; `_server_timing_header` then tells the browser
    (and `bench.owner_page_bench`) the server time spent on it, daemon round trips included."""
    request[STARTED] = time.perf_counter()
    response: web.StreamResponse = await handler(request)
    return response


async def _server_timing_header(request: web.Request, response: web.StreamResponse) -> None:
    # On prepare, so redirects and refusals raised as exceptions carry it too.
    started = request.get(STARTED)
    if started is not None:
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed:.2f}"


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    page = page_of(request)
    body = page.templates.get_template(template).render(context)
    return web.Response(text=body, status=status, content_type="text/html")


def back_to(path: str, *, done: str = "", error: str = "") -> web.HTTPSeeOther:
    """The redirect after a change: back to `path`, which shows `done` or `error` (the owner's
    sentence travels in the address, so a reload does not send the form again)."""
    query = urlencode({k: v for k, v in (("done", done), ("error", error)) if v})
    return web.HTTPSeeOther(f"{path}?{query}" if query else path)


def csrf_of(request: web.Request) -> str:
    """The signed-in session's CSRF token ("" before signing in)."""
    session = request.get(SESSION)
    return session.csrf if session is not None else ""
