"""Clip and snapshot delivery through the request service: real store, real receivers (the hub's
and scripted ones), real ffprobe; every outcome ends in exactly one final event."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.daemon import StoreService
from agent.identity import verify_device_jws
from agent.ledger import build_report, read_entries
from agent.store import ClipStore
from agent.wire import Manifest
from camsim.sei import stamps_in_file
from hub.verify import verify_files
from tests.delivery.conftest import ReceiverFactory
from tests.delivery.receivers import drop, ok, status
from tests.delivery.site import (
    CAMERA,
    LATENCY_US,
    assert_clean,
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
from tests.support import tmpfs
from tests.support.ffprobe import ffprobe, video_stream
from tests.support.hub_receiver import RunningReceiver, running_receiver
from tests.support.immutable import make_immutable, make_mutable, mutable_again
from tests.support.media import MediaSpec
from tests.support.rtcc import make_request

CASE = "2026-000123"
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("delivery-media")


@pytest.fixture(scope="module")
def footage() -> MediaSpec:
    """60 s of 320x240 15 fps (a keyframe every second) that began 5 minutes ago."""
    return footage_spec(recent(300), 60)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    async with running_receiver(tmp_path / "hub") as running:
        yield running


def clip_request(
    jti: str,
    start: datetime,
    end: datetime,
    url: str,
    manifest_url: str | None = None,
    **claims: Any,
) -> bytes:
    upload = {"url": url, **({"manifest_url": manifest_url} if manifest_url else {})}
    return make_request(
        "clip",
        jti=jti,
        camera=CAMERA,
        case=CASE,
        start=rfc3339(start),
        end=rfc3339(end),
        upload=upload,
        **claims,
    )


async def in_thread(function: Callable[[], _T]) -> _T:
    return await asyncio.to_thread(function)


# --- clips -----------------------------------------------------------------------------------


async def test_clip_is_delivered_with_a_signed_manifest(
    tmp_path: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    start, end = wall(footage, 150), wall(footage, 600)  # 10 s to 40 s into the footage
    jti = str(uuid.uuid4())
    async with delivering_site(config) as site:
        await site.service.handle(
            clip_request(
                jti,
                start,
                end,
                hub.mint(CASE, jti, "clip.mp4"),
                hub.mint(CASE, jti, "manifest.jws"),
            )
        )
        done = await final_event(site, jti)
        assert done.state.value == "completed", done
        assert_clean(site, jti)
        uploads = site.uploads(jti)
    clip = hub.stored(CASE, jti, "clip.mp4")
    manifest_text = hub.stored(CASE, jti, "manifest.jws").read_text()
    assert manifest_text == done.manifest  # the same signed manifest, in the event and PUT
    # The receiver's verify passes, offline, with the site's key.
    result = verify_files(clip, manifest_text, trusted={}, site_key=site.key.public_jwk)
    assert result.ok, [c.to_json() for c in result.checks]
    manifest = Manifest.model_validate(verify_device_jws(manifest_text, site.key.public_jwk))
    assert (manifest.req, manifest.case, manifest.camera.id, manifest.kind) == (
        jti,
        CASE,
        CAMERA,
        "clip",
    )
    assert manifest.camera.vendor is None and manifest.camera.location is not None
    assert manifest.requested.start == start and manifest.requested.end == end
    assert manifest.gaps == [] and manifest.segments
    # ffprobe agrees with the manifest, and the SEI stamps cover the window.
    info = ffprobe(clip, count_frames=True)
    video = video_stream(info)
    assert int(video["nb_read_frames"]) == manifest.file.frames
    assert (video["width"], video["height"]) == (manifest.file.width, manifest.file.height)
    stamps = stamps_in_file(str(clip))
    first = min(s.capture_us for s in stamps) + LATENCY_US
    last = max(s.capture_us for s in stamps) + LATENCY_US
    assert first <= int(start.timestamp() * 1e6) < first + 1_000_000  # a keyframe ≤ 1 s before
    assert last >= int(end.timestamp() * 1e6)
    # The ledger: one upload per object, with bytes, hash, host, time and attempts; no URL.
    assert [u["object"] for u in uploads] == ["clip", "manifest"]
    clip_upload = uploads[0]
    assert clip_upload["sha256"] == manifest.file.sha256
    assert clip_upload["bytes"] == manifest.file.bytes == clip.stat().st_size
    assert clip_upload["host"] == "127.0.0.1" and clip_upload["attempts"] == 1
    assert clip_upload["seconds"] >= 0 and clip_upload["outcome"] == "uploaded"
    assert "sig=" not in str(uploads)


async def test_retries_after_a_500_and_a_dropped_connection(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    async with (
        https_receiver([status(500), drop(20_000), ok()]) as receiver,
        delivering_site(config) as site,
    ):
        url = receiver.url(f"/put/{jti}.mp4?X-Sig=abc")
        await site.service.handle(clip_request(jti, wall(footage, 15), wall(footage, 900), url))
        done = await final_event(site, jti)
        assert done.state.value == "completed", done
        [upload] = site.uploads(jti)
        assert_clean(site, jti)
    manifest = Manifest.model_validate(
        verify_device_jws(signed_manifest(done), site.key.public_jwk)
    )
    [stored] = receiver.objects.values()
    assert len(stored) == manifest.file.bytes
    assert receiver.completed[0].sha256 == manifest.file.sha256  # bytes identical
    assert [r.answered for r in receiver.received] == [500, None, 200]
    tries = upload["tries"]
    assert [t["status"] for t in tries] == [500, None, 200]
    assert tries[1]["error"] and upload["attempts"] == upload["attempts_total"] == 3
    assert [e.state.value for e in site.sink.of(jti)].count("completed") == 1


async def test_403_fails_at_once_as_upload_failed(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    async with https_receiver([status(403)]) as receiver, delivering_site(config) as site:
        await site.service.handle(
            clip_request(jti, wall(footage, 15), wall(footage, 300), receiver.url())
        )
        done = await final_event(site, jti)
        assert (done.state, done.code) == ("failed", "upload_failed")
        assert "HTTP 403" in (done.message or "")
        [upload] = site.uploads(jti)
        assert_clean(site, jti)
    assert len(receiver.received) == 1
    assert (upload["outcome"], upload["attempts"]) == ("failed", 1)
    # The server read the whole clip before it refused it: those bytes left the site.
    assert upload["bytes"] == upload["size"] == len(receiver.received[0].body)


async def test_429_with_retry_after_is_honoured(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    script = [status(429, **{"Retry-After": "1"}), ok()]
    async with https_receiver(script) as receiver, delivering_site(config, backoff_base=30) as site:
        await site.service.handle(
            clip_request(jti, wall(footage, 15), wall(footage, 300), receiver.url())
        )
        done = await final_event(site, jti)
        assert done.state.value == "completed"
        [upload] = site.uploads(jti)
    assert [t["status"] for t in upload["tries"]] == [429, 200]


async def test_a_retry_after_is_kept_across_a_restart(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    wait = 6
    async with https_receiver([status(503, **{"Retry-After": str(wait)}), ok()]) as receiver:
        async with delivering_site(config) as site:
            await site.service.handle(
                clip_request(jti, wall(footage, 15), wall(footage, 300), receiver.url())
            )
            while (row := site.delivery.jobs.get(jti)) is None or row.not_before is None:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            assert [r.answered for r in receiver.received] == [503]
        # The daemon restarts at once; the server's wish must outlive it.
        async with delivering_site(config) as again:
            done = await final_event(again, jti, within=wait + 60)
            assert done.state.value == "completed"
            assert_clean(again, jti)
    first, second = receiver.received
    assert (first.answered, second.answered) == (503, 200)
    # Measured by the server: the retry came no sooner than it asked.
    assert second.at - first.at >= wait - 0.05, second.at - first.at


async def test_window_partly_older_than_the_footage_lists_the_gap(
    tmp_path: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    oldest = wall(footage, 0)
    start, end = oldest - timedelta(seconds=30), oldest + timedelta(seconds=20)
    jti = str(uuid.uuid4())
    async with delivering_site(config) as site:
        await site.service.handle(
            clip_request(
                jti,
                start,
                end,
                hub.mint(CASE, jti, "clip.mp4"),
                hub.mint(CASE, jti, "manifest.jws"),
            )
        )
        done = await final_event(site, jti)
        assert done.state.value == "completed", done
    manifest = Manifest.model_validate(
        verify_device_jws(signed_manifest(done), site.key.public_jwk)
    )
    [gap] = manifest.gaps
    assert gap.start == start and abs((gap.end - oldest).total_seconds()) < 0.1
    assert manifest.actual.start == oldest
    result = verify_files(
        hub.stored(CASE, jti, "clip.mp4"),
        signed_manifest(done),
        trusted={},
        site_key=site.key.public_jwk,
    )
    assert result.ok
    assert [c.status for c in result.checks if c.name == "gap"] == ["warn"]


async def test_nothing_held_is_out_of_retention(
    tmp_path: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    before = wall(footage, 0) - timedelta(minutes=20)
    jti = str(uuid.uuid4())
    async with delivering_site(config) as site:
        await site.service.handle(
            clip_request(
                jti, before, before + timedelta(minutes=5), hub.mint(CASE, jti, "clip.mp4")
            )
        )
        done = await final_event(site, jti)
        assert (done.state, done.code) == ("failed", "out_of_retention")
        assert site.uploads(jti) == []
        assert_clean(site, jti)
    assert not hub.stored(CASE, jti, "clip.mp4").parent.exists()


async def test_cancel_stops_the_upload_at_once(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    async with https_receiver() as receiver, delivering_site(config) as site:
        receiver.gate = asyncio.Event()  # the receiver holds the upload open
        await site.service.handle(
            clip_request(jti, wall(footage, 15), wall(footage, 800), receiver.url())
        )
        while not receiver.received:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await site.service.handle(make_request("cancel", target=jti))
        done = await final_event(site, jti)
        assert done.state.value == "cancelled"
        await asyncio.wait_for(receiver.disconnected.wait(), 10)
        while site.delivery.running():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        assert_clean(site, jti)
        receiver.gate.set()
        await asyncio.sleep(0.3)
        assert site.sink.states(jti)[-1] == "cancelled"
    assert receiver.completed == []


async def test_a_restart_resumes_the_upload_and_it_completes_once(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    async with https_receiver() as receiver:
        receiver.gate = asyncio.Event()
        async with delivering_site(config) as site:
            await site.service.handle(
                clip_request(jti, wall(footage, 15), wall(footage, 800), receiver.url())
            )
            while not receiver.received:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            row = site.delivery.jobs.get(jti)
            assert row is not None and row.prepared
            first_manifest = row.manifest
        # Stopped mid-upload: the job and its prepared clip are kept for the restart.
        assert site.temp_files() == [row.file]
        receiver.gate.set()
        async with delivering_site(config) as again:
            done = await final_event(again, jti)
            assert done.state.value == "completed"
            assert done.manifest == first_manifest  # the prepared clip was re-used
            cut, upload = again.uploads(jti)
            # The first start's attempt, cut by the stop, is recorded too: its bytes left.
            assert (cut["outcome"], cut["message"]) == ("failed", "cancelled")
            assert [t["error"] for t in cut["tries"]] == ["cancelled"]
            assert cut["bytes"] == cut["tries"][0]["bytes_sent"] > 0
            assert upload["outcome"] == "uploaded" and upload["attempts_total"] == 2
            starts = [e for e in again.ledger("upload_started") if e.data["jti"] == jti]
            assert len(starts) == 2, "each sending recorded before its first byte"
            assert_clean(again, jti)
    assert len(receiver.completed) == 1
    states = [e.state.value for e in site.sink.of(jti) + again.sink.of(jti)]
    assert states.count("completed") == 1 and set(states) <= {"accepted", "progress", "completed"}
    assert [e.seq for e in site.sink.of(jti) + again.sink.of(jti)] == list(
        range(1, len(states) + 1)
    )


async def test_a_request_that_expired_during_a_restart_fails(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    async with https_receiver() as receiver:
        receiver.gate = asyncio.Event()
        async with delivering_site(config) as site:
            request = clip_request(
                jti, wall(footage, 15), wall(footage, 300), receiver.url(), exp=int(time.time()) + 3
            )
            await site.service.handle(request)
            while not receiver.received:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await asyncio.sleep(3.5)
        async with delivering_site(config) as again:
            done = await final_event(again, jti)
            assert (done.state, done.code) == ("failed", "expired")
            assert_clean(again, jti)
    assert receiver.completed == []


# --- the temporary directory filling up ---------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted (lazily, whatever happened) after the test."""
    with tmpfs.small_disk(tmp_path, size="2m", mode="0700", name="small") as mount:
        yield mount


