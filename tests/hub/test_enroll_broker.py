"""The mosquitto configuration `rtcc-hub broker-config` writes, run by a real mosquitto: the
enrolled agent connects with what enrollment gave it, takes requests and publishes verified
presence; it can neither read nor speak for another site; its certificate does not open the
hub's listener; and the hub's own identity (also set up by broker-config) reads everything."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from agent.cli.keys_cmd import device_key_path
from agent.config import load_config
from agent.enroll import EnrollResult, enroll
from agent.identity import DeviceKey
from agent.link import BrokerSettings, MqttSession
from agent.wire import Topics
from hub.mqtt import hub_client
from hub.sites import collect_sites
from hub.trust import Verdict, check_message
from tests.support.broker import next_message
from tests.support.hub_enroll import EnrollHub, running_hub, write_agent_config


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[EnrollHub]:
    async with running_hub(tmp_path, broker=True) as running:
        yield running


async def _enroll_site(hub: EnrollHub, root: Path, name: str) -> tuple[EnrollResult, Path]:
    config = write_agent_config(root / "etc" / "agent.toml", root / "state")
    result = await enroll(
        config,
        hub_url=hub.url,
        token=hub.token(name),
        device_key_at=device_key_path,
        ca_file=hub.ca_file,
    )
    return result, config


def _site_tls(config_path: Path) -> ssl.SSLContext:
    rtcc = load_config(config_path).rtcc
    assert rtcc.ca_file and rtcc.cert_file and rtcc.key_file
    context = ssl.create_default_context(cafile=str(rtcc.ca_file))
    context.load_cert_chain(rtcc.cert_file, rtcc.key_file)
    return context


@contextlib.asynccontextmanager
async def _session(config_path: Path, inbox: asyncio.Queue[bytes]) -> AsyncIterator[MqttSession]:
    config = load_config(config_path)

    async def on_request(payload: bytes) -> None:
        await inbox.put(payload)

    session = MqttSession(
        site_id=config.site.id,
        broker=BrokerSettings.from_config(config.rtcc),
        device_key=DeviceKey.load(device_key_path(config.state_dir)),
        on_request=on_request,
    )
    async with session:
        async with asyncio.timeout(30):
            await session.wait_connected()
        yield session


async def test_enrolled_agent_connects_and_is_confined(hub: EnrollHub, tmp_path: Path) -> None:
    a, a_config = await _enroll_site(hub, tmp_path / "a", "Corner Grocery")
    b, _ = await _enroll_site(hub, tmp_path / "b", "Bakery")
    a_topics, b_topics = Topics(a.site_id), Topics(b.site_id)
    broker = hub.home.load_config().broker
    assert broker is not None
    inbox: asyncio.Queue[bytes] = asyncio.Queue()

    async with _session(a_config, inbox), hub_client(broker) as rtcc:
        # The hub reads A's retained presence and verifies it with the device key that
        # enrollment registered: no `sites trust` step was needed.
        views = await collect_sites(rtcc, hub.home.trusted_sites())
        registry = views[a.site_id].registry
        assert registry is not None
        assert registry.verdict is Verdict.VERIFIED
        assert views[a.site_id].online is True

        # A request published by the hub reaches A.
        await rtcc.publish(a_topics.req, b"request-for-a", qos=1)
        async with asyncio.timeout(20):
            assert await inbox.get() == b"request-for-a"

    # With A's own certificate (the session is closed: a second connection under A's name
    # would take A's session over) A can neither speak for B nor read B's requests.
    async with (
        hub_client(broker) as rtcc,
        aiomqtt.Client(
            "127.0.0.1", hub.site_port, identifier=a.site_id, tls_context=_site_tls(a_config)
        ) as intruder,
    ):
        await intruder.subscribe(b_topics.req, qos=1)
        await intruder.subscribe("rtcc/v1/sites/#", qos=1)
        await rtcc.subscribe(f"rtcc/v1/sites/{b.site_id}/#", qos=1)
        await rtcc.subscribe(a_topics.evt, qos=1)
        for topic in (b_topics.evt, b_topics.status, b_topics.registry, b_topics.req):
            await intruder.publish(topic, b"forged", qos=1)
        # Fences: each client's messages arrive in order, so the fence coming first proves
        # nothing forbidden was delivered before it.
        await intruder.publish(a_topics.evt, b"fence-from-a", qos=1)
        seen = await next_message(rtcc)
        assert (seen.topic.value, bytes(seen.payload)) == (a_topics.evt, b"fence-from-a")

        await rtcc.publish(b_topics.req, b"request-for-b", qos=1)
        await rtcc.publish(a_topics.req, b"fence-for-a", qos=1)
        got = await next_message(intruder)
        while got.topic.value != a_topics.req:
            assert Topics.site_of(got.topic.value) == a.site_id, got.topic.value
            got = await next_message(intruder)
        assert bytes(got.payload) == b"fence-for-a"


async def test_client_id_is_bound_to_the_certificate(hub: EnrollHub, tmp_path: Path) -> None:
    """With another site's client id the broker still files A under A's own id."""
    a, a_config = await _enroll_site(hub, tmp_path / "a", "Corner Grocery")
    b, _ = await _enroll_site(hub, tmp_path / "b", "Bakery")
    async with aiomqtt.Client(
        "127.0.0.1", hub.site_port, identifier=b.site_id, tls_context=_site_tls(a_config)
    ):
        pass
    assert mosquitto_saw(hub, f"as {a.site_id} ")


def mosquitto_saw(hub: EnrollHub, text: str) -> bool:
    assert hub.mqtt is not None
    return text in hub.mqtt.log()


def _refused(port: int, context: ssl.SSLContext) -> bool:
    """Whether the broker's TLS listener on `port` refuses a client with `context`."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            # TLS 1.3 reports a refused client certificate on the first read.
            tls.sendall(b"\x10\x00")
            tls.recv(1)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    return False


async def test_site_certificate_cannot_open_the_hub_listener(
    hub: EnrollHub, tmp_path: Path
) -> None:
    _, a_config = await _enroll_site(hub, tmp_path / "a", "Corner Grocery")
    assert await asyncio.to_thread(_refused, hub.hub_port, _site_tls(a_config))
    # The hub's own identity is accepted there (the control for the check above).
    assert not await asyncio.to_thread(_refused, hub.hub_port, hub.hub_tls())


async def test_unknown_certificates_are_refused(hub: EnrollHub, tmp_path: Path) -> None:
    """No client certificate, or one from another CA (the hub's own operator CA): refused."""
    plain = ssl.create_default_context(cafile=str(hub.ca_file))
    assert await asyncio.to_thread(_refused, hub.site_port, plain)
    assert await asyncio.to_thread(_refused, hub.site_port, hub.hub_tls())


async def test_hub_identity_reads_every_site(hub: EnrollHub, tmp_path: Path) -> None:
    a, a_config = await _enroll_site(hub, tmp_path / "a", "Corner Grocery")
    broker = hub.home.load_config().broker
    assert broker is not None
    inbox: asyncio.Queue[bytes] = asyncio.Queue()
    async with hub_client(broker) as rtcc:
        await rtcc.subscribe(Topics(a.site_id).status, qos=1)
        async with _session(a_config, inbox):
            message = await next_message(rtcc)
            checked = check_message(
                message.topic.value, bytes(message.payload), hub.home.trusted_sites()
            )
            assert checked.verdict is Verdict.VERIFIED, checked.reason
