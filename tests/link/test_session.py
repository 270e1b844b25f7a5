"""The agent's MQTT session against a real mosquitto (TLS, client certificates, passwords, ACL)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from agent.identity import DeviceKey, verify_device_jws
from agent.link import Backoff, BrokerSettings, MqttSession
from agent.link.presence import Claims
from agent.wire import Event, EventState, RegistryClaims, StatusClaims, Topics
from tests.support.broker import (
    MosquittoBroker,
    broker,  # noqa: F401 - pytest fixture
    cuttable_proxy,
    eventually,
    next_message,
    private_broker,  # noqa: F401 - pytest fixture
)


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, cap=0.5)


@dataclass
class Agent:
    """A session under test plus what it handed to its request handler."""

    session: MqttSession
    key: DeviceKey
    received: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)

    async def next_request(self, *, within: float = 20.0) -> bytes:
        async with asyncio.timeout(within):
            return await self.received.get()


def make_agent(
    broker_: MosquittoBroker,
    site: str,
    *,
    key: DeviceKey | None = None,
    port: int | None = None,
    password: str | None = None,
    handler: Callable[[bytes], Awaitable[None]] | None = None,
    **options: Any,
) -> Agent:
    key = key or DeviceKey.generate()
    if password is None:
        cert, cert_key = broker_.issue_client_cert(site)
        settings = BrokerSettings(
            host=broker_.host,
            port=port or broker_.cert_port,
            ca_file=broker_.ca_file,
            cert_file=cert,
            key_file=cert_key,
        )
    else:
        settings = BrokerSettings(
            host=broker_.host,
            port=port or broker_.password_port,
            ca_file=broker_.ca_file,
            username=site,
            password=password,
        )
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(payload: bytes) -> None:
        await received.put(payload)

    options.setdefault("backoff", fast_backoff())
    session = MqttSession(
        site_id=site, broker=settings, device_key=key, on_request=handler or collect, **options
    )
    return Agent(session=session, key=key, received=received)


def unique_site() -> str:
    return f"site-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def hub(broker: MosquittoBroker) -> AsyncIterator[aiomqtt.Client]:  # noqa: F811
    async with broker.client() as client:
        yield client


def event(site: str, seq: int, state: EventState = EventState.ACCEPTED, **extra: Any) -> Event:
    return Event(iss=site, iat=1_800_000_000, req=f"req-{seq}", state=state, seq=seq, **extra)


async def test_certificate_session_publishes_presence_takes_requests_and_sends_events(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
) -> None:
    site = unique_site()
    topics = Topics(site)
    agent = make_agent(broker, site)
    await hub.subscribe(topics.evt, qos=1)
    async with agent.session as session:
        await session.wait_connected()
        assert session.connected

        # Status and registry are retained and signed by the device key.
        await hub.subscribe(topics.status, qos=1)
        message = await next_message(hub)
        assert message.retain and message.topic.value == topics.status
        status = StatusClaims.model_validate(
            verify_device_jws(bytes(message.payload).decode(), agent.key.public_jwk)
        )
        assert status.online is True and status.iss == site
        await hub.subscribe(topics.registry, qos=1)
        message = await next_message(hub)
        registry = RegistryClaims.model_validate(
            verify_device_jws(bytes(message.payload).decode(), agent.key.public_jwk)
        )
        assert message.retain and registry.iss == site and registry.site.id == site

        # A request reaches the handler byte for byte.
        payload = b"header.claims.signature"
        await hub.publish(topics.req, payload, qos=1)
        assert await agent.next_request() == payload

        # Events go out in order, signed, with the claims they were given.
        sent = [event(site, 1), event(site, 2, EventState.PROGRESS, bytes_sent=5, bytes_total=9)]
        for item in sent:
            await session.emit(item)
        for item in sent:
            message = await next_message(hub)
            assert message.topic.value == topics.evt
            token = bytes(message.payload).decode()
            claims = verify_device_jws(token, agent.key.public_jwk)
            assert Event.model_validate(claims) == item
        await eventually(lambda: session.stats.events_sent == 2)  # counted at PUBACK
    assert not session.connected


async def test_password_session_works_and_a_wrong_password_keeps_retrying(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
) -> None:
    site = unique_site()
    broker.add_password_user(site, "correct horse")
    agent = make_agent(broker, site, password="correct horse")
    async with agent.session as session:
        await session.wait_connected()
        await hub.publish(Topics(site).req, b"x.y.z", qos=1)
        assert await agent.next_request() == b"x.y.z"

    wrong = make_agent(broker, site, password="battery staple")
    async with wrong.session as session:
        await eventually(lambda: session.stats.connect_failures >= 2)
        assert not session.connected
    assert session.stats.connects == 0


async def test_untrusted_broker_certificate_is_refused_and_retried(
    broker: MosquittoBroker,  # noqa: F811
    tmp_path: Path,
) -> None:
    site = unique_site()
    other_ca = tmp_path / "other-ca.pem"
    from tests.support.broker import TestCA

    TestCA(tmp_path / "other").cert_path.rename(other_ca)
    cert, key = broker.issue_client_cert(site)
    settings = BrokerSettings(
        host=broker.host, port=broker.cert_port, ca_file=other_ca, cert_file=cert, key_file=key
    )

    async def ignore(payload: bytes) -> None:
        raise AssertionError("no request can arrive over an untrusted connection")

    session = MqttSession(
        site_id=site,
        broker=settings,
        device_key=DeviceKey.generate(),
        on_request=ignore,
        backoff=fast_backoff(),
    )
    async with session:
        await eventually(lambda: session.stats.connect_failures >= 2)
        assert session.stats.connects == 0


async def test_will_is_signed_offline_status_when_connection_dies(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
) -> None:
    site = unique_site()
    topics = Topics(site)
    async with cuttable_proxy(broker.cert_port) as proxy:
        agent = make_agent(broker, site, port=proxy.port)
        await hub.subscribe(topics.status, qos=1)
        async with agent.session as session:
            await session.wait_connected()
            online = await next_message(hub)
            claims = verify_device_jws(bytes(online.payload).decode(), agent.key.public_jwk)
            assert claims["online"] is True

            proxy.cut(refuse_new=True)  # the network fails: no DISCONNECT reaches the broker
            will = await next_message(hub)
            assert will.topic.value == topics.status
            claims = verify_device_jws(bytes(will.payload).decode(), agent.key.public_jwk)
            assert StatusClaims.model_validate(claims).online is False
            await session.wait_disconnected()

            # The will was published retained: a newcomer sees the site offline.
            async with broker.client() as late:
                await late.subscribe(topics.status, qos=1)
                retained = await next_message(late)
                assert retained.retain
                assert (
                    verify_device_jws(bytes(retained.payload).decode(), agent.key.public_jwk)[
                        "online"
                    ]
                    is False
                )

            proxy.accepting = True  # the network is back: the session reconnects by itself
            await session.wait_connected()
            back = await next_message(hub)
            assert verify_device_jws(bytes(back.payload).decode(), agent.key.public_jwk)["online"]
            assert session.stats.connects == 2


async def test_graceful_stop_publishes_offline_status(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
) -> None:
    site = unique_site()
    agent = make_agent(broker, site)
    async with agent.session as session:
        await session.wait_connected()
        await session.emit(event(site, 1))
    await hub.subscribe(Topics(site).status, qos=1)
    retained = await next_message(hub)
    assert (
        verify_device_jws(bytes(retained.payload).decode(), agent.key.public_jwk)["online"] is False
    )
    assert session.outbox_size == 0 and session.stats.events_sent == 1


async def test_requests_sent_while_offline_arrive_after_reconnect(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
) -> None:
    site = unique_site()
    key = DeviceKey.generate()
    first = make_agent(broker, site, key=key)
    async with first.session as session:
        await session.wait_connected()  # the broker now holds the site's persistent session
    # The agent is down; the RTCC sends two requests.
    await hub.publish(Topics(site).req, b"first.request.sig", qos=1)
    await hub.publish(Topics(site).req, b"second.request.sig", qos=1)

    second = make_agent(broker, site, key=key)
    async with second.session as session:
        await session.wait_connected()
        assert await second.next_request() == b"first.request.sig"
        assert await second.next_request() == b"second.request.sig"


async def test_handler_exception_does_not_stop_the_session(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = unique_site()
    seen: asyncio.Queue[bytes] = asyncio.Queue()

    async def fragile(payload: bytes) -> None:
        await seen.put(payload)
        if payload == b"boom":
            raise RuntimeError("handler bug")

    agent = make_agent(broker, site, handler=fragile)
    async with agent.session as session:
        await session.wait_connected()
        await hub.publish(Topics(site).req, b"boom", qos=1)
        await hub.publish(Topics(site).req, b"after", qos=1)
        async with asyncio.timeout(20):
            assert await seen.get() == b"boom"
            assert await seen.get() == b"after"
        assert session.connected
        assert session.stats.handler_errors == 1 and session.stats.requests == 2
    assert "request_handler_failed" in caplog.text


async def test_presence_is_republished_on_change_and_periodically(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
) -> None:
    site = unique_site()
    facts = {"cameras_total": 1, "cameras_online": 0}

    def status() -> Claims:
        return {"version": "9.9.9", **facts}

    async def registry() -> Claims:  # providers may be async
        return {"site": {"id": site, "name": "Corner Grocery"}, "cameras": []}

    agent = make_agent(broker, site, status=status, registry=registry, refresh_interval=0.2)
    topics = Topics(site)
    await hub.subscribe(topics.status, qos=1)

    async def next_status() -> StatusClaims:
        message = await next_message(hub)
        claims = verify_device_jws(bytes(message.payload).decode(), agent.key.public_jwk)
        return StatusClaims.model_validate(claims)

    async with agent.session as session:
        await session.wait_connected()
        first = await next_status()
        assert (first.version, first.cameras_online) == ("9.9.9", 0)
        facts["cameras_online"] = 1
        session.presence_changed()
        while (changed := await next_status()).cameras_online != 1:
            pass
        assert changed.cameras_total == 1
        # With nothing changing, the refresh still comes (a 0.2 s interval in this test).
        refreshed = await next_status()
        assert refreshed.online and refreshed.cameras_online == 1


async def test_a_broken_provider_does_not_break_the_link(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
) -> None:
    site = unique_site()

    def status() -> Claims:
        return {"version": "1", "no_such_claim": True}  # fails StatusClaims validation

    def registry() -> Claims:
        raise RuntimeError("store unavailable")

    agent = make_agent(broker, site, status=status, registry=registry)
    async with agent.session as session:
        await session.wait_connected()
        await hub.subscribe(Topics(site).status, qos=1)
        message = await next_message(hub)
        claims = verify_device_jws(bytes(message.payload).decode(), agent.key.public_jwk)
        assert claims["online"] is True and "no_such_claim" not in claims
        await hub.publish(Topics(site).req, b"still.listening.ok", qos=1)
        assert await agent.next_request() == b"still.listening.ok"


async def test_emit_refuses_an_event_of_another_site(broker: MosquittoBroker) -> None:  # noqa: F811
    agent = make_agent(broker, "site-a")
    with pytest.raises(ValueError, match="not this site"):
        await agent.session.emit(event("site-b", 1))


async def test_broker_restart_reconnects_and_flushes_the_outbox_in_order(
    private_broker: MosquittoBroker,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    site = unique_site()
    topics = Topics(site)
    agent = make_agent(private_broker, site)
    # The RTCC's listener keeps a persistent session too, so events published while it was
    # itself reconnecting after the restart wait for it at the broker.
    hub_id = f"hub-{uuid.uuid4().hex[:6]}"
    async with private_broker.client(identifier=hub_id, clean_session=False) as hub:
        await hub.subscribe(topics.evt, qos=1)

    async with agent.session as session:
        await session.wait_connected()
        private_broker.stop()
        await session.wait_disconnected()
        for seq in (1, 2, 3):
            await session.emit(event(site, seq))  # queued in the outbox meanwhile
        await eventually(lambda: caplog.text.count("mqtt_reconnect_wait") >= 2)
        assert session.outbox_size == 3
        private_broker.start()
        await session.wait_connected()
        assert session.stats.connects == 2
        await eventually(lambda: session.outbox_size == 0)

        async with private_broker.client(identifier=hub_id, clean_session=False) as hub:
            seqs = []
            for _ in range(3):
                message = await next_message(hub)
                claims = verify_device_jws(bytes(message.payload).decode(), agent.key.public_jwk)
                seqs.append(claims["seq"])
            assert seqs == [1, 2, 3]
            await hub.publish(topics.req, b"after.restart.ok", qos=1)
            assert await agent.next_request() == b"after.restart.ok"

    waits = [line for line in caplog.text.splitlines() if "mqtt_reconnect_wait" in line]
    assert waits and all("delay_s" in line and "attempt" in line for line in waits)


async def test_a_full_inbox_drops_and_counts_instead_of_growing(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
) -> None:
    site = unique_site()
    release = asyncio.Event()
    handled: list[bytes] = []

    async def slow(payload: bytes) -> None:
        handled.append(payload)
        await release.wait()

    agent = make_agent(broker, site, handler=slow, inbox_size=1)
    async with agent.session as session:
        await session.wait_connected()
        await hub.publish(Topics(site).req, b"one", qos=1)
        await eventually(lambda: handled == [b"one"])  # the handler is now busy with it
        for payload in (b"two", b"three", b"four"):
            await hub.publish(Topics(site).req, payload, qos=1)
        await eventually(lambda: session.stats.requests_dropped == 2)
        release.set()
        await eventually(lambda: len(handled) == 2)
        assert handled == [b"one", b"two"]  # the first to wait was kept, in order
