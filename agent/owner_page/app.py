"""The owner's page as an aiohttp application: templates, its one stylesheet, security headers,
and the routes (`agent.owner_page.pages`).

What the page shows and changes comes from outside: `actions()` gives the owner's library
(`agent.link.owner_actions.OwnerActions`, None while the site is not enrolled) and `overview()`
the daemon's view of its link and recorders (`LinkComponent.overview`). Every change goes
through `OwnerActions` with `by=BY`, so the ledger says it was done through the page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from agent.link.owner_actions import OwnerActions
from agent.owner_page.auth import GATE, Gate
from agent.owner_page.pictures import Pictures
from agent.owner_page.preview import CONTROL_SOCKET

BY = "owner (page)"
STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class PageContext:
    actions: Callable[[], OwnerActions | None]
    overview: Callable[[], Awaitable[dict[str, Any]]]
    state_dir: Path  # the ledger under it is what Activity and the history read
    bar_days: float
    templates: jinja2.Environment
    pictures: Pictures | None  # None: no store to take pictures from


PAGE = web.AppKey("rtcc_owner_page", PageContext)


def page_of(request: web.Request) -> PageContext:
    return request.app[PAGE]


def make_app(
    *,
    owner_dir: Path,
    actions: Callable[[], OwnerActions | None],
    overview: Callable[[], Awaitable[dict[str, Any]]],
    state_dir: Path,
    bar_days: float = 2.0,
    pictures: Pictures | None = None,
    secure: bool = False,
    control_socket: Path | None = None,
) -> web.Application:
    from agent.owner_page import pages

    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("agent.owner_page", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app = web.Application(client_max_size=64 * 1024)  # forms only: nothing large comes in
    app[GATE] = Gate(owner_dir, secure=secure)
    app[PAGE] = PageContext(actions, overview, state_dir, bar_days, templates, pictures)
    if control_socket is not None:
        app[CONTROL_SOCKET] = control_socket  # previews come from the daemon through it
    app.on_response_prepare.append(_security_headers)
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


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    page = page_of(request)
    body = page.templates.get_template(template).render(context)
    return web.Response(text=body, status=status, content_type="text/html")
