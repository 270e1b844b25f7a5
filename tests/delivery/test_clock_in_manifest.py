"""The signed manifest states the camera's clock offset and when it was measured (issue 12,
item 8): what the daemon's clock watch last wrote to camera-info.json, through a real clip
delivery to the hub's receiver."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.camera_info import remember_clock_offset
from agent.identity import verify_device_jws
from agent.wire import Manifest
from hub.verify import verify_files
from tests.delivery.site import (
    CAMERA,
    delivering_site,
    delivery_config,
    final_event,
    footage_spec,
    recent,
    record_footage,
    rfc3339,
    wall,
)
from tests.support.hub_receiver import RunningReceiver, running_receiver
from tests.support.media import MediaSpec
from tests.support.rtcc import make_request

CASE = "2026-000124"


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clock-media")


@pytest.fixture(scope="module")
def footage() -> MediaSpec:
    return footage_spec(recent(120), 20)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    async with running_receiver(tmp_path / "hub") as running:
        yield running


async def test_the_manifest_says_the_offset_and_when_it_was_measured(
    tmp_path: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file)
    await asyncio.to_thread(record_footage, config, media_dir, footage)
    measured = datetime(2026, 12, 6, 18, 0, 0, tzinfo=UTC)
    remember_clock_offset(config.state_dir, CAMERA, 41.75, measured=measured)
    jti = str(uuid.uuid4())
    start, end = wall(footage, 30), wall(footage, 150)
    async with delivering_site(config) as site:
        await site.service.handle(
            make_request(
                "clip",
                jti=jti,
                camera=CAMERA,
                case=CASE,
                start=rfc3339(start),
                end=rfc3339(end),
                upload={
                    "url": hub.mint(CASE, jti, "clip.mp4"),
                    "manifest_url": hub.mint(CASE, jti, "manifest.jws"),
                },
            )
        )
        done = await final_event(site, jti)
        assert done.state.value == "completed", done
    clip = hub.stored(CASE, jti, "clip.mp4")
    text = hub.stored(CASE, jti, "manifest.jws").read_text()
    assert verify_files(clip, text, trusted={}, site_key=site.key.public_jwk).ok
    manifest = Manifest.model_validate(verify_device_jws(text, site.key.public_jwk))
    assert manifest.clock.camera_offset_s == 41.75
    assert manifest.clock.camera_offset_measured == measured
