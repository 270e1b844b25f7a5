"""Live fan-out from a real recorder: the very fragments written to the store, to several
consumers, a slow one skipping to keyframes; and the hub's queue policy on its own."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from agent.recorder.live import GopCache, LiveChunk, LiveHub, UnknownCamera, codec_signature
from camsim.sei import stamps_in_file
from tests.recorder.conftest import (
    camera_config,
    is_recording,
    low_res_camera,
    probe,
    recording,
    wait_for,
)
from tests.support.camsim import CamsimRun


def _write(path: Path, chunks: list[LiveChunk]) -> Path:
    path.write_bytes(b"".join(c.data for c in chunks))
    return path


def _decode_all(path: Path) -> int:
    """Decode every frame with PyAV (what a player does); the number of frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        last_pts = -1
        frames = 0
        for frame in container.decode(stream):
            assert frame.pts is not None and frame.pts > last_pts, "timestamps went backwards"
            last_pts = frame.pts
            frames += 1
        return frames


async def test_two_subscribers_one_slow(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    cam = run_camsim(low_res_camera())[0]
    async with recording([camera_config(cam)], tmp_path) as rig:
        hub = rig.supervisor.live
        await wait_for(is_recording(rig), 30, what="recording")
        await asyncio.sleep(1.5)
        assert hub.bytes_received("cam1") == 0  # nobody watches: nothing crosses from the worker

        fast = hub.subscribe("cam1")
        slow = hub.subscribe("cam1", max_queue_bytes=40_000)
        fast_chunks: list[LiveChunk] = []
        slow_chunks: list[LiveChunk] = []
        segments: set[str] = set()
        peak = 0
        deadline = time.monotonic() + 15  # more than a 10 s segment: a boundary is crossed

        async def read_fast() -> None:
            async for chunk in fast:
                fast_chunks.append(chunk)
                segments.add(rig.state().segment or "")
                if time.monotonic() > deadline:
                    break

        async def read_slow() -> None:
            nonlocal peak
            async for chunk in slow:
                slow_chunks.append(chunk)
                peak = max(peak, slow.queued_bytes)
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(2.0)  # a consumer on a bad link

        await asyncio.wait_for(asyncio.gather(read_fast(), read_slow()), 60)
        await fast.aclose()
        await slow.aclose()
        assert hub.subscriber_count("cam1") == 0
        received = hub.bytes_received("cam1")
        await asyncio.sleep(2.5)
        assert hub.bytes_received("cam1") <= received + 200_000  # in flight, then nothing more
        settled = hub.bytes_received("cam1")
        await asyncio.sleep(2)
        assert hub.bytes_received("cam1") == settled

    assert len(segments - {""}) >= 2, "the feed did not cross a segment boundary"
    # The fast consumer: init once, then every fragment, first one a keyframe, none skipped.
    assert [c.kind for c in fast_chunks].count("init") == 1
    assert fast_chunks[0].kind == "init" and fast_chunks[1].keyframe
    assert fast.skipped == 0
    walls = [c.wall_time for c in fast_chunks[1:] if c.wall_time is not None]
    assert walls == sorted(walls) and len(walls) == len(fast_chunks) - 1
    fast_file = _write(tmp_path / "fast.mp4", fast_chunks)
    info = await probe(fast_file)
    assert float(info["format"]["duration"]) > 12
    fast_stamps = await asyncio.to_thread(stamps_in_file, str(fast_file))
    numbers = [s.frame_number for s in fast_stamps]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "frames lost"
    assert await asyncio.to_thread(_decode_all, fast_file) == len(fast_stamps)

    # The slow consumer: skipped to keyframes, bounded memory, still a playable stream.
    assert slow.skipped > 0
    biggest = max(len(c.data) for c in fast_chunks)
    assert peak <= 40_000 + biggest
    assert slow_chunks[0].kind == "init"
    media = slow_chunks[1:]
    assert media[0].keyframe
    for before, after in itertools.pairwise(media):
        assert before.wall_time is not None and after.wall_time is not None
        follows = (after.wall_time - before.wall_time).total_seconds() * 1e6
        if follows > before.duration_us + 100_000:  # something was skipped in between
            assert after.keyframe
    slow_file = _write(tmp_path / "slow.mp4", slow_chunks)
    await probe(slow_file)
    assert await asyncio.to_thread(_decode_all, slow_file) > 0


# -- the hub's policy, with synthetic chunks (the hub never parses media fragments) ----------


def _init(width: int) -> bytes:
    """A real init segment from PyAV's mp4 muxer for an H.264 stream of the given width."""
    import io

    out = io.BytesIO()
    with av.open(out, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov"}) as c:
        stream = c.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = width, 240, "yuv420p"
        frame = av.VideoFrame(width, 240, "yuv420p")
        for packet in stream.encode(frame):
            c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    data = out.getvalue()
    moof = data.find(b"moof") - 4
    return data[:moof]


def _wall(n: int) -> int:
    return int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1e6) + n * 1_000_000


def test_codec_signature_tells_parameter_changes_from_new_files() -> None:
    a, b = _init(320), _init(320)
    assert codec_signature(a) == codec_signature(b)
    assert codec_signature(_init(352)) != codec_signature(a)
    assert codec_signature(b"garbage") == b"garbage"  # unparseable: any change is a change


async def test_hub_policy_join_skip_and_end() -> None:
    demand: list[tuple[str, bool]] = []
    hub = LiveHub(["cam"], max_queue_bytes=3000, on_demand=lambda c, w: demand.append((c, w)))
    with pytest.raises(UnknownCamera):
        hub.subscribe("nope")
    init = _init(320)
    feed = hub.subscribe("cam")
    assert demand == [("cam", True)]
    hub.publish_init("cam", init, session=1)
    hub.publish_fragment("cam", b"p" * 1000, keyframe=False, wall_us=_wall(0))  # joins later
    hub.publish_fragment("cam", b"k" * 1000, keyframe=True, wall_us=_wall(1))
    hub.publish_fragment("cam", b"p" * 1000, keyframe=False, wall_us=_wall(2))
    assert (await anext(feed)).kind == "init"
    assert (await anext(feed)).data[:1] == b"k"
    assert (await anext(feed)).data[:1] == b"p"
    # Fall behind: the queue overflows, what was not read is dropped, resume at a keyframe.
    for n in range(3, 12):
        hub.publish_fragment("cam", b"p" * 1000, keyframe=n % 5 == 0, wall_us=_wall(n))
        assert feed.queued_bytes <= 3000
    chunks = [await anext(feed) for _ in range(feed.queued_bytes // 1000)]
    assert [c.wall_time for c in chunks] == [
        datetime.fromtimestamp(_wall(n) / 1e6, UTC) for n in (10, 11)
    ]
    assert chunks[0].keyframe and feed.skipped == 7  # 3..5 dropped unread, 6..9 not keyframes
    # The same session's next segment file repeats an identical init: not sent again.
    hub.publish_init("cam", init, session=1)
    hub.publish_fragment("cam", b"k" * 10, keyframe=True, wall_us=_wall(10))
    assert (await anext(feed)).kind == "media"
    # A reconnect (new session): the init comes again, flagged, before its first keyframe.
    hub.interrupt("cam")
    hub.publish_fragment("cam", b"x", keyframe=True, wall_us=_wall(11))  # no init yet: dropped
    hub.publish_init("cam", init, session=2)
    hub.publish_fragment("cam", b"k" * 10, keyframe=True, wall_us=_wall(12))
    again = await anext(feed)
    assert again.kind == "init" and again.discontinuity
    assert (await anext(feed)).wall_time == datetime.fromtimestamp(_wall(12) / 1e6, UTC)
    # Changed codec parameters within a session: a new init (not a discontinuity).
    hub.publish_init("cam", _init(352), session=2)
    hub.publish_fragment("cam", b"k" * 10, keyframe=True, wall_us=_wall(13))
    changed = await anext(feed)
    assert changed.kind == "init" and not changed.discontinuity
    # The recorder stops for good: the feed drains and ends.
    hub.publish_fragment("cam", b"p" * 10, keyframe=False, wall_us=_wall(14))
    hub.close_camera("cam")
    rest = [c.wall_time async for c in feed]
    assert rest == [datetime.fromtimestamp(_wall(n) / 1e6, UTC) for n in (13, 14)]
    with pytest.raises(StopAsyncIteration):
        await anext(feed)
    await feed.aclose()


async def test_last_subscriber_leaving_turns_forwarding_off() -> None:
    demand: list[bool] = []
    hub = LiveHub(["cam"], on_demand=lambda c, w: demand.append(w))
    one, two = hub.subscribe("cam"), hub.subscribe("cam")
    await one.aclose()
    assert demand == [True] and hub.wanted("cam")
    async with two:
        pass
    assert demand == [True, False] and not hub.wanted("cam")
    hub.close()
    late = hub.subscribe("cam")
    with pytest.raises(StopAsyncIteration):
        await anext(late)


async def test_a_new_viewer_starts_at_the_last_keyframe_at_once() -> None:
    hub = LiveHub(["cam"])
    first = hub.subscribe("cam")
    hub.publish_init("cam", _init(320), session=1)
    for n, key in enumerate((True, False, True, False, False)):
        hub.publish_fragment("cam", bytes([n]) * 100, keyframe=key, wall_us=_wall(n))
    # A second viewer joins between keyframes: it gets the init and the GOP so far, now.
    late = hub.subscribe("cam")
    assert late.queued_bytes == len(_init(320)) + 300
    assert (await anext(late)).kind == "init"
    got = [(await anext(late)).wall_time for _ in range(3)]
    assert got == [datetime.fromtimestamp(_wall(n) / 1e6, UTC) for n in (2, 3, 4)]
    # A reconnect forgets the old GOP: a joiner then waits for the new session's keyframe.
    hub.interrupt("cam")
    hub.publish_init("cam", _init(320), session=2)
    hub.publish_fragment("cam", b"p" * 100, keyframe=False, wall_us=_wall(5))
    joiner = hub.subscribe("cam")
    assert joiner.queued_bytes == 0
    # Everyone leaves (the worker stops forwarding): nothing stale is kept for the next viewer.
    hub.publish_fragment("cam", b"k" * 100, keyframe=True, wall_us=_wall(6))
    for feed in (first, late, joiner):
        await feed.aclose()
    assert not hub.wanted("cam")
    assert hub.subscribe("cam").queued_bytes == 0


def test_gop_cache_is_bounded() -> None:
    cache: GopCache[LiveChunk] = GopCache(max_bytes=250)
    cache.add(LiveChunk("media", b"p" * 100, False))
    assert cache.items() == []  # nothing before the first keyframe
    cache.add(LiveChunk("media", b"k" * 100, True))
    cache.add(LiveChunk("media", b"p" * 100, False))
    assert len(cache.items()) == 2 and cache.bytes == 200
    cache.add(LiveChunk("media", b"p" * 100, False))  # over the bound: given up until a keyframe
    assert cache.items() == [] and cache.bytes == 0
    cache.add(LiveChunk("media", b"p" * 100, False))
    assert cache.items() == []
    cache.add(LiveChunk("media", b"k" * 10, True))
    assert [c.data for c in cache.items()] == [b"k" * 10]


async def test_first_viewer_gets_the_recorders_cached_gop(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    """Nobody watched, so nothing crossed from the worker; a viewer subscribing now gets the
    worker's current GOP replayed: a keyframe fragment recorded *before* it subscribed, and
    the fragments after it, so a player shows a picture without waiting for the camera's next
    keyframe (the camera here has a keyframe every 2 s)."""
    spec = low_res_camera()
    spec["main"]["gop"] = 30
    cam = run_camsim(spec)[0]
    async with recording([camera_config(cam)], tmp_path) as rig:
        hub = rig.supervisor.live
        await wait_for(is_recording(rig), 30, what="recording")
        await asyncio.sleep(3.0)
        assert hub.bytes_received("cam1") == 0
        subscribed = datetime.now(UTC)
        feed = hub.subscribe("cam1")
        chunks = [await asyncio.wait_for(anext(feed), 30) for _ in range(3)]
        await feed.aclose()
    assert chunks[0].kind == "init"
    first = chunks[1]
    assert first.keyframe and first.wall_time is not None
    # From the cache: its frames were recorded before the subscription.
    assert first.wall_time < subscribed
    path = _write(tmp_path / "joined.mp4", chunks)
    assert _decode_all(path) > 0
