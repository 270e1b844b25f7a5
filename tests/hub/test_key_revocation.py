"""Revoking a stolen RTCC signing key, over a real broker and a real `rtcc-edge run`: the site
learns each new trust set from the retained message on `rtcc/v1/trust`, refuses the revoked
key within seconds, and refuses a replayed older set and a set forged with the stolen key."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import jwt
import pytest

from agent.identity import DeviceKey, device_key_path
from agent.link.trustset import TYP
from agent.wire import TRUST_TOPIC, Topics
from hub.keys import load_signing_key, trust_set_token
from hub.request import build_claims
from tests.e2e.deploy import process, wait_for_file
from tests.hub.conftest import HubRunner, init_home
from tests.support.broker import MosquittoBroker, private_broker  # noqa: F401
from tests.support.rtcc import ISSUER

pytestmark = pytest.mark.slow

MAX_SECONDS_TO_REFUSAL = 10.0


def site_config(path: Path, state: Path, jwks: Path, *, site: str, mqtt: MosquittoBroker) -> Path:
    cert, key = mqtt.issue_client_cert(site)
    path.write_text(
        f'state_dir = "{state}"\n'
        f'[site]\nid = "{site}"\nname = "Corner Grocery"\n'
        f'[rtcc]\nbroker_url = "{mqtt.url()}"\nca_file = "{mqtt.ca_file}"\n'
        f'cert_file = "{cert}"\nkey_file = "{key}"\nissuer = "{ISSUER}"\njwks_file = "{jwks}"\n'
        f'[control]\nsocket = "{state / "control.sock"}"\n'
        "[policy]\nrequests_per_hour = 10000\n"
        '[log]\nlevel = "info"\nformat = "console"\n'
    )
    return path


def inventory(key: DeviceKey, site: str) -> tuple[str, bytes]:
    claims = build_claims("inventory", site=site, issuer=ISSUER, ttl=timedelta(minutes=5))
    return claims["jti"], key.sign(claims).encode("ascii")


class SiteEvents:
    """The site's events as the hub sees them, by request id."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: dict[str, list[dict[str, Any]]] = {}

    async def pump(self) -> None:
        async for message in self.client.messages:
            if message.topic.value.endswith("/evt"):
                claims = jwt.decode(bytes(message.payload), options={"verify_signature": False})
                self.seen.setdefault(claims["req"], []).append(claims)

    async def answer(self, jti: str, *, within: float = 20) -> dict[str, Any]:
        """The first event that answers `jti`: accepted (an inventory is completed at once) or
        rejected."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for event in self.seen.get(jti, []):
                if event["state"] in ("accepted", "completed", "rejected"):
                    return event
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no answer to {jti}")


async def ask(
    client: aiomqtt.Client, events: SiteEvents, key: DeviceKey, site: str
) -> dict[str, Any]:
    jti, token = inventory(key, site)
    await client.publish(Topics(site).req, token, qos=1)
    return await events.answer(jti)


@pytest.fixture
async def hub_client(private_broker: MosquittoBroker) -> AsyncIterator[aiomqtt.Client]:  # noqa: F811
    async with private_broker.client() as client:  # the hub's identity
        yield client


async def test_revocation_reaches_a_connected_site_within_seconds(
    tmp_path: Path,
    private_broker: MosquittoBroker,  # noqa: F811
    hub_client: aiomqtt.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub: HubRunner = init_home(tmp_path / "hub", private_broker, capsys)
    stolen = load_signing_key(hub.home)  # K1: the key the attacker copied
    site = f"site-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "agent"
    state.mkdir()
    # Enrollment hands the site the JWKS with the pinned trust root (version 1: only K1). The
    # site's copy never changes below: everything after comes over the broker.
    site_jwks = shutil.copy(hub.home.jwks_path, tmp_path / "site-jwks.json")
    config = site_config(
        tmp_path / "agent.toml", state, Path(site_jwks), site=site, mqtt=private_broker
    )
    device = DeviceKey.load_or_create(device_key_path(state))
    assert hub.run("sites", "trust", site, json.dumps(device.public_jwk)).code == 0

    # The hub rotates: K2 signs from now on, K1 is still accepted for an hour (version 2).
    rotated = await hub.run_async("keys", "rotate", "--overlap", "1h")
    assert rotated.code == 0, rotated.err
    assert "published trust set version 2" in rotated.out
    current = load_signing_key(hub.home)
    version_2 = trust_set_token(hub.home)
    assert version_2 is not None

    events = SiteEvents(hub_client)
    await hub_client.subscribe(Topics(site).evt, qos=1)
    await hub_client.subscribe(Topics(site).status, qos=1)
    pump = asyncio.create_task(events.pump())
    log = tmp_path / "agent.log"
    try:
        async with process("-m", "agent", "--config", str(config), "run", log=log) as run:
            await wait_for_file(state / "control.sock", 60, run)
            # The site answers once connected; the retained version 2 arrived on subscribing.
            first = None
            for _ in range(100):
                jti, token = inventory(current, site)
                await hub_client.publish(Topics(site).req, token, qos=1)
                try:
                    first = await events.answer(jti, within=1)
                    break
                except TimeoutError:
                    continue
            assert first is not None and first["state"] != "rejected", first
            overlap = await ask(hub_client, events, stolen, site)
            assert overlap["state"] != "rejected", overlap  # K1, inside the overlap

            # The operator learns K1 was stolen and revokes it.
            started = time.monotonic()
            revoked = await hub.run_async("keys", "revoke", "--", stolen.kid)
            assert revoked.code == 0, revoked.err
            assert "published trust set version 3" in revoked.out
            refused = None
            while time.monotonic() - started < 30:
                answer = await ask(hub_client, events, stolen, site)
                if answer["state"] == "rejected":
                    refused = answer
                    break
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            with capsys.disabled():  # the hub runner reads (and drops) captured output
                print(f"\nfrom `rtcc-hub keys revoke` to the first refusal: {elapsed:.2f} s")
            assert refused is not None and refused["code"] == "unknown_key", refused
            assert "trust set (version 3)" in refused["message"]
            assert elapsed < MAX_SECONDS_TO_REFUSAL

            # The thief replays version 2 (K1 still in it), signed by the real root.
            await hub_client.publish(TRUST_TOPIC, version_2.encode(), qos=1, retain=True)
            # ...and forges a version 99 listing K1, signed with K1 and claiming the root's kid.
            root_kid = jwt.get_unverified_header(version_2)["kid"]
            forged = jwt.encode(
                {"ver": 99, "iat": int(time.time()), "keys": [stolen.public_jwk]},
                stolen.private_key,
                algorithm="EdDSA",
                headers={"kid": root_kid, "typ": TYP},
            )
            await hub_client.publish(TRUST_TOPIC, forged.encode(), qos=1, retain=True)
            after = await ask(hub_client, events, stolen, site)
            assert after["state"] == "rejected" and after["code"] == "unknown_key", after
            assert (await ask(hub_client, events, current, site))["state"] != "rejected"
            text = log.read_text()
            assert "trust_set_replayed" in text and "trust_set_refused" in text

            # The key file is the other channel, read on every change without a restart: the
            # hub rotates without publishing, and the new jwks.json is copied over the site's.
            rotated = await hub.run_async("keys", "rotate", "--overlap", "0", "--no-publish")
            assert rotated.code == 0, rotated.err
            newest = load_signing_key(hub.home)
            shutil.copy(hub.home.jwks_path, site_jwks)
            assert (await ask(hub_client, events, current, site))["state"] == "rejected"
            assert (await ask(hub_client, events, newest, site))["state"] != "rejected"
    finally:
        pump.cancel()
    # A restart cannot bring K1 back from the site's own (older) file either.
    kept = (state / "trust-set.jws").read_text().strip()
    assert jwt.decode(kept, options={"verify_signature": False})["ver"] == 4
