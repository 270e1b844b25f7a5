"""`agent.link.probe_broker` against a real mosquitto (TLS, client certificates, ACL): the login
it makes is the daemon's kind (MQTT 3.1.1, clean session off), leaves nothing behind (no will,
no subscription, nothing acknowledged; read from mosquitto's debug log) and every failure is
named.

That it leaves queued requests for the daemon is `tests/doctor/test_checks.py`'s
`test_the_broker_check_leaves_queued_requests_for_the_daemon`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest

from agent.link import BrokerSettings, client_tls_context, probe_broker
from tests.support.broker import HUB_IDENTITY, MosquittoBroker, next_message

SITE = "site-probe"


@pytest.fixture(scope="module")
def mqtt() -> Iterator[MosquittoBroker]:
    """A broker that logs every packet (wills, SUBSCRIBE, PUBACK) it receives."""
    broker = MosquittoBroker()
    with broker.config_path.open("a") as config:
        config.write("log_type debug\n")
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


def probe_session(broker: MosquittoBroker, client_id: str) -> str:
    """The broker's log of the last connection made as `client_id` by a probe (clean session
    off, keepalive 30), up to its disconnection (which the broker may log a moment after the
    probe has returned)."""
    deadline = time.monotonic() + 10
    while True:
        log = broker.log()
        starts = [m.start() for m in re.finditer(rf"as {client_id} \(p2, c0, k30", log)]
        end = log.find(f"Client {client_id} disconnected", starts[-1]) if starts else -1
        if end > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert starts, log
    assert end > 0, log[starts[-1] :]
    return log[starts[-1] : end]


def test_the_login_is_the_daemons_kind_and_a_long_password_fits(mqtt: MosquittoBroker) -> None:
    """What the hand-written CONNECT of old asserted, seen by the broker: user name and a
    200-byte password (a remaining length above 127 bytes), MQTT 3.1.1, clean session off."""
    password = "p" * 200
    mqtt.add_password_user(SITE, password)
    settings = BrokerSettings.from_url(
        mqtt.url(password=True), ca_file=mqtt.ca_file, username=SITE, password=password
    )
    context = client_tls_context(ca_file=mqtt.ca_file)
    result = asyncio.run(probe_broker(settings, context, client_id=SITE))
    assert result.outcome == "accepted" and result.ok
    logins = re.findall(rf"New client connected from \S+ as {SITE} \((.*?)\)", mqtt.log())
    assert logins == [f"p2, c0, k30, u'{SITE}'"]  # 3.1.1, persistent session, once
    session = probe_session(mqtt, SITE)
    assert "Will message specified" not in session
    assert f"Received DISCONNECT from {SITE}" in session


def test_a_queued_request_is_neither_acknowledged_nor_lost(mqtt: MosquittoBroker) -> None:
    site = "site-queued"
    cert, key = mqtt.issue_client_cert(site)
    settings = BrokerSettings.from_url(
        mqtt.url(), ca_file=mqtt.ca_file, cert_file=cert, key_file=key
    )
    context = client_tls_context(ca_file=mqtt.ca_file, cert_file=cert, key_file=key)
    topic = f"rtcc/v1/sites/{site}/req"

    async def scenario() -> bytes:
        # The site's persistent session exists (the daemon ran once) and the daemon is down.
        async with mqtt.client(site, identifier=site, clean_session=False) as daemon:
            await daemon.subscribe(topic, qos=1)
        async with mqtt.client() as hub:
            await hub.publish(topic, b"queued-request", qos=1)
        result = await probe_broker(settings, context, client_id=site)
        assert result.outcome == "accepted"
        async with mqtt.client(site, identifier=site, clean_session=False) as daemon:
            message = await next_message(daemon)
        return bytes(message.payload)

    assert asyncio.run(scenario()) == b"queued-request"
    session = probe_session(mqtt, site)
    assert f"Sending PUBLISH to {site}" in session  # the broker did hand it to the probe …
    assert f"Received PUBACK from {site}" not in session  # … which did not take it
    assert f"Received SUBSCRIBE from {site}" not in session
    assert "Will message specified" not in session


def test_failures_are_named(mqtt: MosquittoBroker) -> None:
    cert, key = mqtt.issue_client_cert(SITE)
    good = BrokerSettings.from_url(mqtt.url(), ca_file=mqtt.ca_file, cert_file=cert, key_file=key)
    context = client_tls_context(ca_file=mqtt.ca_file, cert_file=cert, key_file=key)

    wrong_password = BrokerSettings.from_url(
        mqtt.url(password=True), ca_file=mqtt.ca_file, username=SITE, password="nope"
    )
    refused = asyncio.run(
        probe_broker(wrong_password, client_tls_context(ca_file=mqtt.ca_file), client_id=SITE)
    )
    assert refused.outcome == "refused" and not refused.ok and refused.detail

    # A certificate of another CA: the broker hangs up after the handshake, before CONNACK.
    other_cert, other_key = mqtt.issue_client_cert(HUB_IDENTITY)
    other = client_tls_context(ca_file=mqtt.ca_file, cert_file=other_cert, key_file=other_key)
    closed = asyncio.run(probe_broker(good, other, client_id=SITE, within=20))
    assert closed.outcome == "closed", closed

    untrusted = client_tls_context(cert_file=cert, key_file=key)  # system CAs: not this broker's
    tls = asyncio.run(probe_broker(good, untrusted, client_id=SITE))
    assert tls.outcome == "tls_failed" and "CERTIFICATE_VERIFY_FAILED" in tls.detail.upper()

    nowhere = BrokerSettings.from_url("mqtts://127.0.0.1:1", ca_file=mqtt.ca_file)
    for login in (True, False):
        unreachable = asyncio.run(probe_broker(nowhere, context, client_id=SITE, login=login))
        assert unreachable.outcome == "unreachable", unreachable


def test_the_handshake_alone_does_not_log_in(mqtt: MosquittoBroker) -> None:
    cert, key = mqtt.issue_client_cert(SITE)
    settings = BrokerSettings.from_url(
        mqtt.url(), ca_file=mqtt.ca_file, cert_file=cert, key_file=key
    )
    context = client_tls_context(ca_file=mqtt.ca_file, cert_file=cert, key_file=key)
    before = mqtt.log().count("New client connected")
    result = asyncio.run(probe_broker(settings, context, client_id=SITE, login=False))
    assert result.outcome == "handshake" and result.ok
    assert mqtt.log().count("New client connected") == before