def _fill(disk: Path) -> None:
    with (disk / "filler").open("wb") as handle:
        while (free := shutil.disk_usage(disk).free) > 0:
            try:
                handle.write(b"\0" * min(65536, free))
                handle.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return


async def test_too_little_temporary_space_fails_cleanly(
    tmp_path: Path, small_disk: Path, hub: RunningReceiver, media_dir: Path
) -> None:
    big = footage_spec(recent(600), 60, width=640, height=480, bitrate=2_000_000)
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file, temp_dir=small_disk)
    await in_thread(lambda: record_footage(config, media_dir, big))
    jti = str(uuid.uuid4())
    async with delivering_site(config) as site:
        await site.service.handle(
            clip_request(jti, wall(big, 15), wall(big, 800), hub.mint(CASE, jti, "clip.mp4"))
        )
        done = await final_event(site, jti)
        assert (done.state, done.code) == ("failed", "internal")
        message = done.message or ""
        assert "not enough space" in message and "temporary directory" in message
        assert_clean(site, jti)
    assert os.listdir(small_disk) == []


class FillsTheDiskBeforeCutting:
    """The daemon's store component, except that the temporary disk fills up just as the clip
    starts being cut (after the free-space check passed): ENOSPC in the middle of the cut."""

    def __init__(self, inner: StoreService, disk: Path) -> None:
        self.inner, self.disk, self.calls = inner, disk, 0

    @property
    def store(self) -> ClipStore:
        return self.inner.store

    async def run(self, function: Callable[[ClipStore], _T]) -> _T:
        self.calls += 1
        if self.calls == 2:  # 1: the size estimate, 2: the cut
            await asyncio.to_thread(_fill, self.disk)
        return await self.inner.run(function)


