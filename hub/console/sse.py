"""Server-sent events for the pages that update themselves (an incident, the live wall).

The page's state is re-read from the database whenever this process hears of a change
(`hub.bus`), and at least every `POLL_S` seconds (another hub process may have moved it), and
sent only when it differs from what the page has. A comment line every `KEEPALIVE_S` keeps
proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from hub.bus import ChangeBus

POLL_S = 2.0
KEEPALIVE_S = 15.0


async def stream_changes(
    request: web.Request,
    response: web.StreamResponse,
    bus: ChangeBus,
    topics: Sequence[str],
    snapshot: Callable[[], Awaitable[str]],
    *,
    stop: asyncio.Event,
) -> None:
    """Until the browser goes away (or `stop`: the server shuts down): send `snapshot()` as a
    `data:` event when it changes."""
    last = ""
    wrote = time.monotonic()
    try:
        while not stop.is_set():
            version = bus.version
            payload = await snapshot()
            if payload != last:
                await response.write(f"data: {payload}\n\n".encode())
                last, wrote = payload, time.monotonic()
            elif time.monotonic() - wrote > KEEPALIVE_S:
                await response.write(b": still here\n\n")
                wrote = time.monotonic()
            await bus.wait([*topics, "shutdown"], since=version, within=POLL_S)
    except (ConnectionResetError, RuntimeError):
        return  # the page was closed


def event_stream() -> web.StreamResponse:
    return web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
