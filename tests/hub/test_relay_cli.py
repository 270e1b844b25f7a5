"""`rtcc-hub request stream`: a relay session minted on this hub, its tokens in the signed
request and the viewer URL printed; only hashes kept on disk."""

from __future__ import annotations

import asyncio
import json

import jwt

from agent.wire import Topics
from hub.relay_sessions import SessionStore, token_hash
from hub.server import update_serve_settings
from tests.hub.conftest import HubRunner
from tests.support.broker import MosquittoBroker, next_message

SITE = "site-relay-cli"


def stream_args(*extra: str) -> list[str]:
    return [
        "request", "stream", "--site", SITE, "--camera", "front-door", "--case", "2026-000900",
        "--requester", "analyst-9", "--max-seconds", "60", "--no-wait", *extra,
    ]  # fmt: skip


async def test_stream_request_mints_a_session_and_prints_the_viewer_url(
    hub_cli: HubRunner, broker: MosquittoBroker
) -> None:
    update_serve_settings(hub_cli.home, public_url="https://relay.rtcc.test:8443")
    async with broker.client() as hub:
        await hub.subscribe(Topics(SITE).req, qos=1)
        result = await hub_cli.run_async(*stream_args("--json"))
        assert result.code == 0, result.err
        published = await next_message(hub)
    lines = [json.loads(line) for line in result.out.splitlines()]
    sent = next(line for line in lines if line["type"] == "sent")
    relay = next(line for line in lines if line["type"] == "relay")
    session = relay["session"]
    assert relay["viewer_url"].startswith(f"https://relay.rtcc.test:8443/live/{session}.mp4?token=")
    assert relay["page_url"].startswith(f"https://relay.rtcc.test:8443/live/{session}?token=")

    claims = jwt.decode(bytes(published.payload), options={"verify_signature": False})
    assert claims["jti"] == sent["jti"] and claims["cmd"] == "stream"
    assert claims["relay"]["url"] == f"wss://relay.rtcc.test:8443/ingest/{session}"
    record = SessionStore(hub_cli.home).get(session)
    assert record is not None
    assert record.request == claims["jti"] and record.camera == "front-door"
    assert record.publisher_sha256 == token_hash(claims["relay"]["token"])
    viewer_token = relay["viewer_url"].split("token=", 1)[1]
    assert record.viewer_sha256 == token_hash(viewer_token)
    stored = SessionStore(hub_cli.home).path.read_text()
    assert claims["relay"]["token"] not in stored and viewer_token not in stored
    # The session outlives the request's lifetime by the stream's length (and a minute).
    assert (record.expires - record.created).total_seconds() == 10 * 60 + 60 + 60

    plain = await hub_cli.run_async(*stream_args())
    assert plain.code == 0, plain.err
    assert "watch it: https://relay.rtcc.test:8443/live/" in plain.out


async def test_stream_request_needs_a_relay(hub_cli: HubRunner) -> None:
    result = await asyncio.to_thread(hub_cli.run, *stream_args())
    assert result.code == 2
    assert "start `rtcc-hub serve`" in result.err
    update_serve_settings(hub_cli.home, public_url="https://relay.rtcc.test:8443")
    args = stream_args()
    no_camera = args[:4] + args[6:]
    assert "--camera" not in no_camera
    result = await asyncio.to_thread(hub_cli.run, *no_camera)
    assert result.code == 2 and "stream needs --camera" in result.err
    no_limit = [a for a in args if a not in ("--max-seconds", "60")]
    result = await asyncio.to_thread(hub_cli.run, *no_limit)
    assert result.code == 2 and "--max-seconds" in result.err
    assert not SessionStore(hub_cli.home).path.exists()
