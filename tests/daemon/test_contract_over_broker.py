"""The issue 12 (item 6) example over the real broker and a real daemon: an RTCC that keeps to
docs/protocol.md's constraints table gets the policy's answer, not `malformed`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.identity import DeviceKey, device_key_path
from agent.wire import Topics
from tests.daemon.conftest import low_res_camera
from tests.daemon.test_link import Inbox, linked_config
from tests.support.broker import (
    MosquittoBroker,
    broker,  # noqa: F401 - pytest fixture
)
from tests.support.camsim import run_cameras
from tests.support.rtcc import RELAY_HOST, make_request


def _answers(jti: str) -> Callable[[dict[str, Any]], bool]:
    """Whether an event's claims answer request `jti`."""
    return lambda claims: claims["req"] == jti


async def test_a_short_relay_token_is_malformed_a_valid_one_gets_the_policy_answer(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    daemons: Callable[..., Any],
) -> None:
    site = f"site-{uuid.uuid4().hex[:8]}"
    topics = Topics(site)
    with run_cameras(low_res_camera()) as cams:
        config, state_dir = linked_config(tmp_path, broker, site, cams[0])  # live = false
        daemon = daemons(config)
        await asyncio.to_thread(daemon.wait_recording, "front-door")
        key = DeviceKey.load(device_key_path(state_dir))
        async with broker.client() as rtcc:
            await rtcc.subscribe(f"rtcc/v1/sites/{site}/#", qos=1)
            inbox = Inbox(rtcc, key)
            answers: dict[int, dict[str, Any]] = {}
            for length in (15, 16):
                jti = str(uuid.uuid4())
                relay = {"url": f"wss://{RELAY_HOST}/ingest/1", "token": "t" * length}
                payload = make_request(
                    "stream", jti=jti, aud=site, camera="front-door", relay=relay
                )
                await rtcc.publish(topics.req, payload, qos=1)
                answers[length] = await inbox.wait(topics.evt, _answers(jti))
        daemon.stop()
    short, valid = answers[15], answers[16]
    assert (short["state"], short["code"]) == ("rejected", "malformed")
    assert "relay.token" in short["message"]
    assert (valid["state"], valid["code"]) == ("rejected", "live_not_allowed")
