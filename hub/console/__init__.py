"""The RTCC console: the web application analysts use all shift, served by `rtcc-hub serve`
at `/` (beside enrollment, the upload receiver and the relay).

Pages: the map registry, incidents (the DC alert) with live progress, the evidence locker per
case, the live wall, fleet health, the audit log. Server-rendered HTML (Jinja2), a little
JavaScript where a page must update itself (server-sent events) or draw the map (Leaflet and
marker clustering from the `xstatic` packages: nothing is fetched from the internet).

A route module of `hub.server` (`setup(app, context)`); the application itself is
`hub.console.app`. It is a client of the hub library (`hub.core.Hub`) like the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # hub.server names the console's settings: no import at run time
    from aiohttp import web

    from hub.server import ServerContext


def setup(app: web.Application, context: ServerContext) -> None:
    from hub.console.app import install

    install(app, context)
