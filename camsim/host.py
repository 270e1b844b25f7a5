"""Several cameras in one process, one WS-Discovery responder for all of them, and a small HTTP
control API so tests and trainers can inject faults into a camsim running in another process:

    GET  /cameras                      every camera, as in the ready file (with its faults)
    GET  /cameras/{id}
    POST /cameras/{id}/unplug          refuse and drop connections; silent to discovery
    POST /cameras/{id}/replug
    POST /cameras/{id}/stall           RTSP sessions stay up but no media flows
    POST /cameras/{id}/unstall
    POST /cameras/{id}/slow?seconds=S  every ONVIF answer S seconds late (0 to clear)
    POST /cameras/{id}/drop?frames=N   cut RTSP connections after N frames (0 to clear)
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
from typing import Any

import structlog
from aiohttp import web

from camsim.camera import Camera
from camsim.config import HostConfig
from camsim.discovery import DiscoveryResponder

log = structlog.get_logger(__name__)

MAX_SOAP_DELAY = 600.0
MAX_DROP_FRAMES = 100_000


class CameraStartError(OSError):
    """A camera could not start (its address or port is taken, or not on this machine)."""


class CameraHost:
    """Start with `await host.start()`, stop with `await host.close()`."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.cameras = [Camera(camera) for camera in config.cameras]
        self._by_id = {camera.id: camera for camera in self.cameras}
        self._discovery: DiscoveryResponder | None = None
        self._control: web.AppRunner | None = None
        self._control_port = 0

    def camera(self, camera_id: str) -> Camera:
        return self._by_id[camera_id]

    @property
    def discovery_port(self) -> int | None:
        return self._discovery.port if self._discovery is not None else None

    @property
    def control_url(self) -> str | None:
        if self._control is None:
            return None
        return f"http://{self.config.control.host}:{self._control_port}"

    async def start(self) -> None:
        """Start every camera, then discovery and control; raise CameraStartError if a camera
        or the responder cannot bind its address (everything already started is stopped)."""
        try:
            await self._start_cameras()
            discovery = self.config.discovery
            if discovery.enabled:
                self._discovery = DiscoveryResponder(
                    self.cameras,
                    port=discovery.port,
                    interface=discovery.interface,
                    multicast=discovery.multicast,
                )
                await self._discovery.start()
            if self.config.control.enabled:
                await self._start_control()
        except BaseException:
            await self.close()
            raise
        log.info("camsim_ready", cameras=len(self.cameras), control=self.control_url)

    async def _start_cameras(self) -> None:
        errors: list[str] = []

        async def start(camera: Camera) -> None:
            try:
                await camera.start()
            except OSError as exc:
                errors.append(f"camera {camera.id!r}: {exc}")

        async with asyncio.TaskGroup() as group:
            for camera in self.cameras:
                group.create_task(start(camera))
        if errors:
            raise CameraStartError("; ".join(errors))

    async def close(self) -> None:
        if self._control is not None:
            await self._control.cleanup()
            self._control = None
        if self._discovery is not None:
            await self._discovery.close()
            self._discovery = None
        await asyncio.gather(*(camera.close() for camera in self.cameras))

    def describe(self) -> dict[str, Any]:
        """What `--ready-file` holds: where everything is."""
        discovery = self.config.discovery
        return {
            "pid": os.getpid(),
            "control_url": self.control_url,
            "discovery": {
                "enabled": self._discovery is not None,
                "port": self.discovery_port,
                "interface": discovery.interface,
                "multicast": discovery.multicast,
            },
            "cameras": [camera.describe() for camera in self.cameras],
        }

    # -- control API ------------------------------------------------------------------------

    async def _start_control(self) -> None:
        app = web.Application(client_max_size=4096)
        app.router.add_get("/cameras", self._list)
        app.router.add_get("/cameras/{id}", self._show)
        app.router.add_post("/cameras/{id}/{action}", self._act)
        self._control = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._control.setup()
        sock = socket.create_server((self.config.control.host, self.config.control.port))
        self._control_port = sock.getsockname()[1]
        await web.SockSite(self._control, sock).start()

    def _find(self, request: web.Request) -> Camera:
        camera = self._by_id.get(request.match_info["id"])
        if camera is None:
            raise _error(web.HTTPNotFound, f"no camera {request.match_info['id'][:64]!r}")
        return camera

    async def _list(self, _request: web.Request) -> web.Response:
        return web.json_response({"cameras": [camera.describe() for camera in self.cameras]})

    async def _show(self, request: web.Request) -> web.Response:
        return web.json_response(self._find(request).describe())

    async def _act(self, request: web.Request) -> web.Response:
        camera = self._find(request)
        action = request.match_info["action"]
        faults = camera.faults
        if action == "unplug":
            faults.unplug()
        elif action == "replug":
            faults.replug()
        elif action == "stall":
            faults.stall()
        elif action == "unstall":
            faults.unstall()
        elif action == "slow":
            faults.soap_delay = _seconds(request.query.get("seconds"))
        elif action == "drop":
            faults.drop_after_frames = _frames(request.query.get("frames"))
        else:
            raise _error(web.HTTPNotFound, f"no action {action[:32]!r}")
        log.info("camsim_fault", camera=camera.id, action=action, soap_delay=faults.soap_delay)
        return web.json_response(camera.describe())


def _seconds(raw: str | None) -> float:
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_SOAP_DELAY:
        raise _error(web.HTTPBadRequest, f"seconds must be a number from 0 to {MAX_SOAP_DELAY:g}")
    return value


def _frames(raw: str | None) -> int:
    if raw is None or not raw.isdigit() or int(raw) > MAX_DROP_FRAMES:
        raise _error(
            web.HTTPBadRequest, f"frames must be a whole number from 0 to {MAX_DROP_FRAMES}"
        )
    return int(raw)


def _error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json")
