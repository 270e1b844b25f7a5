"""Turning SIGTERM and SIGINT into a clean stop of the daemon's event loop, and SIGHUP (what
`systemctl reload` sends) into a reload of its configuration, never a stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from agent.log import get_logger

log = get_logger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_handlers(
    stop: asyncio.Event, *, signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> Callable[[], None]:
    """Set `stop` on the first of `signals`; later ones are logged (the stop is under way).

    Returns a function that restores the previous handling."""
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("daemon_already_stopping", signal=sig.name)
            return
        log.info("daemon_stop_requested", signal=sig.name)
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, handle, sig)

    def remove() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    return remove


def install_reload_handler(reload: asyncio.Event) -> Callable[[], None]:
    """Set `reload` on SIGHUP (the daemon reads its configuration again); returns a function
    that restores the previous handling. Without it SIGHUP would end the daemon, and systemd
    would count that as a clean exit that `Restart=on-failure` does not undo."""
    loop = asyncio.get_running_loop()

    def handle() -> None:
        log.info("daemon_reload_requested", signal="SIGHUP")
        reload.set()

    loop.add_signal_handler(signal.SIGHUP, handle)

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return remove
