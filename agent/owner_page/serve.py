"""Running the owner's page as its own process (`rtcc-edge owner serve`): the checks that come
first (the password is set), the listening socket (`serve`, where HTTPS plugs in with its
`ssl_context`), and serving until SIGTERM or SIGINT.

Whether the page runs at all is the installer's and systemd's business (`[owner_page]
enabled`); this runs it when asked.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import ssl
from pathlib import Path

from aiohttp import web

from agent.config import AgentConfig
from agent.control.owner_client import AsyncOwnerClient
from agent.log import get_logger
from agent.owner_page import cameras
from agent.owner_page.app import make_app
from agent.owner_page.password import is_set

log = get_logger(__name__)


class PageError(Exception):
    """The page cannot start; the message is one sentence for the owner."""


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host, int(port)


async def serve(
    app: web.Application, listen: str, *, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    """`app` listening on `listen` (`host:port`); the runner to clean up. PageError with a
    sentence if the address cannot be had (another program holds the port, no such address)."""
    host, port = split_listen(listen)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise PageError(
                f"The owner's page cannot listen on {listen}: another program already uses "
                "that port (is the page already running?). Stop it, or set another "
                "[owner_page] listen address."
            ) from exc
        raise PageError(
            f"The owner's page cannot listen on {listen}: {exc.strerror or exc}."
        ) from exc
    return runner


def check_ready(config: AgentConfig) -> None:
    """PageError if the page could not let anyone in: no owner password yet."""
    try:
        ready = is_set(config.owner_dir)
    except OSError as exc:
        raise PageError(
            f"The owner's page cannot read its password in {config.owner_dir}: {exc.strerror}. "
            "Run the page as a member of the owner group."
        ) from exc
    if not ready:
        raise PageError(
            "The owner's page has no password yet, so nobody could sign in. "
            "Set one with `sudo rtcc-edge owner passwd`, then start the page again."
        )


async def run_page(
    config: AgentConfig,
    *,
    config_path: Path | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve the owner's page until SIGTERM or SIGINT; PageError if it cannot start.
    `config_path`: the file the Cameras page edits (None: cameras are changed with the CLI)."""
    check_ready(config)
    app = make_app(owner=AsyncOwnerClient(config, via="page"))
    if config_path is not None:
        cameras.configure(
            app,
            config_path=config_path,
            control_socket=config.control.socket,
            tiles=config.owner_page.tiles,
        )
    runner = await serve(app, config.owner_page.listen, ssl_context=ssl_context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("owner_page_started", listen=config.owner_page.listen)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        log.info("owner_page_stopped")
