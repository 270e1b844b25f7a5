"""Snapshots: the frame nearest the requested moment, from the store or the live fan-out, as a
JPEG that ffprobe reads, with a signed `kind: snapshot` manifest that `verify` accepts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import StoreConfig
from agent.identity import verify_device_jws
from agent.recorder import LiveHub
from agent.store import ClipStore, MediaChunk
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
    signed_manifest,
    wall,
)
from tests.support.ffprobe import ffprobe, video_stream
from tests.support.hub_receiver import RunningReceiver, running_receiver
from tests.support.media import MediaSpec, encode_stamped, feed, stamped_source
from tests.support.rtcc import make_request

CASE = "2026-000123"


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("snapshot-media")


@pytest.fixture(scope="module")
def footage() -> MediaSpec:
    return footage_spec(recent(300), 30)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    async with running_receiver(tmp_path / "hub") as running:
        yield running


def snapshot_request(jti: str, hub: RunningReceiver, **claims: Any) -> bytes:
    upload = {
        "url": hub.mint(CASE, jti, "snapshot.jpg"),
        "manifest_url": hub.mint(CASE, jti, "manifest.jws"),
    }
    return make_request("snapshot", jti=jti, camera=CAMERA, case=CASE, upload=upload, **claims)


async def test_snapshot_of_a_recorded_moment(
    tmp_path: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file)
    await asyncio.to_thread(record_footage, config, media_dir, footage)
    at = wall(footage, 100) + timedelta(milliseconds=30)  # frame 101 is 36 ms later
    jti = str(uuid.uuid4())
    async with delivering_site(config) as site:
        await site.service.handle(snapshot_request(jti, hub, at=rfc3339(at)))
        done = await final_event(site, jti)
        assert done.state.value == "completed", done
        assert site.temp_files() == []
        [upload, _manifest_upload] = site.uploads(jti)
    jpeg = hub.stored(CASE, jti, "snapshot.jpg")
    info = ffprobe(jpeg)
    video = video_stream(info)
    assert (video["codec_name"], video["width"], video["height"]) == ("mjpeg", 320, 240)
    manifest = Manifest.model_validate(
        verify_device_jws(signed_manifest(done), site.key.public_jwk)
    )
    assert (manifest.kind, manifest.file.container, manifest.file.codec) == (
        "snapshot",
        "jpeg",
        "mjpeg",
    )
    assert manifest.requested.start == manifest.requested.end == at
    frame_time = manifest.actual.start
    assert abs((frame_time - wall(footage, 100)).total_seconds()) < 0.002
    assert manifest.segments  # the store's hash-checked source segment
    assert upload["object"] == "snapshot" and upload["sha256"] == manifest.file.sha256
    result = verify_files(jpeg, signed_manifest(done), trusted={}, site_key=site.key.public_jwk)
    assert result.ok, [c.to_json() for c in result.checks]


async def test_snapshot_now_of_a_camera_with_no_picture_is_camera_offline(
    tmp_path: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file)
    await asyncio.to_thread(record_footage, config, media_dir, footage)  # minutes old
    jti = str(uuid.uuid4())
    async with delivering_site(config) as site:
        await site.service.handle(snapshot_request(jti, hub))
        done = await final_event(site, jti)
        assert (done.state, done.code) == ("failed", "camera_offline")
        assert site.uploads(jti) == [] and site.temp_files() == []


async def test_snapshot_of_a_moment_never_recorded_is_out_of_retention(
    tmp_path: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file)
    await asyncio.to_thread(record_footage, config, media_dir, footage)
    at = wall(footage, 0) - timedelta(minutes=30)
    jti = str(uuid.uuid4())
    async with delivering_site(config) as site:
        await site.service.handle(snapshot_request(jti, hub, at=rfc3339(at)))
        done = await final_event(site, jti)
        assert (done.state, done.code) == ("failed", "out_of_retention")


def _record_live(
    root: Path, spec_path: Path, hub: LiveHub, loop: asyncio.AbstractEventLoop
) -> None:
    """Play stamped media through a store writer whose chunks go to the live hub, as a
    recorder worker's do (via the daemon's event loop)."""
    sessions: dict[str, int] = {}

    def fan_out(chunk: MediaChunk) -> None:
        session = sessions.setdefault(chunk.session, len(sessions) + 1)
        if chunk.kind == "init":
            loop.call_soon_threadsafe(lambda: hub.publish_init(CAMERA, chunk.data, session=session))
        else:
            loop.call_soon_threadsafe(
                lambda: hub.publish_fragment(
                    CAMERA,
                    chunk.data,
                    keyframe=chunk.keyframe,
                    wall_us=chunk.wall_us,
                    duration_us=chunk.duration_us,
                )
            )

    store = ClipStore(root, config=StoreConfig(segment_seconds=10, min_free=0))
    with (
        store,
        stamped_source(spec_path) as source,
        store.open_writer(CAMERA, source.stream, on_chunk=fan_out) as writer,
    ):
        feed(writer, source, speed=4.0)


async def test_snapshot_now_comes_from_the_live_feed(
    tmp_path: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file)
    await asyncio.to_thread(record_footage, config, media_dir, footage)  # old footage only
    live = LiveHub([CAMERA])
    live_spec = footage_spec(recent(-1), 6)  # frames stamped from the next second on
    spec_path = await asyncio.to_thread(encode_stamped, media_dir, live_spec)
    jti = str(uuid.uuid4())
    loop = asyncio.get_running_loop()
    async with delivering_site(config, live=live) as site:
        await site.service.handle(snapshot_request(jti, hub))
        deadline = time.monotonic() + 20
        while live.subscriber_count(CAMERA) == 0:
            assert time.monotonic() < deadline, site.sink.states(jti)
            await asyncio.sleep(0.02)
        recorder = asyncio.create_task(
            asyncio.to_thread(_record_live, tmp_path / "live-store", spec_path, live, loop)
        )
        done = await final_event(site, jti)
        await recorder
        assert done.state.value == "completed", done
    manifest = Manifest.model_validate(
        verify_device_jws(signed_manifest(done), site.key.public_jwk)
    )
    assert manifest.segments == []  # from the live feed, not from a file on disk
    # A frame's time is its fragment's first frame time plus its offset in the stream's time
    # base, rounded to the microsecond; the stamps floor 1/15 s: they may differ by 1 µs.
    nearest = min(
        abs((manifest.actual.start - wall(live_spec, n)).total_seconds())
        for n in range(live_spec.frames)
    )
    assert nearest < 0.001, manifest.actual.start
    jpeg = hub.stored(CASE, jti, "snapshot.jpg")
    assert video_stream(ffprobe(jpeg))["codec_name"] == "mjpeg"
    assert verify_files(jpeg, signed_manifest(done), trusted={}, site_key=site.key.public_jwk).ok
