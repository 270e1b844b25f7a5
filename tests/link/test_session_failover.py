"""Failover between broker nodes (`rtcc.broker_urls`), against a real mosquitto.

Two "nodes" that share one broker's state: a cuttable proxy in front of it and the broker
itself. Cutting the proxy (refusing new connections) is the node dying; the site and the hub's
ingestion must move on to the next URL, keep their persistent session and lose no request.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from agent.config import RtccConfig
from agent.identity import DeviceKey
from agent.link import Backoff, BrokerSettings, MqttSession
from hub.core import Hub
from hub.ingest import Ingestor
from hub.mqtt import HubConnectionError, connect_any
from hub.state import BrokerConfig
from tests.hub.conftest import HubRunner, hub_cli  # noqa: F401 - pytest fixture
from tests.link.test_session import unique_site
from tests.support.broker import (
    MosquittoBroker,
    broker,  # noqa: F401 - pytest fixture
    cuttable_proxy,
    eventually,
    free_port,
)

FAST = Backoff(initial=0.05, cap=0.5)


def _node(broker_: MosquittoBroker, site: str, port: int) -> BrokerSettings:
    cert, key = broker_.issue_client_cert(site)
    return BrokerSettings(
        host=broker_.host, port=port, ca_file=broker_.ca_file, cert_file=cert, key_file=key
    )


def test_config_lists_every_node_primary_first(tmp_path: Path) -> None:
    base = {
        "issuer": "x",
        "jwks_file": tmp_path / "j",
        "cert_file": tmp_path / "c",
        "key_file": tmp_path / "k",
    }
    urls = ["mqtts://a:8883", "mqtts://b:8883", "mqtts://a:8883", "mqtts://c:8883"]
    rtcc = RtccConfig.model_validate({**base, "broker_urls": urls})
    assert rtcc.broker_url == "mqtts://a:8883"  # enrolled: the first node
    assert rtcc.all_broker_urls() == ["mqtts://a:8883", "mqtts://b:8883", "mqtts://c:8883"]
    nodes = BrokerSettings.all_from_config(rtcc)
    assert [(n.host, n.port) for n in nodes] == [("a", 8883), ("b", 8883), ("c", 8883)]
    with pytest.raises(ValueError, match="mqtts://host"):
        RtccConfig.model_validate({**base, "broker_urls": ["http://a"]})


async def test_site_skips_a_dead_node_and_fails_over_when_its_node_dies(
    broker: MosquittoBroker,  # noqa: F811
) -> None:
    site = unique_site()
    dead = _node(broker, site, free_port())  # nothing listens there
    async with cuttable_proxy(broker.cert_port) as proxy:
        nodes = [dead, _node(broker, site, proxy.port), _node(broker, site, broker.cert_port)]
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def collect(payload: bytes) -> None:
            await received.put(payload)

        session = MqttSession(
            site_id=site,
            broker=nodes,
            device_key=DeviceKey.generate(),
            on_request=collect,
            backoff=Backoff(initial=0.05, cap=0.5),
            first_node=0,
        )
        async with session, broker.client() as hub:
            await asyncio.wait_for(session.wait_connected(), 30)
            assert session.broker.port == proxy.port  # the dead node was skipped
            assert session.stats.connect_failures >= 1

            proxy.cut(refuse_new=True)  # the node dies and stays dead
            await session.wait_disconnected()
            # Published while the site is between nodes: the persistent session keeps it.
            await hub.publish(session.topics.req, b"while-away", qos=1)
            await asyncio.wait_for(session.wait_connected(), 30)
            assert session.broker.port == broker.cert_port
            assert await asyncio.wait_for(received.get(), 20) == b"while-away"
            assert received.empty()  # delivered once


async def test_hub_commands_and_ingestion_fail_over(
    broker: MosquittoBroker,  # noqa: F811
    hub_cli: HubRunner,  # noqa: F811
) -> None:
    config = hub_cli.home.load_config()
    assert config.broker is not None
    direct = config.broker.url
    dead = f"mqtts://127.0.0.1:{free_port()}"
    only_dead = config.broker.model_copy(update={"url": dead, "urls": []})
    with pytest.raises(aiomqtt.MqttError):
        async with connect_any(only_dead):
            pass
    two_dead = config.broker.model_copy(update={"url": dead, "urls": [dead.replace("1", "2")]})
    with pytest.raises(HubConnectionError, match="no broker node"):
        async with connect_any(two_dead, client_timeout=5):
            pass
    async with connect_any(config.broker.model_copy(update={"url": dead, "urls": [direct]})):
        pass

    hub = await Hub.open(hub_cli.home)
    try:
        async with cuttable_proxy(broker.hub_port) as proxy:
            cluster = BrokerConfig.model_validate(
                {
                    **config.broker.model_dump(),
                    "url": f"mqtts://127.0.0.1:{proxy.port}",
                    "urls": [direct],
                }
            )
            ingestor = Ingestor(hub, cluster, identifier="failover-test", backoff=FAST)
            await ingestor.start()
            try:
                await asyncio.wait_for(ingestor.wait_connected(), 30)
                proxy.cut(refuse_new=True)
                await eventually(lambda: not ingestor.connected, within=20)
                await asyncio.wait_for(ingestor.wait_connected(), 30)
                await ingestor.publish("rtcc/v1/sites/~fence/x", b"", qos=1)  # the new node
            finally:
                await ingestor.stop()
    finally:
        await hub.close()
