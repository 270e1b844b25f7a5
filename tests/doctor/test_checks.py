"""The site checks against a real mosquitto (TLS, client certificates, ACL), real disks and
this host's clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from agent.clock import clock_sync
from agent.config import load_config
from agent.doctor.checks import broker_check, store_check, time_sync_check
from tests.doctor.site_setup import SITE, site_config
from tests.support import tmpfs
from tests.support.broker import MosquittoBroker, next_message


def test_the_broker_check_leaves_queued_requests_for_the_daemon(
    tmp_path: Path, mqtt: MosquittoBroker
) -> None:
    config = load_config(site_config(tmp_path, mqtt=mqtt))
    topic = f"rtcc/v1/sites/{SITE}/req"

    async def scenario() -> bytes:
        # The site's persistent session exists (the daemon ran once) and the daemon is down.
        async with mqtt.client(SITE, identifier=SITE, clean_session=False) as site:
            await site.subscribe(topic, qos=1)
        async with mqtt.client() as hub:
            await hub.publish(topic, b"queued-request", qos=1)
        result = await broker_check(config)
        assert result.status == "pass" and "MQTT login tested" in result.reason
        async with mqtt.client(SITE, identifier=SITE, clean_session=False) as site:
            message = await next_message(site)
        return bytes(message.payload)

    assert asyncio.run(scenario()) == b"queued-request"


def test_broker_failures_are_named(tmp_path: Path, mqtt: MosquittoBroker) -> None:
    good = load_config(site_config(tmp_path, mqtt=mqtt))
    plain = tmp_path / "plain"
    plain.mkdir()
    not_enrolled = load_config(site_config(plain))
    assert asyncio.run(broker_check(not_enrolled)).status == "warn"

    closed = good.model_copy(
        update={"rtcc": good.rtcc.model_copy(update={"broker_url": "mqtts://127.0.0.1:1"})}
    )
    refused = asyncio.run(broker_check(closed))
    assert refused.status == "fail" and "Cannot connect" in refused.reason

    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(Path(good.rtcc.cert_file or "").read_bytes())  # not the mqtt's CA
    wrong_ca = good.model_copy(update={"rtcc": good.rtcc.model_copy(update={"ca_file": other_ca})})
    tls = asyncio.run(broker_check(wrong_ca))
    assert tls.status == "fail" and "TLS" in tls.reason

    wrong_password = load_config(site_config(tmp_path, mqtt=mqtt, password_login=True))
    bad = wrong_password.model_copy(
        update={"rtcc": wrong_password.rtcc.model_copy(update={"password": SecretStr("nope")})}
    )
    login = asyncio.run(broker_check(bad))
    assert login.status == "fail" and "refused the login" in login.reason


def test_store_checks(tmp_path: Path) -> None:
    ok = load_config(site_config(tmp_path))
    assert store_check(ok).status == "pass"
    blocker = tmp_path / "file"
    blocker.write_text("")
    unwritable = load_config(site_config(tmp_path, store=f'path = "{blocker}/store"'))
    result = store_check(unwritable)
    assert result.status == "fail" and "not writable" in result.reason
    full = ok.model_copy(update={"store": ok.store.model_copy(update={"min_free": 10**18})})
    assert store_check(full).status == "fail"
    # A reserve larger than the disk needs: doctor names the value that fits this disk (5 % of
    # a 100 GiB disk).
    with tmpfs.small_disk(tmp_path, size="100g", mode="0755", name="disk") as disk:
        store = ok.store.model_copy(update={"path": disk / "store", "min_free": 10**18})
        result = store_check(ok.model_copy(update={"store": store}))
    assert result.status == "fail", result
    assert result.remedy == (
        'Set store.min_free = "5369MB" (now 1000000000GB): enough for this disk of '
        "107 GB; or free some space."
    )


def test_the_host_clock_without_timedatectl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = time_sync_check()
    assert result.status in ("pass", "fail", "warn")
    assert "adjtimex" in result.reason or result.reason.startswith("Unknown")
    # Without timedatectl only the kernel can answer: a verdict names it, and no answer is a warn.
    assert ("adjtimex" in result.reason) == (result.status != "warn")


def test_doctor_and_the_manifests_read_the_same_clock() -> None:
    """Issue 13: the clock-sync check existed twice and the two could disagree; doctor now says
    what `agent.clock` (status messages, clip manifests) says."""
    sync = clock_sync()
    result = time_sync_check()
    expected = {True: "pass", False: "fail", None: "warn"}[sync.synchronized]
    assert result.status == expected
    if sync.source == "adjtimex":
        assert "adjtimex" in result.reason
