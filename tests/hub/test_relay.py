"""The hub's live relay over real HTTPS and websockets: who may publish, who may watch, what
viewers get (ffprobe and PyAV read it), late and slow viewers, hostile publishers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import av
import pytest
from aiohttp import WSCloseCode

from camsim.sei import stamps_in_file
from hub.relay import RelaySettings
from hub.relay_sessions import SessionStore, token_hash
from tests.support.ffprobe import ffprobe, video_stream
from tests.support.media import MediaSpec, encode_stamped
from tests.support.relay import Fmp4Stream, RunningRelay, fmp4_stream, publisher, running_relay

SPEC = MediaSpec(width=320, height=240, fps=15, gop=15, seconds=12, bitrate=600_000)
# Several MB: more than the kernel buffers between the relay and a viewer that reads nothing.
BIG = MediaSpec(width=640, height=480, fps=15, gop=15, seconds=40, bitrate=1_500_000)


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Fmp4Stream:
    media = tmp_path_factory.mktemp("relay-media")
    return fmp4_stream(encode_stamped(media, SPEC), media)


@pytest.fixture(scope="module")
def big_stream(tmp_path_factory: pytest.TempPathFactory) -> Fmp4Stream:
    media = tmp_path_factory.mktemp("relay-media-big")
    return fmp4_stream(encode_stamped(media, BIG), media)


async def _refused(relay: RunningRelay, url: str, token: str | None) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        async with publisher(relay, url, token):
            pass
    return caught.value.status


async def test_ingest_accepts_only_the_publisher_token_of_that_session(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "hub") as relay:
        one, two = relay.mint(), relay.mint()
        assert await _refused(relay, one.ingest_url, "x" * 43) == 401
        assert await _refused(relay, one.ingest_url, None) == 401
        assert await _refused(relay, one.ingest_url, two.publisher_token) == 401
        assert await _refused(relay, one.ingest_url, one.viewer_token) == 401
        unknown = one.ingest_url.rsplit("/", 1)[0] + "/" + "A" * 22
        assert await _refused(relay, unknown, one.publisher_token) == 401
        async with publisher(relay, one.ingest_url, one.publisher_token) as ws:
            assert not ws.closed
            # One publisher per session: a second connection is refused while it streams.
            assert await _refused(relay, one.ingest_url, one.publisher_token) == 409
        # The token file holds hashes only.
        text = SessionStore(relay.home).path.read_text()
        assert one.publisher_token not in text and one.viewer_token not in text
        assert token_hash(one.publisher_token) in text

        async with aiohttp.ClientSession() as http:
            plain_get = await http.get(
                one.ingest_url.replace("wss://", "https://"),
                headers={"Authorization": f"Bearer {one.publisher_token}"},
                ssl=relay.client_ssl(),
            )
            assert plain_get.status == 400  # the ingest takes a websocket, nothing else


async def test_expired_session_is_gone(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "hub") as relay:
        minted = relay.mint(lifetime=timedelta(seconds=-120))
        assert await _refused(relay, minted.ingest_url, minted.publisher_token) == 410


async def test_viewer_and_page_need_the_viewer_token(tmp_path: Path) -> None:
    async with running_relay(tmp_path / "hub") as relay:
        minted = relay.mint(camera="front-door")
        session = minted.record.id
        async with aiohttp.ClientSession() as http:
            for path in (f"/live/{session}.mp4", f"/live/{session}", f"/live/{session}/stats"):
                for query in ("", "?token=wrong", f"?token={minted.publisher_token}"):
                    response = await http.get(relay.url + path + query, ssl=relay.client_ssl())
                    assert response.status == 401, (path, query)
            page = await http.get(minted.page_url, ssl=relay.client_ssl())
            assert page.status == 200
            html = await page.text()
            assert page.headers["Content-Type"].startswith("text/html")
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
            assert page.headers["Referrer-Policy"] == "no-referrer"
            assert f'src="{session}.mp4?token={minted.viewer_token}"' in html
            assert "autoplay" in html and "muted" in html and "<video" in html


async def _send_all(
    ws: aiohttp.ClientWebSocketResponse, stream: Fmp4Stream, *, pace: float
) -> None:
    await ws.send_bytes(stream.init)
    for data, _keyframe in stream.fragments:
        await ws.send_bytes(data)
        await asyncio.sleep(pace)


async def _download(url: str, relay: RunningRelay, dest: Path, *, start_after: float = 0) -> Path:
    await asyncio.sleep(start_after)
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, ssl=relay.client_ssl()) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "video/mp4"
        with dest.open("wb") as out:
            async for chunk in response.content.iter_any():
                out.write(chunk)
    return dest


def _decode(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


async def test_two_viewers_one_late_get_playable_streams(
    tmp_path: Path, stream: Fmp4Stream
) -> None:
    async with running_relay(tmp_path / "hub") as relay:
        minted = relay.mint()
        early = asyncio.create_task(_download(minted.viewer_url, relay, tmp_path / "early.mp4"))
        # The late one joins mid-stream, with the publisher already several fragments in.
        late = asyncio.create_task(
            _download(minted.viewer_url, relay, tmp_path / "late.mp4", start_after=1.5)
        )
        await asyncio.sleep(0.3)
        async with publisher(relay, minted.ingest_url, minted.publisher_token) as ws:
            await _send_all(ws, stream, pace=0.12)
            stats = await relay.stats(minted)
            assert stats["publisher"] is True
            assert stats["fragments_in"] == len(stream.fragments)
            assert len(stats["viewers"]) == 2
        # The publisher left: both responses end.
        early_file, late_file = await asyncio.wait_for(asyncio.gather(early, late), 30)

    total = sum(1 for _ in stream.fragments)
    for path in (early_file, late_file):
        info = await asyncio.to_thread(ffprobe, path)
        assert video_stream(info)["codec_name"] == "h264"
        assert path.read_bytes().startswith(stream.init)
    early_stamps = await asyncio.to_thread(stamps_in_file, str(early_file))
    late_stamps = await asyncio.to_thread(stamps_in_file, str(late_file))
    numbers = [s.frame_number for s in early_stamps]
    assert numbers == list(range(SPEC.frames)), "the early viewer lost frames"
    assert await asyncio.to_thread(_decode, early_file) == SPEC.frames
    # The late viewer: init, then from a keyframe on (a whole GOP boundary), nothing lost after.
    late_numbers = [s.frame_number for s in late_stamps]
    assert late_numbers[0] > 0 and late_numbers[0] % SPEC.gop == 0
    assert late_numbers == list(range(late_numbers[0], SPEC.frames))
    assert await asyncio.to_thread(_decode, late_file) == len(late_numbers)
    assert total > 0


@contextlib.asynccontextmanager
async def _stalled_viewer(relay: RunningRelay, path: str) -> AsyncIterator[None]:
    """A viewer that sends its request and then reads nothing (small receive buffers)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", relay.port))
    _reader, writer = await asyncio.open_connection(
        sock=raw, ssl=relay.client_ssl(), server_hostname="127.0.0.1", limit=1024
    )
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        yield
    finally:
        writer.transport.abort()


