"""Leaving the RTCC's map: delete this site's retained registry and status from the broker.

An empty retained message deletes the one the broker holds, so the RTCC's map (`rtcc-hub
sites`, the console) stops listing the site's cameras. The uninstaller runs it (`rtcc-edge
retract`) after stopping the daemon and before removing anything; a daemon still running would
publish both again within a minute, so the command refuses while it answers.

The connection uses the site's own identity with a clean session: the broker also forgets the
requests it was keeping for a site that is leaving.
"""

from __future__ import annotations

import asyncio
import socket

import aiomqtt

from agent.link.session import TCP_NODELAY, BrokerSettings
from agent.link.tls import client_tls_context
from agent.neterrors import describe_network_error
from agent.wire import Topics


class RetractError(Exception):
    """The broker could not be reached or refused the site (message safe to show)."""


async def retract_presence(
    broker: BrokerSettings, site_id: str, *, within: float = 20.0
) -> list[str]:
    """Publish empty retained messages on the site's registry and status topics (QoS 1, each
    acknowledged by the broker); the topics cleared."""
    topics = Topics(site_id)
    cleared = [topics.registry, topics.status]
    tls = None
    if broker.tls:
        tls = await asyncio.to_thread(
            client_tls_context,
            ca_file=broker.ca_file,
            cert_file=broker.cert_file,
            key_file=broker.key_file,
        )
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=site_id,
        clean_session=True,
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_context=tls,
        username=broker.username,
        password=broker.password,
        keepalive=broker.keepalive,
        timeout=within,
        socket_options=[TCP_NODELAY],
    )
    try:
        async with asyncio.timeout(within), client:
            for topic in cleared:
                await client.publish(topic, b"", qos=1, retain=True)
    except TimeoutError:
        raise RetractError(
            f"the broker {broker.host}:{broker.port} did not answer in time"
        ) from None
    except (aiomqtt.MqttError, OSError) as exc:
        raise RetractError(_why(exc, broker)) from None
    return cleared


def _why(exc: BaseException, broker: BrokerSettings) -> str:
    """A sentence for a failed connection (aiomqtt wraps the socket's error in MqttError)."""
    where = f"{broker.host}:{broker.port}"
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, socket.gaierror):
        return f"the broker's name {broker.host} cannot be resolved (DNS, or a typo)"
    if cause is not None:
        return f"cannot reach the broker {where}: {describe_network_error(cause) or cause}"
    return f"the broker {where} refused the site: {exc}"
