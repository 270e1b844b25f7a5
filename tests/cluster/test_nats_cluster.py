"""The site and the hub on a three-node NATS Server cluster, configured by
`rtcc-hub broker-config --broker nats`: the same TLS and per-site isolation as mosquitto, and
the loss of the node a site is on during a clip request loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from agent.ledger import read_entries
from agent.link import Backoff, BrokerSettings, MqttSession
from agent.wire import Topics
from hub.mqtt import connect_any, retained
from hub.state import TrustedSite
from hub.trust import check_message
from sitesim import Broker, CameraSpec, Rtcc, Simulation, SiteSpec
from tests.support.hub_receiver import running_receiver
from tests.support.nats import NatsCluster, nats_cluster  # noqa: F401 - pytest fixture
from tests.support.rtcc import ISSUER, RTCC, jti_of, make_request, rfc3339


def _refused(code: int | ReasonCode) -> bool:
    # MQTT 3.1.1 SUBACK codes arrive as plain ints in some paho versions: 0x80 is a refusal.
    return code.is_failure if isinstance(code, ReasonCode) else code >= 0x80


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, cap=1.0)


def _tls(cluster: NatsCluster, site: str) -> ssl.SSLContext:
    cert, key = cluster.credentials(site)
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    context.load_cert_chain(cert, key)
    return context


def _client(cluster: NatsCluster, site: str, port: int) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"{site}-probe",
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_context=_tls(cluster, site),
        timeout=20,
    )


async def test_sites_are_isolated_and_the_hub_sees_every_node(
    nats_cluster: NatsCluster,  # noqa: F811
) -> None:
    cluster = nats_cluster
    a = Topics("city-a")
    cert, key = cluster.credentials("city-a")
    nodes = [
        BrokerSettings.from_url(url, ca_file=cluster.ca_file, cert_file=cert, key_file=key)
        for url in cluster.urls
    ]
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(payload: bytes) -> None:
        await received.put(payload)

    session = MqttSession(
        site_id="city-a",
        broker=nodes,
        device_key=cluster.keys["city-a"],
        on_request=collect,
        backoff=fast_backoff(),
    )
    async with session:
        await asyncio.wait_for(session.wait_connected(), 60)
        # The hub, on another node than the site, reads the site's retained registry.
        other = cluster.nodes[-1].mqtt_port
        async with connect_any(
            cluster.hub_broker.model_copy(update={"url": f"mqtts://127.0.0.1:{other}"})
        ) as hub:
            found = await retained(hub, [a.registry])
            assert [m.topic.value for m in found] == [a.registry]

            # Another site can neither read nor write city-a's topics.
            async with _client(cluster, "city-b", cluster.nodes[1].mqtt_port) as intruder:
                denied = await intruder.subscribe("rtcc/v1/sites/city-a/#", qos=1)
                assert all(_refused(code) for code in denied)
                assert all(_refused(code) for code in await intruder.subscribe("$MQTT/sub/#"))
                await intruder.publish(a.req, b"forged by city-b", qos=1)
                # ... while its own subtree works.
                ok = await intruder.subscribe("rtcc/v1/sites/city-b/#", qos=1)
                assert not any(_refused(code) for code in ok)
            await hub.publish(a.req, b"from the hub", qos=1)
            assert await asyncio.wait_for(received.get(), 20) == b"from the hub"
            assert received.empty()  # the intruder's message never arrived

    # A certificate of no trusted site (signed by the same CA) is refused.
    with pytest.raises(aiomqtt.MqttError):
        async with _client(cluster, "not-enrolled", cluster.nodes[0].mqtt_port):
            pass


SITE = SiteSpec("city-c", "Corner Grocery", 35.0844, -106.6504, (
    CameraSpec("front", "Front door", "integrated", True, 35.0844, -106.6504, 270, 90),
))  # fmt: skip


async def test_killing_the_sites_node_during_a_clip_request_loses_and_doubles_nothing(
    nats_cluster: NatsCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    cluster = nats_cluster
    topics = Topics("city-c")
    async with running_receiver(tmp_path / "receiver") as receiver:
        jwks = RTCC.write_jwks(tmp_path / "rtcc-jwks.json")
        simulation = Simulation(
            [SITE],
            tmp_path / "sites",
            Broker(cluster.urls[0], cluster.ca_file, cluster.credentials, cluster.urls),
            Rtcc(ISSUER, jwks, upload_ca=receiver.ca_file),
            footage_s=30,
        )
        site = simulation.sites[0]
        trusted = {
            "city-c": TrustedSite(
                jwk=site.public_jwk, kid=site.public_jwk["kid"], added=datetime.now(UTC)
            )
        }
        async with simulation:
            await simulation.wait_connected()
            session = site.session
            node = cluster.node_on(session.broker.port)
            # The hub on another node than the site's (the one that is about to die).
            elsewhere = next(n for n in cluster.nodes if n is not node)
            hub_broker = cluster.hub_broker.model_copy(
                update={"url": f"mqtts://127.0.0.1:{elsewhere.mqtt_port}", "urls": []}
            )
            hub_connection = connect_any(hub_broker)
            hub = await hub_connection.__aenter__()
            await hub.subscribe(topics.evt, qos=1)
            now = datetime.now(UTC)
            claims: dict[str, Any] = {
                "aud": "city-c",
                "camera": "front",
                "start": rfc3339(now - timedelta(seconds=20)),
                "end": rfc3339(now - timedelta(seconds=10)),
            }
            payload = make_request("clip", **claims)
            jti = jti_of(payload)
            claims["upload"] = {
                "url": receiver.mint("2026-000123", jti, "clip.mp4"),
                "manifest_url": receiver.mint("2026-000123", jti, "manifest.json"),
            }
            payload = make_request("clip", jti=jti, **claims)
            await hub.publish(topics.req, payload, qos=1)
            cluster.kill(node)  # the site's node dies with the request in flight
            try:
                states: list[str] = []
                deadline = time.monotonic() + 90
                async with asyncio.timeout(100):
                    async for message in hub.messages:
                        checked = check_message(
                            message.topic.value, bytes(message.payload), trusted
                        )
                        assert checked.ok, checked.reason
                        assert checked.claims is not None
                        if checked.claims["req"] != jti:
                            continue
                        states.append(checked.claims["state"])
                        if checked.claims["state"] in ("completed", "failed", "rejected"):
                            break
                        assert time.monotonic() < deadline
                assert states[0] == "accepted" and states[-1] == "completed", states
                assert session.connected and session.broker.port != node.mqtt_port
                stored = receiver.stored("2026-000123", jti, "clip.mp4")
                assert stored.stat().st_size > 0

                # A second copy (what a redelivery after failover is) is refused, not redone.
                await site.service.handle(payload)
                received = [
                    e
                    for e in read_entries(site.config.state_dir / "ledger")
                    if e.kind == "request_received" and e.data.get("jti") == jti
                ]
                codes = [e.data.get("code") for e in received]
                assert codes == [None, "replayed"], received  # taken once, then refused

                # The registry is still held by the surviving nodes for the console. (Polled:
                # the site re-publishes it on its new node, and a retained message being
                # replaced can be missing from a fresh subscription for a moment.)
                found: list[aiomqtt.Message] = []
                for _ in range(12):
                    with contextlib.suppress(TimeoutError):
                        async with connect_any(hub_broker) as reader:
                            found = await retained(reader, [topics.registry], within=5)
                    if found:
                        break
                    await asyncio.sleep(0.5)
                assert [m.topic.value for m in found] == [topics.registry]
            finally:
                await hub_connection.__aexit__(None, None, None)
                cluster.start(node)
                cluster.wait_healthy()
