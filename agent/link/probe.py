"""Probing the RTCC broker for diagnostics (`rtcc-edge doctor`) with the link's own MQTT client.

The probe must not disturb the site's MQTT session. The broker binds the client id to the
site's identity, so any login takes over the daemon's connection, and a clean-session login
would wipe the requests queued for it. So `probe_broker` either tests only the TLS handshake
with the site's certificate (`login=False`: for when the daemon is, or may be, connected; its
own connection is the real proof), or logs in as the daemon does but leaves nothing behind:
clean session off, no will, no subscription, nothing acknowledged (a queued request the broker
sends at once stays unacknowledged, so it is sent again to the daemon), then DISCONNECT.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Any, Literal

import aiomqtt

from agent.link.session import TCP_NODELAY, BrokerSettings

ProbeOutcome = Literal[
    "accepted",  # the MQTT login was accepted
    "handshake",  # only the TLS handshake was asked for, and it worked
    "timeout",  # no answer within the time given
    "tls_failed",  # TLS failed: the broker's certificate, or ours, was not accepted
    "unreachable",  # no connection to the broker's address and port
    "refused",  # the broker answered the login with a refusal (CONNACK)
    "closed",  # the broker closed the connection without answering the login
]


@dataclass(frozen=True, slots=True)
class BrokerProbe:
    """What probing the broker found; `detail` says why when it did not work."""

    outcome: ProbeOutcome
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("accepted", "handshake")


async def probe_broker(
    settings: BrokerSettings,
    tls_context: ssl.SSLContext | None,
    *,
    client_id: str,
    login: bool = True,
    within: float = 10.0,
) -> BrokerProbe:
    """Connect to the broker as `client_id` (see the module docstring for what is left alone)
    and say what happened; never raises for anything the network or the broker does."""
    try:
        async with asyncio.timeout(within):
            if login:
                return await _login(settings, tls_context, client_id, within)
            return await _handshake(settings, tls_context)
    except TimeoutError:
        return BrokerProbe("timeout", f"no answer within {within:g} s")


async def _handshake(settings: BrokerSettings, tls_context: ssl.SSLContext | None) -> BrokerProbe:
    writer: asyncio.StreamWriter | None = None
    try:
        _, writer = await asyncio.open_connection(
            settings.host,
            settings.port,
            ssl=tls_context,
            server_hostname=settings.host if tls_context is not None else None,
        )
    except ssl.SSLError as exc:
        return BrokerProbe("tls_failed", str(exc.reason or exc))
    except OSError as exc:
        return BrokerProbe("unreachable", str(exc.strerror or exc))
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    return BrokerProbe("handshake")


async def _login(
    settings: BrokerSettings, tls_context: ssl.SSLContext | None, client_id: str, within: float
) -> BrokerProbe:
    client = aiomqtt.Client(
        settings.host,
        settings.port,
        identifier=client_id,
        clean_session=False,
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_context=tls_context,
        username=settings.username,
        password=settings.password,
        keepalive=settings.keepalive,
        timeout=within,
        socket_options=[TCP_NODELAY],
    )
    # Nothing the broker delivers on this login may be acknowledged: paho acknowledges a QoS 1
    # message as soon as it is received unless acknowledgements are manual (aiomqtt 2.5 does
    # not pass the option through; `MqttSession` sets it the same way).
    client._client.manual_ack_set(True)
    closed = _watch_for_close(client)
    entering = asyncio.ensure_future(client.__aenter__())
    try:
        either: list[asyncio.Future[Any]] = [entering, closed]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if client._connected.done():
            # The CONNACK came (the broker may hang up right after a refusal): its answer wins.
            await asyncio.wait({entering})
    finally:
        if not entering.done():
            entering.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await entering
    if entering.cancelled():
        return BrokerProbe("closed", "the broker closed the connection without answering")
    error = entering.exception()
    if error is None:
        # Leaving the context sends DISCONNECT: the session, and anything queued, stays.
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)
        return BrokerProbe("accepted")
    return _failure(error)


def _watch_for_close(client: aiomqtt.Client) -> asyncio.Future[None]:
    """A future set when the connection closes before CONNACK (a broker that refuses the client
    certificate after the TLS handshake just hangs up): aiomqtt itself would wait for its
    timeout, and the reason would be lost."""
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    paho = client._client
    forward = paho.on_disconnect

    def on_disconnect(*args: Any) -> None:  # paho's callback, whatever its version passes
        if forward is not None:
            forward(*args)
        if not closed.done():
            closed.set_result(None)

    paho.on_disconnect = on_disconnect
    return closed


def _failure(error: BaseException) -> BrokerProbe:
    if isinstance(error, aiomqtt.MqttCodeError):
        # A CONNACK refusal: paho names the reason ("Not authorized", "Bad user name or password").
        return BrokerProbe("refused", str(error.rc).lower() if error.rc is not None else str(error))
    # aiomqtt raises connection errors as MqttError(str(exc)) from None: the OSError or
    # ssl.SSLError is still its context.
    cause = error.__context__
    if isinstance(cause, ssl.SSLError):
        return BrokerProbe("tls_failed", str(cause.reason or cause))
    if isinstance(cause, OSError):
        return BrokerProbe("unreachable", str(cause.strerror or cause))
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return BrokerProbe("timeout", str(error))
    return BrokerProbe("unreachable", str(error))