async def test_temporary_disk_filling_up_while_cutting_fails_cleanly(
    tmp_path: Path, small_disk: Path, hub: RunningReceiver, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=hub.ca_file, temp_dir=small_disk)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    inner = StoreService(config)
    await inner.start()
    try:
        store = FillsTheDiskBeforeCutting(inner, small_disk)
        async with delivering_site(config, store=store) as site:
            await site.service.handle(
                clip_request(
                    jti, wall(footage, 15), wall(footage, 600), hub.mint(CASE, jti, "clip.mp4")
                )
            )
            done = await final_event(site, jti)
            assert (done.state, done.code) == ("failed", "internal")
            assert "filled up" in (done.message or "")
            assert [h for h in inner.store.holds() if jti in h.id] == []
            assert site.delivery.jobs.get(jti) is None
            assert os.listdir(small_disk) == ["filler"]  # no partial clip
    finally:
        await inner.stop()


async def test_a_restart_cuts_the_clip_again_if_its_file_is_gone(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    async with https_receiver() as receiver:
        receiver.gate = asyncio.Event()
        async with delivering_site(config) as site:
            await site.service.handle(
                clip_request(jti, wall(footage, 15), wall(footage, 500), receiver.url())
            )
            while not receiver.received:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            row = site.delivery.jobs.get(jti)
            assert row is not None and row.file is not None
            prepared = site.delivery.temp_dir / row.file
        await in_thread(prepared.unlink)
        receiver.gate.set()
        async with delivering_site(config) as again:
            done = await final_event(again, jti)
            assert done.state.value == "completed"
            assert_clean(again, jti)
    manifest = Manifest.model_validate(
        verify_device_jws(signed_manifest(done), again.key.public_jwk)
    )
    assert receiver.completed[-1].sha256 == manifest.file.sha256
    # The hold kept the footage: the same window, cut again, is the same clip.
    assert (
        manifest.file.sha256
        == Manifest.model_validate(
            verify_device_jws(row.manifest or "", again.key.public_jwk)
        ).file.sha256
    )


# --- the ledger first (issue 12, item 5) -------------------------------------------------------


async def test_a_server_dying_mid_transfer_counts_the_bytes_that_left(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    async with (
        https_receiver([drop(200_000), status(403)]) as receiver,
        delivering_site(config) as site,
    ):
        await site.service.handle(
            clip_request(jti, wall(footage, 15), wall(footage, 900), receiver.url())
        )
        done = await final_event(site, jti)
        assert (done.state, done.code) == ("failed", "upload_failed")
        [upload] = site.uploads(jti)
    cut, refused = receiver.received
    assert len(cut.body) >= 200_000 and cut.answered is None
    assert upload["bytes"] == sum(t["bytes_sent"] for t in upload["tries"])
    assert upload["bytes"] >= len(cut.body) + len(refused.body)
    report = build_report(read_entries(config.state_dir / "ledger"))
    assert report.total.bytes_uploaded == upload["bytes"], "the report counts what left"


async def test_nothing_is_uploaded_when_its_ledger_entry_cannot_be_written(
    tmp_path: Path,
    https_receiver: ReceiverFactory,
    test_ca: Any,
    media_dir: Path,
    footage: MediaSpec,
) -> None:
    """The ledger cannot be written (a failing disk) between the decision and the upload: the
    upload's entry cannot be made durable, so not a byte goes to the server."""
    config = delivery_config(tmp_path / "state", ca_file=test_ca.cert_path)
    await in_thread(lambda: record_footage(config, media_dir, footage))
    jti = str(uuid.uuid4())
    ledger_file = config.state_dir / "ledger" / "ledger.jsonl"
    with mutable_again(ledger_file):
        async with https_receiver() as receiver, delivering_site(config) as site:
            # The delivery reports through the service: while the test holds the service, the
            # clip is cut and the delivery waits to record its upload.
            async with site.service._lock:
                await site.service._handle(
                    clip_request(jti, wall(footage, 15), wall(footage, 300), receiver.url())
                )
                while not ((row := site.delivery.jobs.get(jti)) and row.prepared):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                assert site.delivery.running() == [jti]
                make_immutable(ledger_file)
            while site.delivery.running():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            assert receiver.received == [], "nothing left the site"
            make_mutable(ledger_file)
            kinds = [e.kind for e in read_entries(config.state_dir / "ledger")]
            assert kinds == ["request_received", "hold_placed", "decision"]
            # Its final state could not be recorded either: it is still in delivery, and a
            # restart (with a working disk) takes it up again.
            assert site.sink.states(jti) == ["accepted"]
