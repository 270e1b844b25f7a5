"""The broker's ACL as the site sees it: site A can neither read site B's requests nor speak
for B. Every "nothing got through" is proven with a fence: a later message on an allowed topic
that arrives after anything the forbidden one could have delivered (mosquitto keeps each
client's messages in order)."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest

from agent.identity import DeviceKey, verify_device_jws
from agent.link import Backoff, BrokerSettings, MqttSession
from agent.wire import Topics
from tests.support.broker import (
    MosquittoBroker,
    broker,  # noqa: F401 - pytest fixture
    next_message,
)


def sites() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    return f"site-a-{tag}", f"site-b-{tag}"


async def test_site_a_cannot_subscribe_to_or_receive_site_b_requests(
    broker: MosquittoBroker,  # noqa: F811
) -> None:
    site_a, site_b = sites()
    a_topics, b_topics = Topics(site_a), Topics(site_b)
    async with (
        broker.client(site_a) as a,
        broker.client(site_b) as b,
        broker.client() as hub,
    ):
        # mosquitto 2.0.11 grants these subscriptions but delivers only what the ACL lets
        # A read, checked message by message.
        await a.subscribe(b_topics.req, qos=1)
        await a.subscribe("rtcc/v1/sites/#", qos=1)
        await b.subscribe(b_topics.req, qos=1)

        await hub.publish(b_topics.req, b"for-b", qos=1)
        delivered = await next_message(b)
        assert bytes(delivered.payload) == b"for-b"  # it was really published

        await hub.publish(a_topics.req, b"fence", qos=1)
        message = await next_message(a)
        assert (message.topic.value, bytes(message.payload)) == (a_topics.req, b"fence")


async def test_site_a_cannot_publish_as_site_b(broker: MosquittoBroker) -> None:  # noqa: F811
    site_a, site_b = sites()
    a_topics, b_topics = Topics(site_a), Topics(site_b)
    async with broker.client(site_a) as a, broker.client() as hub:
        await hub.subscribe(f"rtcc/v1/sites/{site_b}/#", qos=1)
        await hub.subscribe(a_topics.evt, qos=1)
        for topic in (b_topics.evt, b_topics.status, b_topics.registry, b_topics.req):
            # MQTT 3.1.1 has no way to refuse a publish: the broker acknowledges and drops it.
            await a.publish(topic, b"forged", qos=1, retain=topic != b_topics.evt)
        await a.publish(a_topics.evt, b"fence", qos=1)
        message = await next_message(hub)
        assert (message.topic.value, bytes(message.payload)) == (a_topics.evt, b"fence")

    # Nothing was retained for B either.
    async with broker.client() as late:
        await late.subscribe(f"rtcc/v1/sites/{site_b}/#", qos=1)  # retained ones come now
        await late.subscribe(a_topics.evt, qos=1)
        await late.publish(a_topics.evt, b"fence-2", qos=1)
        message = await next_message(late)
        assert bytes(message.payload) == b"fence-2"


async def test_site_a_cannot_take_over_site_b_session(broker: MosquittoBroker) -> None:  # noqa: F811
    """With B's client id, A would otherwise kick B off and wipe B's queued requests."""
    site_a, site_b = sites()
    b_key = DeviceKey.generate()
    cert, key = broker.issue_client_cert(site_b)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(payload: bytes) -> None:
        await received.put(payload)

    def b_session() -> MqttSession:
        return MqttSession(
            site_id=site_b,
            broker=BrokerSettings(
                host=broker.host,
                port=broker.cert_port,
                ca_file=broker.ca_file,
                cert_file=cert,
                key_file=key,
            ),
            device_key=b_key,
            on_request=collect,
            backoff=Backoff(initial=0.05, cap=0.5),
        )

    async with b_session() as session:
        await session.wait_connected()
    async with broker.client() as hub:
        await hub.publish(Topics(site_b).req, b"queued-for-b", qos=1)

    # A connects asking for B's client id; the broker uses A's own name instead.
    async with broker.client(site_a, identifier=site_b, clean_session=False) as a:
        await a.subscribe(Topics(site_a).req, qos=1)

    async with b_session() as session:
        await session.wait_connected()
        async with asyncio.timeout(20):
            assert await received.get() == b"queued-for-b"
        assert session.stats.connects == 1


async def test_site_certificate_is_refused_on_the_hub_listener(
    broker: MosquittoBroker,  # noqa: F811
) -> None:
    site_a, _ = sites()
    # TLS 1.3 finishes the client's side of the handshake before the broker rejects the
    # certificate, so the refusal shows as no CONNACK: a short timeout keeps the test quick.
    with pytest.raises(aiomqtt.MqttError):
        async with broker.client(site_a, port=broker.hub_port, timeout=3) as client:
            await client.subscribe("rtcc/v1/sites/#", qos=1)


async def test_hub_identity_reads_every_site(broker: MosquittoBroker) -> None:  # noqa: F811
    site_a, site_b = sites()
    key = DeviceKey.generate()
    async with broker.client() as hub:
        await hub.subscribe("rtcc/v1/sites/+/evt", qos=1)
        for site in (site_a, site_b):
            async with broker.client(site) as client:
                await client.publish(Topics(site).evt, key.sign({"iss": site}), qos=1)
        issuers = set()
        for _ in range(2):
            message = await next_message(hub)
            issuers.add(verify_device_jws(bytes(message.payload).decode(), key.public_jwk)["iss"])
        assert issuers == {site_a, site_b}
