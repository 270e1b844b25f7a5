"""The owner's page as a daemon component: started after the link (whose request service and
overview it shows), stopped before it. Off unless `[owner_page] enabled = true`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent.daemon.app import DaemonError
from agent.link.owner_actions import OwnerActions
from agent.log import get_logger
from agent.owner_page.pictures import Pictures

if TYPE_CHECKING:
    from agent.daemon.app import Daemon
    from agent.daemon.link import LinkComponent

log = get_logger(__name__)

PICTURES_TEMP = "owner-page-tmp"


class OwnerPageComponent:
    name = "owner_page"

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._runner: web.AppRunner | None = None
        self._actions: OwnerActions | None = None

    def _link(self) -> LinkComponent | None:
        from agent.daemon.link import LinkComponent

        for component in self._daemon.components:
            if isinstance(component, LinkComponent):
                return component
        return None

    def actions(self) -> OwnerActions | None:
        link = self._link()
        service = link.service if link is not None else None
        if service is None:
            return None
        if self._actions is None or self._actions.service is not service:
            self._actions = OwnerActions(service)
        return self._actions

    async def overview(self) -> dict[str, Any]:
        link = self._link()
        return await link.overview() if link is not None else {}

    async def start(self) -> None:
        from agent.owner_page import cameras
        from agent.owner_page.app import make_app

        config = self._daemon.config
        host, _, port = config.owner_page.listen.rpartition(":")
        app = make_app(
            owner_dir=config.owner_dir,
            actions=self.actions,
            overview=self.overview,
            state_dir=config.state_dir,
            pictures=Pictures(self._daemon.store, config.state_dir / PICTURES_TEMP),
            bar_days=config.compat.min_retention.total_seconds() / 86400,
        )
        if self._daemon.config_path is not None:  # changes to cameras edit that file
            cameras.configure(
                app,
                config_path=self._daemon.config_path,
                control_socket=config.control.socket,
                tiles=config.owner_page.tiles,
            )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, int(port)).start()
        except OSError as exc:
            await runner.cleanup()
            raise DaemonError(
                f"cannot serve the owner's page on {config.owner_page.listen}: {exc.strerror}"
            ) from exc
        self._runner = runner
        log.info("owner_page_started", listen=config.owner_page.listen)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class _Nothing:
    """The component when the page is off: starts and stops nothing."""

    name = "owner_page"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def owner_page_component(daemon: Daemon) -> OwnerPageComponent | _Nothing:
    if not daemon.config.owner_page.enabled:
        return _Nothing()
    return OwnerPageComponent(daemon)
