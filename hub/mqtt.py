"""The hub's connection to the broker (the hub identity may read and write every site's topics).

Each command opens its own short-lived, clean session with a random client id, so any number of
`rtcc-hub` commands can run side by side. With a clustered broker (`broker.urls`) a command
connects to the first node that answers (`connect_any`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiomqtt

from agent.tls import TlsFileError, client_context
from hub.state import BrokerConfig

FENCE_ROOT = "rtcc/v1/sites/~fence"


class HubConnectionError(Exception):
    """The broker could not be reached or refused the hub."""


def tls_context(config: BrokerConfig) -> ssl.SSLContext:
    both = config.cert_file is not None and config.key_file is not None
    try:
        return client_context(
            ca_files=[config.ca_file] if config.ca_file else [],
            system_cas=not config.ca_file,
            cert_file=config.cert_file if both else None,
            key_file=config.key_file if both else None,
        )
    except TlsFileError as exc:
        raise HubConnectionError(f"TLS files of the hub configuration: {exc.reason}") from exc


def hub_client(
    config: BrokerConfig,
    *,
    timeout: float = 15.0,
    identifier: str | None = None,
    url: str | None = None,
) -> aiomqtt.Client:
    """An aiomqtt client for `config` (enter it with `async with`), to its first node or to
    `url` (another node of the cluster). With an `identifier` the session is persistent (the
    broker queues QoS 1 messages while the client is away: the event ingestion of `serve`);
    otherwise it is a clean session with a random id."""
    parts = urlsplit(url or config.url)
    secure = parts.scheme == "mqtts"
    return aiomqtt.Client(
        parts.hostname or "",
        parts.port or (8883 if secure else 1883),
        identifier=identifier or f"rtcc-hub-{uuid.uuid4().hex[:12]}",
        clean_session=identifier is None,
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_context=tls_context(config) if secure else None,
        username=config.username,
        password=config.password.get_secret_value() if config.password else None,
        keepalive=config.keepalive,
        timeout=timeout,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],  # see agent.link.session
    )


@contextlib.asynccontextmanager
async def connect_any(
    config: BrokerConfig, *, client_timeout: float = 15.0, identifier: str | None = None
) -> AsyncIterator[aiomqtt.Client]:
    """A connected client on the first node of `config.all_urls()` that accepts the hub;
    HubConnectionError naming every node when none does."""
    errors: list[str] = []
    urls = config.all_urls()
    for url in urls:
        client = hub_client(config, timeout=client_timeout, identifier=identifier, url=url)
        try:
            await client.__aenter__()
        except (aiomqtt.MqttError, OSError) as exc:
            if len(urls) == 1:
                raise  # a single broker: its own error says it best
            errors.append(f"{url}: {exc or type(exc).__name__}")
            continue
        try:
            yield client
        except BaseException as exc:
            await client.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        else:
            await client.__aexit__(None, None, None)
        return
    raise HubConnectionError("no broker node accepted the hub: " + "; ".join(errors))


async def fence(client: aiomqtt.Client) -> str:
    """Subscribe to and publish a private marker topic; returns it. mosquitto delivers a
    client's messages in order, so once the marker comes back every retained message of the
    subscriptions made before it has arrived."""
    topic = f"{FENCE_ROOT}/{uuid.uuid4().hex}"
    await client.subscribe(topic, qos=1)
    await client.publish(topic, b"", qos=1)
    return topic


async def retained(
    client: aiomqtt.Client, filters: list[str], *, within: float = 15.0
) -> list[aiomqtt.Message]:
    """Every retained message currently held for `filters`."""
    await client.subscribe([(f, 1) for f in filters])
    marker = await fence(client)
    found: list[aiomqtt.Message] = []
    async with asyncio.timeout(within):
        async for message in client.messages:
            if message.topic.value == marker:
                break
            if message.retain:
                found.append(message)
    await client.unsubscribe([*filters, marker])
    return found
