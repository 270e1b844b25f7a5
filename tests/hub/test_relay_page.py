"""The relay's viewer page and the console's live wall say what is happening instead of showing
a dead player: H.265 in a browser that cannot play it, a session that ended and why. Real
Chromium (Playwright, Debian's build) against the real relay fed real fMP4."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import WSCloseCode

from hub.db import RequestRow
from hub.relay import RelaySettings
from hub.workflow import RequestSpec, prepare_request, record_request
from tests.hub.conftest import HubRunner
from tests.support.browser import console_browser
from tests.support.console import running_console
from tests.support.media import MediaSpec, encode_stamped
from tests.support.relay import Fmp4Stream, fmp4_stream, publisher, running_relay

HEVC = MediaSpec(codec="hevc", width=320, height=240, fps=10, gop=10, seconds=3)
H264 = MediaSpec(width=320, height=240, fps=10, gop=10, seconds=3)


@pytest.fixture(scope="module")
def hevc(tmp_path_factory: pytest.TempPathFactory) -> Fmp4Stream:
    media = tmp_path_factory.mktemp("relay-page-hevc")
    return fmp4_stream(encode_stamped(media, HEVC), media)


@pytest.fixture(scope="module")
def h264(tmp_path_factory: pytest.TempPathFactory) -> Fmp4Stream:
    media = tmp_path_factory.mktemp("relay-page-h264")
    return fmp4_stream(encode_stamped(media, H264), media)


async def test_viewer_page_says_h265_cannot_play(tmp_path: Path, hevc: Fmp4Stream) -> None:
    async with running_relay(tmp_path / "hub") as relay:
        minted = relay.mint(camera="hevc-cam")
        async with publisher(relay, minted.ingest_url, minted.publisher_token) as ws:
            await ws.send_bytes(hevc.init)
            for data, _ in hevc.fragments[:4]:
                await ws.send_bytes(data)
            stats = await relay.stats(minted)
            assert (stats["state"], stats["codec"]) == ("live", "hevc")
            # The exact RFC 6381 string from the init segment's hvcC, for isTypeSupported.
            assert stats["codecs"].split(".")[0] in ("hvc1", "hev1"), stats["codecs"]
            async with console_browser(relay.home, relay.url, strict=False) as browser:
                page = await browser.new_page()
                type_ = f'video/mp4; codecs="{stats["codecs"]}"'
                await page.goto(minted.page_url)
                # This Chromium really cannot: the page asks the same question.
                assert not await page.evaluate(f"MediaSource.isTypeSupported({type_!r})")
                await page.wait_for_selector("#status.problem")
                status = await page.inner_text("#status")
                assert "H.265 (HEVC)" in status and "cannot play" in status
                assert await page.locator("video[hidden]").count() == 1
                # Decided before any video was loaded: no dead player, no request for it.
                assert await page.get_attribute("#live", "src") is None
                assert await page.get_attribute("#live", "data-unplayable") == stats["codecs"]
                await browser.shot(page, "relay-hevc")


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("owner_stopped", "the camera's owner stopped it"),
        ("sharing_changed", "the owner stopped sharing this camera live"),
        ("max_seconds", "the time asked for is up"),
    ],
)
async def test_viewer_page_says_why_it_ended(
    tmp_path: Path, h264: Fmp4Stream, reason: str, said: str
) -> None:
    async with running_relay(tmp_path / "hub") as relay:
        minted = relay.mint(camera="front-door")
        async with console_browser(relay.home, relay.url, strict=False) as browser:
            page = await browser.new_page()
            async with publisher(relay, minted.ingest_url, minted.publisher_token) as ws:
                await ws.send_bytes(h264.init)
                for data, _ in h264.fragments:
                    await ws.send_bytes(data)
                await page.goto(minted.page_url)
                await page.wait_for_selector("#status.live, #status.waiting")
                # H.264 is playable here: the page loads the video.
                assert await page.get_attribute("#live", "src") is not None
                await ws.close(code=WSCloseCode.OK, message=reason.encode())
            await page.wait_for_selector("#status.ended", timeout=30_000)
            assert said in await page.inner_text("#status")
            assert await page.locator("video[hidden]").count() == 1
            await browser.shot(page, f"relay-ended-{reason}")
        stats = await relay.stats(minted)
        assert (stats["state"], stats["reason"], stats["codec"]) == ("ended", reason, "h264")
        # What the relay received stays on record after the end.
        sent = len(h264.init) + sum(len(data) for data, _ in h264.fragments)
        assert stats["bytes_in"] == sent
        assert stats["fragments_in"] == len(h264.fragments)
        assert stats["started"] is not None and stats["codecs"].startswith("avc1.")


async def test_viewer_page_never_just_spins(tmp_path: Path) -> None:
    """No publisher ever comes (the site is offline, or refused): after as long as the relay
    itself waits for a publisher, the page says what that may mean, and keeps checking."""
    settings = RelaySettings(wait_for_publisher=2)
    async with running_relay(tmp_path / "hub", settings=settings) as relay:
        minted = relay.mint(camera="front-door")
        async with console_browser(relay.home, relay.url) as browser:
            page = await browser.new_page()
            await page.goto(minted.page_url)
            assert "Waiting for the site" in await page.inner_text("#status")
            await page.wait_for_selector("#status small", timeout=30_000)
            said = await page.inner_text("#status")
            assert "Still waiting" in said and "refused" in said
            assert await page.get_attribute("#live", "src") is None
            await browser.shot(page, "relay-still-waiting")


async def test_live_wall_tile_says_h265_cannot_play(
    hub_cli: HubRunner, tmp_path: Path, hevc: Fmp4Stream
) -> None:
    async with running_console(hub_cli, f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}") as hub:
        await hub.add_analyst("ana")
        core = hub.console.hub
        spec = RequestSpec(cmd="stream", site="site-h", camera="hevc-cam", case="2026-7",
                           requester="ana", reason="check", max_seconds=120)  # fmt: skip
        prepared = prepare_request(hub.home, core.signing_key(), core.issuer(), spec)
        await record_request(core.db, prepared)
        async with core.db.session() as session:
            row = await session.get(RequestRow, prepared.jti)
            assert row is not None
            row.state = "streaming"
        assert prepared.relay is not None
        relay = prepared.relay
        async with publisher(hub, relay.ingest_url, relay.publisher_token) as ws:  # type: ignore[arg-type]
            await ws.send_bytes(hevc.init)
            for data, _ in hevc.fragments[:4]:
                await ws.send_bytes(data)
            async with console_browser(hub.home, hub.url, strict=False) as browser:
                page = await browser.signed_in("ana")
                await page.goto(hub.url + "/wall")
                await page.wait_for_selector(".tile[data-unplayable='hevc']", timeout=30_000)
                assert "H.265 (HEVC)" in await page.inner_text(".tile .message")
                await browser.shot(page, "wall-hevc")