async def test_a_slow_viewer_skips_and_never_slows_the_publisher_or_others(
    tmp_path: Path, big_stream: Fmp4Stream
) -> None:
    settings = RelaySettings(viewer_queue_bytes=600_000, viewer_stall_seconds=60)
    async with running_relay(tmp_path / "hub", settings=settings) as relay:
        minted = relay.mint()
        session = minted.record.id
        fast = asyncio.create_task(_download(minted.viewer_url, relay, tmp_path / "fast.mp4"))
        async with _stalled_viewer(relay, f"/live/{session}.mp4?token={minted.viewer_token}"):
            await asyncio.sleep(0.3)
            async with publisher(relay, minted.ingest_url, minted.publisher_token) as ws:
                sent_at: list[float] = []
                await ws.send_bytes(big_stream.init)
                for data, _ in big_stream.fragments:
                    await ws.send_bytes(data)
                    sent_at.append(time.monotonic())
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
                stats = await relay.stats(minted)
        await asyncio.wait_for(fast, 30)

    viewers = sorted(stats["viewers"], key=lambda v: v["skipped"])
    fast_stats, slow_stats = viewers
    assert slow_stats["skipped"] > 0, stats
    assert slow_stats["queued_bytes"] <= settings.viewer_queue_bytes
    assert fast_stats["skipped"] == 0
    numbers = [s.frame_number for s in await asyncio.to_thread(stamps_in_file, str(fast.result()))]
    assert numbers == list(range(BIG.frames)), "the fast viewer lost frames"
    # The publisher was never held up by the stalled viewer: every message went straight out.
    assert len(sent_at) == len(big_stream.fragments)


async def test_a_stalled_viewer_is_disconnected(tmp_path: Path, big_stream: Fmp4Stream) -> None:
    settings = RelaySettings(viewer_queue_bytes=600_000, viewer_stall_seconds=1.0)
    async with running_relay(tmp_path / "hub", settings=settings) as relay:
        minted = relay.mint()
        session = minted.record.id
        async with _stalled_viewer(relay, f"/live/{session}.mp4?token={minted.viewer_token}"):
            await asyncio.sleep(0.3)
            async with publisher(relay, minted.ingest_url, minted.publisher_token) as ws:
                await _send_all(ws, big_stream, pace=0.01)
                # Still publishing: the viewer is gone because its socket took nothing.
                deadline = time.monotonic() + 20
                while (await relay.stats(minted))["viewers"]:
                    assert time.monotonic() < deadline, "the stalled viewer was never dropped"
                    await asyncio.sleep(0.2)
                assert (await relay.stats(minted))["publisher"] is True


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (b"\x00\x00\x00\x08free", None),  # an init segment without moov
        (b"not an mp4 at all", None),
        ("text", None),
        (None, b"\x00\x00\x00\x10moofAAAAAAAA"),  # a fragment without its mdat
        (None, b"\x00\x00\x00\x08mdat"),  # mdat before moof
    ],
)
async def test_bad_media_closes_the_ingest(
    tmp_path: Path, stream: Fmp4Stream, first: bytes | str | None, then: bytes | None
) -> None:
    async with running_relay(tmp_path / "hub") as relay:
        minted = relay.mint()
        async with publisher(relay, minted.ingest_url, minted.publisher_token) as ws:
            if isinstance(first, str):
                await ws.send_str(first)
            else:
                await ws.send_bytes(first if first is not None else stream.init)
            if then is not None:
                await ws.send_bytes(then)
            message = await asyncio.wait_for(ws.receive(), 10)
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == WSCloseCode.UNSUPPORTED_DATA
        # Nothing was passed on, and the session can be published again.
        stats = await relay.stats(minted)
        assert stats["publisher"] is False
        async with publisher(relay, minted.ingest_url, minted.publisher_token) as ws:
            await ws.send_bytes(stream.init)


async def test_viewer_before_the_stream_waits_then_gives_up(tmp_path: Path) -> None:
    settings = RelaySettings(wait_for_publisher=0.5)
    async with running_relay(tmp_path / "hub", settings=settings) as relay:
        minted = relay.mint()
        async with aiohttp.ClientSession() as http:
            response = await http.get(minted.viewer_url, ssl=relay.client_ssl())
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
