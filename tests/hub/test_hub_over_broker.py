"""`rtcc-hub sites`, `watch` and `request` against real agent sessions over the test broker."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jwt
import pytest

import hub.cli
from agent.identity import DeviceKey
from agent.link import Backoff, BrokerSettings, MqttSession
from agent.link.presence import Claims
from agent.wire import Event, EventState, RejectCode, Topics
from hub.keys import load_signing_key
from tests.hub.conftest import HubRunner
from tests.support.broker import MosquittoBroker, eventually, next_message
from tests.support.rtcc import ISSUER

NEAR = (35.0844, -106.6504)
METRES_PER_DEGREE_LAT = 111_195.0


def north_of_near(metres: float) -> dict[str, float]:
    return {"lat": NEAR[0] + metres / METRES_PER_DEGREE_LAT, "lon": NEAR[1]}


def camera(camera_id: str, metres: float | None, **extra: Any) -> dict[str, Any]:
    listing: dict[str, Any] = {
        "id": camera_id,
        "name": camera_id.replace("-", " ").title(),
        "sharing": "integrated",
        "live": False,
        "verdict": "pass",
        "online": True,
        "footage_hours": 48.0,
    }
    if metres is not None:
        listing["location"] = north_of_near(metres)
    return {**listing, **extra}


def new_site() -> str:
    return f"site-{uuid.uuid4().hex[:8]}"


Handler = Callable[[MqttSession, bytes], Awaitable[None]]


@contextlib.asynccontextmanager
async def running_site(
    broker: MosquittoBroker,
    site: str,
    key: DeviceKey,
    *,
    cameras: list[dict[str, Any]] | None = None,
    handler: Handler | None = None,
) -> AsyncIterator[MqttSession]:
    """A real agent session for `site`, listing `cameras`, answering requests with `handler`."""
    cert, cert_key = broker.issue_client_cert(site)
    holder: list[MqttSession] = []

    async def on_request(payload: bytes) -> None:
        if handler is not None:
            await handler(holder[0], payload)

    def registry() -> Claims:
        return {"site": {"id": site, "name": f"Shop {site}"}, "cameras": cameras or []}

    session = MqttSession(
        site_id=site,
        broker=BrokerSettings(
            host=broker.host,
            port=broker.cert_port,
            ca_file=broker.ca_file,
            cert_file=cert,
            key_file=cert_key,
        ),
        device_key=key,
        on_request=on_request,
        registry=registry,
        backoff=Backoff(initial=0.05, cap=0.5),
    )
    holder.append(session)
    async with session:
        await session.wait_connected()
        yield session


def trust(hub_cli: HubRunner, site: str, key: DeviceKey) -> None:
    assert hub_cli.run("sites", "trust", site, json.dumps(key.public_jwk)).code == 0


async def test_sites_near_sorts_by_distance_and_flags_bad_registries(
    hub_cli: HubRunner, broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    good_1, good_2, forged, untrusted = (new_site() for _ in range(4))
    keys = {site: DeviceKey.generate() for site in (good_1, good_2, forged, untrusted)}
    trust(hub_cli, good_1, keys[good_1])
    trust(hub_cli, good_2, keys[good_2])
    trust(hub_cli, forged, DeviceKey.generate())  # the hub knows another key for this site
    async with (
        running_site(broker, good_1, keys[good_1], cameras=[camera("door", 100)]),
        running_site(
            broker,
            good_2,
            keys[good_2],
            cameras=[camera("lot", 50), camera("far", 1000, live=True), camera("nowhere", None)],
        ),
        running_site(broker, forged, keys[forged], cameras=[camera("fake", 1)]),
        running_site(broker, untrusted, keys[untrusted], cameras=[camera("unknown", 2)]),
    ):
        ours = {good_1, good_2, forged, untrusted}
        near = f"{NEAR[0]},{NEAR[1]}"
        result = await hub_cli.run_async("sites", "--near", near, "--json")
        assert result.code == 0, result.err
        rows = [row for row in json.loads(result.out) if row["site"] in ours]
        listed = [(row["site"], row["camera"]) for row in rows if row["camera"]]
        assert listed == [
            (good_2, "lot"),
            (good_1, "door"),
            (good_2, "far"),
            (good_2, "nowhere"),  # no location: last
        ]
        distances = [row["distance_m"] for row in rows if row["camera"]]
        assert distances[:3] == pytest.approx([50, 100, 1000], abs=0.5)
        assert distances[3] is None
        flagged = {row["site"]: row for row in rows if row["camera"] is None}
        assert flagged[forged]["signature"] == "forged"
        assert flagged[untrusted]["signature"] == "untrusted"
        assert all(row["signature"] == "verified" for row in rows if row["camera"])
        far = next(row for row in rows if row["camera"] == "far")
        assert far["live"] is True and far["site_online"] is True and far["footage_hours"] == 48

        within = await hub_cli.run_async("sites", "--near", near, "--radius", "300m", "--json")
        rows = [row for row in json.loads(within.out) if row["site"] in ours]
        assert [(r["site"], r["camera"]) for r in rows if r["camera"]] == [
            (good_2, "lot"),
            (good_1, "door"),
        ]
        assert {r["site"] for r in rows if r["camera"] is None} == {forged, untrusted}

        monkeypatch.setattr(hub.cli.console, "width", 240)  # as on a wide terminal
        table = await hub_cli.run_async("sites", "--near", near, "--radius", "300m")
        assert table.code == 0
        lines = {line.split()[1]: line for line in table.out.splitlines() if "site-" in line}
        assert "50 m" in lines[good_2] and "✓ verified" in lines[good_2]
        assert "✗ forged" in lines[forged] and "? untrusted" in lines[untrusted]

    # Stopped sites publish `online: false`; the map says so.
    result = await hub_cli.run_async("sites", "--json")
    rows = [row for row in json.loads(result.out) if row["site"] == good_1]
    assert rows and rows[0]["site_online"] is False


async def test_watch_marks_a_forged_event(hub_cli: HubRunner, broker: MosquittoBroker) -> None:
    site = new_site()
    key = DeviceKey.generate()
    trust(hub_cli, site, key)
    async with running_site(broker, site, key) as session:
        async with hub_cli.process("watch", "--site", site, "--json", "--count", "4") as proc:
            assert proc.stdout is not None
            # Retained status and registry arrive first: the watcher is subscribed.
            first = [json.loads(await proc.stdout.readline()) for _ in range(2)]
            assert {m["kind"] for m in first} == {"status", "registry"}
            assert all(m["verdict"] == "verified" for m in first)

            genuine = Event(iss=site, iat=1, req="r-1", state=EventState.ACCEPTED, seq=1)
            await session.emit(genuine)
            await eventually(lambda: session.outbox_size == 0)  # out before the forgery
            impostor = DeviceKey.generate()
            forged = impostor.sign(genuine.model_dump(mode="json", exclude_none=True) | {"seq": 2})
            # Someone with broker access (not the site's device key) writes on the site's topic.
            async with broker.client() as intruder:
                await intruder.publish(Topics(site).evt, forged.encode(), qos=1)

            lines = [json.loads(await proc.stdout.readline()) for _ in range(2)]
            assert await proc.wait() == 0
        assert [(m["kind"], m["verdict"]) for m in lines] == [
            ("evt", "verified"),
            ("evt", "forged"),
        ]
        assert lines[0]["claims"]["req"] == "r-1"
        assert lines[1]["claims"] is None and "kid" in lines[1]["reason"]


async def test_watch_human_output_marks_each_message(
    hub_cli: HubRunner, broker: MosquittoBroker
) -> None:
    site = new_site()
    key = DeviceKey.generate()  # not trusted: every message is "untrusted"
    async with running_site(broker, site, key):
        result = await hub_cli.run_async("watch", "--site", site, "--count", "2")
    assert result.code == 0
    lines = result.out.strip().splitlines()
    assert len(lines) == 2 and all("? untrusted" in line and site in line for line in lines)


async def test_request_no_wait_publishes_a_token_the_site_can_verify(
    hub_cli: HubRunner, broker: MosquittoBroker
) -> None:
    site = new_site()
    async with broker.client(site) as listener:
        await listener.subscribe(Topics(site).req, qos=1)
        result = await hub_cli.run_async(
            "request", "inventory", "--site", site, "--no-wait", "--json"
        )
        assert result.code == 0, result.err
        sent = json.loads(result.out)
        message = await next_message(listener)
    token = bytes(message.payload).decode()
    keys = jwt.PyJWKSet.from_json(hub_cli.home.jwks_path.read_text())
    header = jwt.get_unverified_header(token)
    assert header["kid"] == load_signing_key(hub_cli.home).kid
    claims = jwt.decode(
        token, keys[header["kid"]].key, algorithms=["EdDSA"], audience=site, issuer=ISSUER
    )
    assert claims["jti"] == sent["jti"] and claims["cmd"] == "inventory"


def responder(states: list[dict[str, Any]], *, forger: MosquittoBroker | None = None) -> Handler:
    """A site that answers every request with `states` as its events (signed by the session).
    With `forger`, someone with broker access but not the site's device key first publishes a
    `completed` event for the request."""

    async def answer(session: MqttSession, payload: bytes) -> None:
        jti = jwt.decode(payload, options={"verify_signature": False})["jti"]
        if forger is not None:
            forged = DeviceKey.generate().sign(
                {"iss": session.site_id, "iat": 1, "req": jti, "state": "completed", "seq": 1}
            )
            async with forger.client() as client:
                await client.publish(session.topics.evt, forged.encode(), qos=1)
        for seq, fields in enumerate(states, start=1):
            await session.emit(Event(iss=session.site_id, iat=1, req=jti, seq=seq, **fields))

    return answer


async def test_request_follows_events_to_completion(
    hub_cli: HubRunner, broker: MosquittoBroker
) -> None:
    site = new_site()
    key = DeviceKey.generate()
    trust(hub_cli, site, key)
    states: list[dict[str, Any]] = [
        {"state": "accepted"},
        {"state": "progress", "bytes_sent": 500, "bytes_total": 1000},
        {"state": "progress", "bytes_sent": 1000, "bytes_total": 1000},
        {"state": "completed", "manifest": "a.b.c"},
    ]
    async with running_site(broker, site, key, handler=responder(states, forger=broker)):
        result = await hub_cli.run_async(
            "request", "clip", "--site", site, "--camera", "door", "--case", "C-1",
            "--from", "now-6m", "--to", "now-1m", "--upload-url", "https://up.example/x", "--json",
        )  # fmt: skip
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert lines[0]["type"] == "sent"
    assert lines[1] == {"type": "ignored", "verdict": "forged", "reason": lines[1]["reason"]}
    events = [line for line in lines if line["type"] == "event"]
    assert [e["state"] for e in events] == ["accepted", "progress", "progress", "completed"]
    assert all(e["req"] == lines[0]["jti"] for e in events)


async def test_request_rejected_exits_1_with_code_and_message(
    hub_cli: HubRunner, broker: MosquittoBroker
) -> None:
    site = new_site()
    key = DeviceKey.generate()
    trust(hub_cli, site, key)
    rejected = [
        {"state": "rejected", "code": RejectCode.NOT_SHARED, "message": "camera is private"}
    ]
    async with running_site(broker, site, key, handler=responder(rejected)):
        result = await hub_cli.run_async(
            "request", "snapshot", "--site", site, "--camera", "door", "--case", "C-1",
            "--upload-url", "https://up.example/s",
        )  # fmt: skip
    assert result.code == 1
    assert "rejected not_shared: camera is private" in result.out


async def test_request_until_accepted_and_timeout(
    hub_cli: HubRunner, broker: MosquittoBroker
) -> None:
    site = new_site()
    key = DeviceKey.generate()
    trust(hub_cli, site, key)
    pending = [{"state": "pending_approval"}]
    async with running_site(broker, site, key, handler=responder(pending)):
        waiting = await hub_cli.run_async(
            "request", "inventory", "--site", site, "--until", "pending_approval"
        )
        assert waiting.code == 0 and "pending_approval" in waiting.out
        assert "waiting for the site owner" in waiting.out
        timed_out = await hub_cli.run_async(
            "request", "inventory", "--site", site, "--until", "accepted", "--timeout", "1s"
        )
        assert timed_out.code == 3 and "still waiting (pending_approval)" in timed_out.err


async def test_request_refuses_to_follow_an_untrusted_site(hub_cli: HubRunner) -> None:
    result = await hub_cli.run_async("request", "inventory", "--site", "site-nobody")
    assert result.code == 2 and "not a trusted site" in result.err
    missing = await hub_cli.run_async("request", "clip", "--site", "site-x", "--no-wait")
    assert missing.code == 2 and "clip needs --" in missing.err  # --case / --camera
