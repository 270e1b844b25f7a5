"""The whole link: `rtcc-hub request` → broker → agent session → request service → events back
to the hub's follower, each event checked against the site's device key. The site trusts the
JWKS that `rtcc-hub keys new` wrote; nothing here is a test key or a stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.identity import DeviceKey
from agent.link import Backoff, MqttSession, RequestService, registry_from_config
from agent.link.compose import Link
from agent.store import ClipStore
from agent.wire import Topics
from hub.state import TrustedSitesFile
from hub.trust import check_message
from tests.hub.conftest import HubRunner
from tests.support.broker import MosquittoBroker, next_message
from tests.support.rtcc import ISSUER

UPLOAD_HOST = "uploads.rtcc.test"


def agent_config(state_dir: Path, site: str, broker: MosquittoBroker, jwks: Path) -> AgentConfig:
    cert, key = broker.issue_client_cert(site)
    return AgentConfig(
        state_dir=state_dir,
        site={"id": site, "name": "Corner Grocery"},
        rtcc={
            "broker_url": broker.url(),
            "ca_file": broker.ca_file,
            "cert_file": cert,
            "key_file": key,
            "issuer": ISSUER,
            "jwks_file": jwks,
            "clock_leeway": "0s",
        },
        cameras=[
            {
                "id": "front-door",
                "name": "Front door",
                "rtsp_url": "rtsp://127.0.0.1:8554/front",
                "sharing": "integrated",
                "location": {"lat": 35.0844, "lon": -106.6504},
            },
            {
                "id": "parking-lot",
                "name": "Parking lot",
                "rtsp_url": "rtsp://127.0.0.1:8554/lot",
                "sharing": "registry",
                "location": {"lat": 35.0846, "lon": -106.6509},
            },
        ],
        policy={"allowed_upload_hosts": [UPLOAD_HOST]},
    )


@dataclass
class RunningAgent:
    config: AgentConfig
    session: MqttSession
    service: RequestService


@contextlib.asynccontextmanager
async def running_agent(config: AgentConfig) -> AsyncIterator[RunningAgent]:
    """The daemon's link, composed as the daemon composes it."""
    key = DeviceKey.load_or_create(config.state_dir / "device.key")
    store = ClipStore.from_config(config)
    link = Link(
        config,
        device_key=key,
        holds=store,
        registry=registry_from_config(config),
        backoff=Backoff(initial=0.05, cap=0.5),
    )
    try:
        await link.service.start()
        async with link.session:
            await link.session.wait_connected()
            yield RunningAgent(config, link.session, link.service)
    finally:
        await link.service.close()
        store.close()


def clip_args(site: str, *extra: str) -> list[str]:
    return [
        "request", "clip", "--site", site, "--camera", "front-door", "--case", "2026-000123",
        "--requester", "analyst-7", "--reason", "burglary nearby",
        "--from", "now-6m", "--to", "now-1m",
        "--upload-url", f"https://{UPLOAD_HOST}/put/clip.mp4", "--json", *extra,
    ]  # fmt: skip


def events(result_out: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, result_out.splitlines()) if line["type"] == "event"]


async def test_hub_request_is_accepted_by_the_agent_and_followed_back(
    hub_cli: HubRunner, broker: MosquittoBroker, tmp_path: Path
) -> None:
    site = f"site-{uuid.uuid4().hex[:8]}"
    config = agent_config(tmp_path / "agent", site, broker, hub_cli.home.jwks_path)
    async with running_agent(config):
        device = DeviceKey.load(config.state_dir / "device.key")
        assert hub_cli.run("sites", "trust", site, json.dumps(device.public_jwk)).code == 0

        accepted = await hub_cli.run_async(*clip_args(site, "--until", "accepted"))
        assert accepted.code == 0, accepted.err
        [event] = events(accepted.out)
        assert (event["state"], event["seq"], event["iss"]) == ("accepted", 1, site)

        pending = await hub_cli.run_async(
            *clip_args(site, "--until", "pending_approval"), "--camera", "parking-lot"
        )
        assert pending.code == 0, pending.err
        assert [e["state"] for e in events(pending.out)] == ["pending_approval"]

        inventory = await hub_cli.run_async("request", "inventory", "--site", site, "--json")
        assert inventory.code == 0, inventory.err
        [done] = events(inventory.out)
        assert done["state"] == "completed"
        assert {c["id"] for c in done["cameras"]} == {"front-door", "parking-lot"}

        unknown = await hub_cli.run_async(*clip_args(site), "--camera", "no-such-camera")
        assert unknown.code == 1
        [rejected] = events(unknown.out)
        assert (rejected["state"], rejected["code"]) == ("rejected", "unknown_camera")

        # The request service saw the hub's issuer and key: its verification passed end to end.
        assert not any(code in unknown.out for code in ("bad_signature", "unknown_key"))


async def test_request_sent_while_the_agent_is_offline(
    hub_cli: HubRunner, broker: MosquittoBroker, tmp_path: Path
) -> None:
    """Delivered after reconnecting (persistent session); one that expired meanwhile is
    rejected as `expired`."""
    site = f"site-{uuid.uuid4().hex[:8]}"
    config = agent_config(tmp_path / "agent", site, broker, hub_cli.home.jwks_path)
    async with running_agent(config):
        device = DeviceKey.load(config.state_dir / "device.key")
    assert hub_cli.run("sites", "trust", site, json.dumps(device.public_jwk)).code == 0

    # The agent is down. The RTCC sends a request that will still be valid, and one that
    # expires a second from now.
    fresh = await hub_cli.run_async(*clip_args(site, "--no-wait"))
    short = await hub_cli.run_async(
        "request", "inventory", "--site", site, "--ttl", "1s", "--no-wait", "--json"
    )
    assert fresh.code == short.code == 0
    fresh_jti = json.loads(fresh.out)["jti"]
    short_jti = json.loads(short.out)["jti"]
    await asyncio.sleep(2.5)  # let the short one expire (the agent's leeway is 0 here)

    trusted = TrustedSitesFile(hub_cli.home)
    async with broker.client() as hub:
        await hub.subscribe(Topics(site).evt, qos=1)
        async with running_agent(config):
            outcomes: dict[str, dict[str, Any]] = {}
            while len(outcomes) < 2:
                message = await next_message(hub)
                checked = check_message(message.topic.value, bytes(message.payload), trusted())
                assert checked.ok, checked.reason
                assert checked.claims is not None
                outcomes[checked.claims["req"]] = checked.claims
    assert outcomes[fresh_jti]["state"] == "accepted"
    assert (outcomes[short_jti]["state"], outcomes[short_jti]["code"]) == ("rejected", "expired")
