"""Hostile and broken servers for the ONVIF tests, all real sockets on loopback.

- `http_server(handler)`: an aiohttp server in a background thread (any behaviour a test wants:
  a web page that is not ONVIF, generated SOAP bodies, a proxy in front of a camsim camera);
- `silent_server()`: a TCP port that accepts connections and never says anything;
- `closed_port()`: a port nothing listens on.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextmanager
def http_server(handler: Handler, *, host: str = "127.0.0.1") -> Iterator[int]:
    """Serve every path and method with `handler`; yields the port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-http", daemon=True)
    thread.start()
    sock = socket.create_server((host, 0))
    port = int(sock.getsockname()[1])

    async def start() -> web.AppRunner:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def silent_server(host: str = "127.0.0.1") -> Iterator[int]:
    """A listening socket whose connections complete (the kernel accepts them) and stay mute."""
    sock = socket.create_server((host, 0), backlog=64)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def closed_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
