"""Real HTTPS servers for the upload tests (aiohttp on a free loopback port, a test CA).

`ScriptedReceiver` answers each PUT by the next step of its script — `ok`, a status (`500`,
`403`, `429` with a `Retry-After`), `drop` (reads part of the body, then cuts the connection, as
a network failure does), `stall` (stops reading), or a redirect — and keeps what every PUT
carried, so a test can compare bytes and headers. Past the end of the script it answers `ok`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.broker import TestCA

HOST = "127.0.0.1"
_TCP_ESTABLISHED = 1


@dataclass(frozen=True)
class Step:
    kind: str  # ok | status | drop | stall | redirect
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int = 64 * 1024
    location: str = ""


def ok() -> Step:
    return Step("ok")


def status(code: int, **headers: str) -> Step:
    return Step("status", status=code, headers=dict(headers))


def drop(after: int = 64 * 1024) -> Step:
    return Step("drop", drop_after=after)


def stall() -> Step:
    return Step("stall")


def redirect(code: int, location: str) -> Step:
    return Step("redirect", status=code, location=location)


@dataclass
class Received:
    path: str
    query: str  # as it came on the wire (not decoded)
    headers: dict[str, str]
    answered: int | None  # None: the connection was cut
    body: bytes
    at: float = field(default_factory=time.time)  # when the request arrived (epoch s)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class ScriptedReceiver:
    def __init__(self, script: list[Step] | None = None) -> None:
        self.script = list(script or [])
        self.received: list[Received] = []
        self.objects: dict[str, bytes] = {}
        self.active = 0
        self.most_active = 0
        self.gate: asyncio.Event | None = None  # when set up, each PUT waits for it
        self.disconnected = asyncio.Event()
        self.port = 0
        self.base_url = ""

    def url(self, path: str = "/put/clip.mp4?X-Sig=abc") -> str:
        return f"{self.base_url}{path}"

    @property
    def completed(self) -> list[Received]:
        return [r for r in self.received if r.answered is not None and r.answered < 300]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        step = self.script.pop(0) if self.script else ok()
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        raw_query = request.raw_path.partition("?")[2]
        record = Received(request.path, raw_query, dict(request.headers), None, b"")
        self.received.append(record)
        try:
            if self.gate is not None:
                await self._hold(request, self.gate)
            return await self._answer(request, step, record)
        except asyncio.CancelledError:
            # aiohttp cancels the handler when it sees the client go away.
            self.disconnected.set()
            raise
        finally:
            self.active -= 1

    async def _hold(self, request: web.Request, gate: asyncio.Event) -> None:
        """Wait for `gate`, reading nothing; a client that hangs up meanwhile is noticed."""
        while not gate.is_set():
            if not _alive(request):
                self.disconnected.set()
                raise asyncio.CancelledError
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate.wait(), 0.02)

    async def _answer(
        self, request: web.Request, step: Step, record: Received
    ) -> web.StreamResponse:
        body = bytearray()
        if step.kind == "drop":
            while len(body) < step.drop_after:
                chunk = await request.content.readany()
                if not chunk:
                    break
                body += chunk
            record.body = bytes(body)
            assert request.transport is not None
            request.transport.abort()
            self.disconnected.set()
            raise asyncio.CancelledError  # nothing more to say on a cut connection
        if step.kind == "stall":
            # Read nothing more; wait for the client to give up and reset the connection.
            while _alive(request):  # noqa: ASYNC110 - polls the kernel; there is no event
                await asyncio.sleep(0.02)
            self.disconnected.set()
            raise asyncio.CancelledError
        try:
            async for chunk in request.content.iter_any():
                body += chunk
        except ConnectionError:
            self.disconnected.set()
            raise
        record.body = bytes(body)
        if step.kind == "redirect":
            record.answered = step.status
            return web.Response(status=step.status, headers={"Location": step.location})
        if step.kind == "status":
            record.answered = step.status
            return web.Response(status=step.status, headers=step.headers, text="<Error/>")
        record.answered = 200
        self.objects[request.path] = bytes(body)
        return web.json_response({"sha256": record.sha256, "bytes": len(body)})


def _alive(request: web.Request) -> bool:
    """Whether the client is still connected. The server stopped reading, so asyncio would not
    notice a reset: ask the kernel for the TCP state (tcp_info's first byte, 1 = established)."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return False
    sock = transport.get_extra_info("socket")
    if sock is None:
        return True
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return False
    return bool(state == _TCP_ESTABLISHED)


def server_tls(ca: TestCA, name: str = "receiver") -> ssl.SSLContext:
    cert, key = ca.issue(name, server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@contextlib.asynccontextmanager
async def serving(
    receiver: ScriptedReceiver, *, tls: ssl.SSLContext | None
) -> AsyncIterator[ScriptedReceiver]:
    app = web.Application()
    app.router.add_route("PUT", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=tls)
    await site.start()
    server = site._server
    assert server is not None
    receiver.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    receiver.base_url = f"{'https' if tls else 'http'}://{HOST}:{receiver.port}"
    try:
        yield receiver
    finally:
        if receiver.gate is not None:
            receiver.gate.set()
        await runner.cleanup()
