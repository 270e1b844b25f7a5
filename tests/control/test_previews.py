"""The daemon's previews (`agent.control.preview`) against a real store holding stamped footage
of the registry camera (requests wait for the owner), the real request service and delivery,
and a real HTTPS receiver: what the owner previews is what the receiver gets; holes in the
window are said in a sentence; one cut per request however many ask at once; the size cap;
previews go when the request is final, when they are stale, and on start."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.control.preview import MAX_CHUNK, Previews
from agent.link.owner_actions import OwnerActionError, OwnerActions
from agent.store import ClipStore
from camsim.sei import FrameStamp
from tests.delivery.site import (
    DeliverySite,
    delivering_site,
    delivery_config,
    final_event,
    footage_spec,
    recent,
    rfc3339,
    wall,
)
from tests.support.hub_receiver import RunningReceiver, running_receiver
from tests.support.media import MediaSpec, encode_stamped, feed, stamped_source
from tests.support.rtcc import make_request

CAMERA = "parking-lot"  # registry sharing: its requests wait for the owner
CASE = "2026-000123"


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("preview-media")


@pytest.fixture(scope="module")
def footage() -> MediaSpec:
    return footage_spec(recent(300), 30)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    async with running_receiver(tmp_path / "hub") as running:
        yield running


def record(config: AgentConfig, media_dir: Path, spec: MediaSpec) -> FrameStamp:
    path = encode_stamped(media_dir, spec)
    with (
        ClipStore.from_config(config) as store,
        stamped_source(path) as source,
        store.open_writer(CAMERA, source.stream) as writer,
    ):
        last = feed(writer, source, latency_us=20_000)
    assert last is not None
    return last


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def recorded(
    tmp_path: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> AsyncIterator[DeliverySite]:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file)
    await asyncio.to_thread(record, config, media_dir, footage)
    async with delivering_site(config) as site:
        yield site


@pytest.fixture
async def previews(recorded: DeliverySite) -> AsyncIterator[Previews]:
    made = Previews(
        recorded.service, recorded.store, recorded.config.state_dir / "previews", clock=Clock()
    )
    await made.start()
    try:
        yield made
    finally:
        await made.close()


def request(kind: str, hub: RunningReceiver, name: str, **claims: Any) -> tuple[str, bytes]:
    jti = str(uuid.uuid4())
    upload = {"url": hub.mint(CASE, jti, name), "manifest_url": hub.mint(CASE, jti, "m.jws")}
    payload = make_request(kind, jti=jti, camera=CAMERA, case=CASE, upload=upload, **claims)
    return jti, payload


async def pending(site: DeliverySite, payload: bytes, jti: str) -> None:
    await site.service.handle(payload)
    await site.sink.wait_for(jti, "pending_approval")


async def whole(previews: Previews, jti: str) -> tuple[bytes, dict[str, Any]]:
    first = await previews.chunk(jti, 0, MAX_CHUNK)
    data, offset = base64.b64decode(first["data"]), MAX_CHUNK
    while offset < first["size"]:
        data += base64.b64decode((await previews.chunk(jti, offset, MAX_CHUNK))["data"])
        offset += MAX_CHUNK
    assert len(data) == first["size"]
    return data, first


async def test_the_preview_is_the_clip_that_is_sent(
    recorded: DeliverySite, previews: Previews, hub: RunningReceiver, footage: MediaSpec
) -> None:
    start, end = wall(footage, 30), wall(footage, 200)
    jti, payload = request("clip", hub, "clip.mp4", start=rfc3339(start), end=rfc3339(end))
    await pending(recorded, payload, jti)
    # Three callers at once (a phone's page and its video element): one cut, one file.
    answers = await asyncio.gather(*(previews.chunk(jti[:8], 0, 0) for _ in range(3)))
    assert {a["size"] for a in answers} == {answers[0]["size"]} and answers[0]["data"] == ""
    assert answers[0]["id"] == jti and answers[0]["content_type"] == "video/mp4"
    assert answers[0]["notes"] == []  # the window is fully recorded
    assert sorted(p.name for p in previews.cache_dir.iterdir()) == [f"{jti}.mp4"]
    shown, _ = await whole(previews, jti)

    await OwnerActions(recorded.service).approve(jti, by="test")
    # Approved, not final yet: the kept preview is still served.
    assert (await previews.chunk(jti, 0, 16))["data"] == base64.b64encode(shown[:16]).decode()
    done = await final_event(recorded, jti)
    assert done.state.value == "completed", done
    sent = await asyncio.to_thread(hub.stored(CASE, jti, "clip.mp4").read_bytes)
    assert sent == shown
    await previews.sweep()  # final: its preview goes
    assert list(previews.cache_dir.iterdir()) == []
    with pytest.raises(OwnerActionError) as caught:
        await previews.chunk(jti, 0, 16)
    assert caught.value.code == "not_pending"


async def test_a_hole_in_the_window_is_said(
    recorded: DeliverySite, previews: Previews, hub: RunningReceiver, footage: MediaSpec
) -> None:
    start, end = wall(footage, 0) - timedelta(seconds=8), wall(footage, 60)
    jti, payload = request("clip", hub, "clip.mp4", start=rfc3339(start), end=rfc3339(end))
    await pending(recorded, payload, jti)
    answer = await previews.chunk(jti, 0, 0)
    [note] = answer["notes"]
    assert note.startswith("Part of this window is not recorded: ") and answer["size"] > 0


async def test_a_snapshot_preview_is_the_picture_that_is_sent(
    recorded: DeliverySite, previews: Previews, hub: RunningReceiver, footage: MediaSpec
) -> None:
    at = wall(footage, 100) + timedelta(milliseconds=30)
    jti, payload = request("snapshot", hub, "snapshot.jpg", at=rfc3339(at))
    await pending(recorded, payload, jti)
    shown, answer = await whole(previews, jti)
    assert answer["content_type"] == "image/jpeg" and shown[:2] == b"\xff\xd8"
    await OwnerActions(recorded.service).approve(jti, by="test")
    done = await final_event(recorded, jti)
    assert done.state.value == "completed", done
    assert await asyncio.to_thread(hub.stored(CASE, jti, "snapshot.jpg").read_bytes) == shown

    now_jti, now_payload = request("snapshot", hub, "snapshot.jpg")
    await pending(recorded, now_payload, now_jti)
    with pytest.raises(OwnerActionError) as caught:
        await previews.chunk(now_jti, 0, 0)
    assert caught.value.code == "no_preview"
    assert "the camera's picture at the moment it is sent" in caught.value.message


async def test_too_large_stale_and_leftover_previews(
    recorded: DeliverySite, previews: Previews, hub: RunningReceiver, footage: MediaSpec
) -> None:
    start, end = wall(footage, 30), wall(footage, 200)
    jti, payload = request("clip", hub, "clip.mp4", start=rfc3339(start), end=rfc3339(end))
    await pending(recorded, payload, jti)
    small = Previews(recorded.service, recorded.store, previews.cache_dir, max_bytes=10_000)
    with pytest.raises(OwnerActionError) as caught:
        await small.chunk(jti, 0, 0)
    assert (
        caught.value.code == "too_large" and "more than a preview may take" in caught.value.message
    )
    assert list(previews.cache_dir.iterdir()) == []

    await previews.chunk(jti, 0, 0)
    assert isinstance(previews.clock, Clock)
    previews.clock.now += previews.ttl + 1
    await previews.sweep()  # still pending, but stale: removed, and made again when asked
    assert list(previews.cache_dir.iterdir()) == []
    await previews.chunk(jti, 0, 0)
    assert [p.name for p in previews.cache_dir.iterdir()] == [f"{jti}.mp4"]

    # A daemon starting finds a preview an earlier run left: it goes.
    again = Previews(recorded.service, recorded.store, previews.cache_dir)
    await again.start()
    try:
        assert list(previews.cache_dir.iterdir()) == []
        assert previews.cache_dir.stat().st_mode & 0o777 == 0o700
    finally:
        await again.close()


async def test_no_preview_of_an_unknown_request(previews: Previews) -> None:
    with pytest.raises(OwnerActionError) as caught:
        await previews.chunk(str(uuid.uuid4()), 0, 0)
    assert caught.value.code == "not_found"
