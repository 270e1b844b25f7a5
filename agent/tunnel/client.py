"""The WSS sender: one outbound websocket to the RTCC's relay per live session.

`RelayConnection.open(url, token)` dials with `Authorization: Bearer <token>`, TLS verified
against the system CAs plus the configured CA files (the RTCC's own CA, as for uploads), a
websocket ping every `heartbeat` seconds (a relay that stops answering is noticed), no
compression (video does not compress) and no proxy from the environment. `send(data)` sends one
binary message; it waits only while the socket's buffers are full: aiohttp's (about 64 KiB) and
the kernel's send buffer, fixed at `send_buffer_bytes` (autotuning would let it grow to
megabytes, seconds of delay for live video and memory outside any ceiling). So the caller's own
bounded queue is what absorbs a slow relay, and a congested link costs skipped fragments rather
than a growing delay. `ended` completes when
the relay closes the connection or it breaks: `relay_closed` for a clean close (normal, going
away, session expired), `relay_error` for anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp import ClientWSTimeout, WSCloseCode, WSMsgType

from agent.log import get_logger
from agent.tls import TlsFileError, client_context

log = get_logger(__name__)

_LINGER_ABORT = struct.pack("ii", 1, 0)

# Close codes after which the relay is said to have closed the session (not failed it).
_CLEAN_CLOSE = {WSCloseCode.OK, WSCloseCode.GOING_AWAY, WSCloseCode.POLICY_VIOLATION}


class RelayError(Exception):
    """The relay could not be reached or refused the connection (message safe to report)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RelayGone(Exception):
    """The connection ended while sending; `reason` is `relay_closed` or `relay_error`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ClientSettings:
    connect_timeout: float = 10.0
    heartbeat: float = 10.0
    close_timeout: float = 2.0
    send_buffer_bytes: int = 256 * 1024  # SO_SNDBUF (the kernel doubles it)


def _socket_factory(
    send_buffer: int, made: list[socket.socket]
) -> Callable[[AddrInfoType], socket.socket]:
    def make(addr_info: AddrInfoType) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=kind, proto=proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        made.append(sock)
        return sock

    return make


def relay_ssl_context(ca_files: Sequence[Path] = ()) -> ssl.SSLContext:
    """System CAs plus `ca_files`; TLS 1.2 at least, host names checked."""
    try:
        return client_context(ca_files=ca_files)
    except TlsFileError as exc:
        raise RelayError(f"CA file {exc.path}: {exc.reason}") from exc


class RelayConnection:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        sockets: list[socket.socket],
        *,
        close_timeout: float = 2.0,
    ) -> None:
        self._session = session
        self._sockets = sockets
        self._close_timeout = close_timeout
        self._ws = ws
        self.bytes_sent = 0
        self.messages_sent = 0
        self.ended: asyncio.Task[str] = asyncio.create_task(self._watch(), name="relay-watch")

    @classmethod
    async def open(
        cls,
        url: str,
        token: str,
        *,
        ssl_context: ssl.SSLContext,
        settings: ClientSettings | None = None,
    ) -> RelayConnection:
        settings = settings or ClientSettings()
        sockets: list[socket.socket] = []
        connector = aiohttp.TCPConnector(
            ssl=ssl_context,
            limit=1,
            socket_factory=_socket_factory(settings.send_buffer_bytes, sockets),
        )
        session = aiohttp.ClientSession(connector=connector, trust_env=False)
        try:
            async with asyncio.timeout(settings.connect_timeout):
                ws = await session.ws_connect(
                    url,
                    headers={"Authorization": f"Bearer {token}"},
                    heartbeat=settings.heartbeat,
                    timeout=ClientWSTimeout(ws_receive=None, ws_close=settings.close_timeout),
                    compress=0,
                    max_msg_size=64 * 1024,
                    autoping=True,
                )
        except BaseException as exc:
            await session.close()  # also when cancelled: no connection is left behind
            if isinstance(exc, aiohttp.WSServerHandshakeError):
                raise RelayError(
                    f"the relay refused the connection (HTTP {exc.status})", status=exc.status
                ) from None
            if isinstance(exc, TimeoutError):
                raise RelayError(
                    f"the relay did not answer within {settings.connect_timeout:.0f} s"
                ) from None
            if isinstance(exc, aiohttp.ClientError | OSError | ValueError):
                raise RelayError(f"could not connect to the relay: {exc}") from None
            raise
        return cls(session, ws, sockets, close_timeout=settings.close_timeout)

    async def _watch(self) -> str:
        """Read what the relay sends (pongs, close) until the connection ends; its reason."""
        async for message in self._ws:
            if message.type is WSMsgType.ERROR:
                return "relay_error"
            # The relay has nothing to tell a publisher; anything else is ignored.
        code = self._ws.close_code
        return "relay_closed" if code in _CLEAN_CLOSE else "relay_error"

    async def send(self, data: bytes) -> None:
        if self.ended.done() or self._ws.closed:
            raise RelayGone(self._end_reason())
        try:
            await self._ws.send_bytes(data)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            log.info("relay_send_failed", error=str(exc))
            raise RelayGone(self._end_reason()) from None
        self.bytes_sent += len(data)
        self.messages_sent += 1

    def _end_reason(self) -> str:
        if self.ended.done() and not self.ended.cancelled():
            return self.ended.result()
        return "relay_error"

    async def close(self, message: str = "") -> None:
        """Close (politely if the relay still listens, for at most `close_timeout`), then drop
        the connection — also when the relay reads nothing any more: a plain close would wait
        for the unsent bytes to drain, forever."""
        polite = False
        with contextlib.suppress(Exception):
            if not self._ws.closed:
                async with asyncio.timeout(self._close_timeout):
                    await self._ws.close(code=WSCloseCode.OK, message=message.encode()[:120])
            polite = True
        self.ended.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.ended
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                if not polite:
                    # The relay did not take the close: what still waits in the send buffer is
                    # video after the end, so it is discarded (RST on close), not delivered.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
                sock.shutdown(socket.SHUT_RDWR)  # the transport then fails and lets go
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._close_timeout):
                await self._session.close()
