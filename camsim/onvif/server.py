"""One camera's web server: the ONVIF device and media services (SOAP 1.2) and its snapshot URL.

Behaves like a camera's embedded web server: unauthenticated GetSystemDateAndTime, WS-Security
(or HTTP Digest) on everything else, ONVIF faults for bad input, 413 for huge bodies, and the
camera's faults on demand — `soap_delay` slows every answer, `unplugged` closes the listening
socket (connections are refused) and drops open connections until re-plugged.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from camsim.faults import Faults
from camsim.onvif import device_ops, media_ops
from camsim.onvif.device import OnvifDevice
from camsim.onvif.device_ops import Handler
from camsim.onvif.http_auth import HttpAuthenticator, HttpAuthMode
from camsim.onvif.soap import (
    SoapFault,
    SoapRequest,
    action_not_supported,
    envelope,
    fault_bytes,
    not_authorized,
    parse_request,
)
from camsim.onvif.wsse import UsernameTokenVerifier
from camsim.onvif.xml import MAX_XML_BYTES, TDS, TRT, to_bytes
from camsim.persona import DEVICE_SERVICE_PATH, Quirk

log = structlog.get_logger(__name__)

SOAP_CONTENT_TYPE = "application/soap+xml"
# ONVIF Core §5.9.4.3: operations a client may call before it can authenticate.
_PRE_AUTH = {(TDS, "GetSystemDateAndTime")}
_SHUTDOWN_GRACE = 1.0
_FAULT_POLL = 0.1  # faults take effect within ~100 ms, as the RTSP side does

SnapshotSource = Callable[[], Awaitable[bytes]]


class OnvifServer:
    """Serve one camera's ONVIF endpoints and snapshot over HTTP on `device.host`."""

    def __init__(
        self,
        device: OnvifDevice,
        *,
        username: str,
        password: str,
        snapshot: SnapshotSource,
        faults: Faults | None = None,
        port: int = 0,
        auth_window: float = 300.0,
        snapshot_auth: HttpAuthMode = "digest",
        realm: str = "camsim",
    ) -> None:
        self.device = device
        self._faults = faults if faults is not None else Faults()
        self._port = port
        self._snapshot = snapshot
        quirks = device.quirks
        self._wsse = UsernameTokenVerifier(
            username,
            password,
            clock=device.now,
            window=auth_window,
            accept_digest=Quirk.PASSWORD_TEXT_ONLY not in quirks,
        )
        self._http_digest = HttpAuthenticator(username, password, mode="digest", realm=realm)
        self._snapshot_auth = HttpAuthenticator(username, password, mode=snapshot_auth, realm=realm)
        self._handlers: dict[tuple[str, str], Handler] = {
            **{(TDS, name): handler for name, handler in device_ops.HANDLERS.items()},
            **{(TRT, name): handler for name, handler in media_ops.HANDLERS.items()},
        }
        self._soap_paths = {DEVICE_SERVICE_PATH, device.media_path}
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._generation = self._faults.generation
        self._stopping = asyncio.Event()  # cuts short answers that are being delayed

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        self._stopping.clear()
        app = web.Application(client_max_size=MAX_XML_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._route)
        # A camera that is switched off does not wait for slow answers to finish.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE)
        await self._runner.setup()
        try:
            await self._open_site()
        except OSError:
            await self.close()
            raise
        self.device.http_port = self._port
        self._watcher = asyncio.create_task(self._watch_faults(), name="onvif-faults")
        log.info("onvif_listening", host=self.device.host, port=self._port)

    async def close(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._site = None

    async def _open_site(self) -> None:
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.device.host, self._port))
            sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        self._site = site

    async def _unplug(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        self._drop_connections()

    def _drop_connections(self) -> None:
        server = self._runner.server if self._runner is not None else None
        if server is not None:
            for connection in server.connections:
                connection.force_close()

    async def _watch_faults(self) -> None:
        """Faults is a plain flag set from anywhere (tests, the control API): poll it."""
        while True:
            await asyncio.sleep(_FAULT_POLL)
            if self._faults.generation != self._generation:
                self._generation = self._faults.generation
                self._drop_connections()
            if self._faults.unplugged and self._site is not None:
                await self._unplug()
                log.info("onvif_unplugged", port=self._port)
            elif not self._faults.unplugged and self._site is None:
                try:
                    await self._open_site()
                except OSError as exc:
                    log.warning("onvif_replug_failed", port=self._port, error=str(exc))
                else:
                    log.info("onvif_replugged", port=self._port)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if self._faults.unplugged:
            return self._hang_up(request)
        if request.path in self._soap_paths:
            if request.method != "POST":
                raise web.HTTPMethodNotAllowed(request.method, ["POST"])
            return await self._soap(request)
        if request.path == self.device.snapshot_path and request.method in ("GET", "HEAD"):
            return await self._snapshot_response(request)
        raise web.HTTPNotFound()

    def _hang_up(self, request: web.Request) -> web.StreamResponse:
        # A camera that lost power just goes away: no status line, no body.
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPServiceUnavailable()

    async def _soap(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # over client_max_size: aiohttp answers 413
        if self._faults.soap_delay > 0:
            with contextlib.suppress(TimeoutError):  # the usual case: the delay ran out
                await asyncio.wait_for(self._stopping.wait(), self._faults.soap_delay)
        if self._faults.unplugged or self._stopping.is_set():
            return self._hang_up(request)
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local = str(sockname[0]) if sockname else None
        try:
            soap = parse_request(body)
            handler = self._handlers.get((soap.namespace, soap.name))
            if handler is None:
                raise action_not_supported(f"Optional Action Not Implemented: {soap.name[:64]}")
            pre_auth = (soap.namespace, soap.name) in _PRE_AUTH
            if not pre_auth or Quirk.CLOCK_NEEDS_AUTH in self.device.quirks:
                self._authenticate(request, soap)
            root, out = envelope()
            out.append(handler(self.device, soap.operation, local))
            return _soap_response(to_bytes(root), 200)
        except SoapFault as fault:
            log.debug("onvif_fault", reason=fault.reason, subcodes=fault.subcodes)
            return _soap_response(fault_bytes(fault), fault.status, fault.headers)
        except Exception as exc:  # a bug answers like a camera's 500 and never kills it
            log.exception("onvif_handler_failed", error=str(exc))
            internal = SoapFault("Receiver", (), "Internal error")
            return _soap_response(fault_bytes(internal), 500)

    def _authenticate(self, request: web.Request, soap: SoapRequest) -> None:
        """HTTP Digest or WS-Security, as the camera's quirks allow; raise NotAuthorized if not."""
        header = request.headers.get("Authorization")
        verdict = (
            self._http_digest.check(request.method, request.raw_path, header)
            if header
            else "denied"
        )
        if verdict == "ok":
            return
        if Quirk.HTTP_DIGEST_AUTH in self.device.quirks:
            raise not_authorized(
                "Sender not Authorized: HTTP Digest authentication required",
                status=401,
                headers={"WWW-Authenticate": self._http_digest.challenge(stale=verdict == "stale")},
            )
        self._wsse.verify(soap.security)

    async def _snapshot_response(self, request: web.Request) -> web.StreamResponse:
        if Quirk.NO_SNAPSHOT in self.device.quirks:
            raise web.HTTPNotFound()
        verdict = self._snapshot_auth.check(
            request.method, request.raw_path, request.headers.get("Authorization")
        )
        if verdict != "ok":
            challenge = self._snapshot_auth.challenge(stale=verdict == "stale")
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": challenge})
        image = await self._snapshot()
        return web.Response(body=image, content_type="image/jpeg")


def _soap_response(body: bytes, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=body,
        status=status,
        headers=headers,
        content_type=SOAP_CONTENT_TYPE,
        charset="utf-8",
    )
