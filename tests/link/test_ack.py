"""A request is acknowledged to the broker only once its ledger entry is durable (issue 12,
item 5): over the real broker, with the request service composed as the daemon composes it.

- a full inbox refuses what does not fit as `busy`, each with its entry and event;
- a ledger on a full disk leaves the request unacknowledged: the broker delivers it again and
  it is recorded once there is room;
- a session that dies before the request is recorded gets it again on its next connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from agent.config import AgentConfig
from agent.identity import DeviceKey
from agent.ledger import Entry, Kind, read_entries
from agent.link import Backoff, registry_from_config
from agent.link.compose import Link
from agent.store import ClipStore
from agent.wire import Topics
from tests.support.broker import (
    MosquittoBroker,
    broker,  # noqa: F401 - pytest fixture
    eventually,
)
from tests.support.link_service import CAMERAS
from tests.support.rtcc import ISSUER, RTCC, jti_of, make_request
from tests.support.tmpfs import small_disk


def link_config(state_dir: Path, site: str, broker_: MosquittoBroker) -> AgentConfig:
    state_dir.mkdir(parents=True, exist_ok=True)
    cert, key = broker_.issue_client_cert(site)
    return AgentConfig(
        state_dir=state_dir,
        site={"id": site, "name": "Corner Grocery"},
        rtcc={
            "broker_url": broker_.url(),
            "ca_file": broker_.ca_file,
            "cert_file": cert,
            "key_file": key,
            "issuer": ISSUER,
            "jwks_file": RTCC.write_jwks(state_dir / "rtcc-jwks.json"),
        },
        cameras=CAMERAS,
        control={"socket": str(state_dir / "control.sock")},
    )


@contextlib.asynccontextmanager
async def running_link(config: AgentConfig, **options: Any) -> AsyncIterator[Link]:
    key = DeviceKey.load_or_create(config.state_dir / "device.key")
    store = ClipStore.from_config(config)
    link = Link(
        config,
        device_key=key,
        holds=store,
        registry=registry_from_config(config),
        backoff=Backoff(initial=0.05, cap=0.5),
        **options,
    )
    try:
        await link.service.start()
        async with link.session:
            await link.session.wait_connected()
            yield link
    finally:
        await link.service.close()
        store.close()


def ledger(config: AgentConfig) -> list[Entry]:
    return list(read_entries(config.state_dir / "ledger"))


def received(config: AgentConfig) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for entry in ledger(config):
        if entry.kind == Kind.REQUEST_RECEIVED:
            out.setdefault(entry.data["jti"], []).append(entry)
    return out


def claims_of(token: bytes) -> dict[str, Any]:
    middle = token.split(b".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(middle + b"=" * (-len(middle) % 4))))


@pytest.fixture
def site() -> str:
    return f"site-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def hub(broker: MosquittoBroker, site: str) -> AsyncIterator[aiomqtt.Client]:  # noqa: F811
    async with broker.client() as client:
        await client.subscribe(Topics(site).evt, qos=1)
        yield client


def unknown_camera_request(site: str) -> bytes:
    """Verified, then refused by the policy: quick, and needs no footage."""
    return make_request("clip", aud=site, camera="no-such-camera")


async def test_a_full_inbox_refuses_as_busy_with_an_entry_each(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
    site: str,
    tmp_path: Path,
) -> None:
    config = link_config(tmp_path / "state", site, broker)
    payloads = [unknown_camera_request(site) for _ in range(6)]
    jtis = [jti_of(p) for p in payloads]
    async with running_link(config, inbox_size=1) as link:
        # The service is busy (its lock held): the first request waits in the handler, the
        # second in the inbox, the other four find no room.
        async with link.service._lock:
            for payload in payloads:
                await hub.publish(Topics(site).req, payload, qos=1)
            await eventually(lambda: link.session.stats.requests_busy == 4)
        await eventually(lambda: len(received(config)) == 6)
        codes = {jti: entries[0].data["code"] for jti, entries in received(config).items()}
        assert [codes[j] for j in jtis[:2]] == [None, None]  # judged: refused by policy later
        assert [codes[j] for j in jtis[2:]] == ["busy"] * 4
        answers: dict[str, str | None] = {}
        async with asyncio.timeout(20):
            async for message in hub.messages:
                event = claims_of(bytes(message.payload))
                answers[event["req"]] = event.get("code")
                if len(answers) == 6:
                    break
        assert answers == {
            **dict.fromkeys(jtis[:2], "unknown_camera"),
            **dict.fromkeys(jtis[2:], "busy"),
        }

    # All six were acknowledged: a new connection gets none of them again, only what follows.
    marker = unknown_camera_request(site)
    async with running_link(config):
        await hub.publish(Topics(site).req, marker, qos=1)
        await eventually(lambda: jti_of(marker) in received(config))
    assert all(len(entries) == 1 for entries in received(config).values())


async def test_a_request_the_ledger_cannot_take_is_delivered_again(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
    site: str,
    tmp_path: Path,
) -> None:
    """The ledger's disk is full: the request is not acknowledged, nothing is answered, and
    once there is room again the broker's copy is recorded and answered, exactly once."""
    state = tmp_path / "state"
    state.mkdir()
    with small_disk(state, size="256k", name="ledger") as disk:
        config = link_config(state, site, broker)
        async with running_link(config) as link:
            filler = disk / "filler"
            with filler.open("wb", buffering=0) as handle, contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * 512)
            before = len(ledger(config))
            payload = unknown_camera_request(site)
            await hub.publish(Topics(site).req, payload, qos=1)
            await eventually(lambda: link.session.stats.requests_unrecorded >= 2)
            assert len(ledger(config)) == before, "nothing half-written"
            assert link.service.counters.rejected == {}, "nothing answered"
            filler.unlink()
            await eventually(lambda: jti_of(payload) in received(config))
            async with asyncio.timeout(20):
                message = await anext(aiter(hub.messages))
            assert claims_of(bytes(message.payload))["req"] == jti_of(payload)
            assert len(received(config)[jti_of(payload)]) == 1


async def test_a_session_that_dies_before_recording_gets_the_request_again(
    broker: MosquittoBroker,  # noqa: F811
    hub: aiomqtt.Client,
    site: str,
    tmp_path: Path,
) -> None:
    config = link_config(tmp_path / "state", site, broker)
    payload = unknown_camera_request(site)
    async with running_link(config) as link, link.service._lock:  # not recorded yet...
        await hub.publish(Topics(site).req, payload, qos=1)
        await eventually(lambda: link.session.stats.requests == 1)
        task = link.session._task
        assert task is not None
        task.cancel()  # ...when the session dies (no goodbye, no acknowledgement)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        link.session._task = None
    first = len(received(config).get(jti_of(payload), []))
    async with running_link(config):
        await eventually(lambda: len(received(config).get(jti_of(payload), [])) > first)
    assert first == 0, "the dying session's handler never recorded it"
    entries = received(config)[jti_of(payload)]
    assert [e.data["code"] for e in entries] == [None], "the broker's copy, handled as new"
