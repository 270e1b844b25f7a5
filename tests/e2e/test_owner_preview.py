"""The owner watches exactly the footage a request would share before approving it, the whole
chain as deployed: `rtcc-edge run` recording a camsim camera (registry sharing: requests wait
for the owner) and serving the owner's page, `rtcc-hub serve` receiving, a real TLS mosquitto.

The preview the page serves is a valid MP4 (ffprobe) covering the request's window the way the
delivered clip does; HTTP range requests return the right bytes; in Debian's Chromium the
preview plays; the owner approves on the page and the clip the hub receives holds the same
packets as the preview. Screenshot: test-artifacts/screenshots/owner-page-preview.png."""

from __future__ import annotations

import asyncio
import hashlib
import re
import stat
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from playwright.async_api import ViewportSize, async_playwright

from agent.control.async_client import AsyncControlClient
from agent.owner_page.password import set_password
from agent.owner_page.preview import EXACT
from tests.e2e.deploy import deploy, next_json
from tests.e2e.test_clip_delivery import (
    CASE,
    check_clip,
    clip_config,
    final_line,
    hub_request,
    recording_since,
    rfc3339,
    wait_until,
)
from tests.support.broker import MosquittoBroker, broker, free_port  # noqa: F401
from tests.support.camsim import CamsimRun, camera, run_camsim  # noqa: F401
from tests.support.chromium import ensure_chromium
from tests.support.console import SCREENSHOTS
from tests.support.owner_page import CSRF_FIELD, OWNER_PASSWORD, owner_jar, page_process

pytestmark = pytest.mark.slow

CAMERA = "front-door"
PHONE: ViewportSize = {"width": 390, "height": 844}


def preview_config(port: int) -> Any:
    def write(path: Path, state: Path, **kwargs: Any) -> Path:
        clip_config(path, state, **kwargs)
        text = path.read_text().replace(
            'sharing = "integrated"\nlive = true', 'sharing = "registry"', 1
        )
        text = text.replace(
            "[log]\n", f'[owner_page]\nenabled = true\nlisten = "127.0.0.1:{port}"\n[log]\n', 1
        )
        path.write_text(text)
        return path

    return write


def packets(path: Path) -> list[tuple[int | None, str]]:
    """Each video packet's time stamp and the hash of its bytes, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            (packet.pts, hashlib.sha256(bytes(packet)).hexdigest())
            for packet in container.demux(stream)
            if packet.size
        ]


async def wait_pending(socket: Path, jti: str, *, within: float = 60) -> None:
    client = AsyncControlClient(socket)
    deadline = time.monotonic() + within
    while True:
        rows = await client.call("requests")
        if any(r["id"] == jti and r["state"] == "pending_approval" for r in rows):
            return
        assert time.monotonic() < deadline, f"request {jti} never waited for the owner"
        await asyncio.sleep(0.2)


async def sign_in(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(url + "/login") as response:
        match = CSRF_FIELD.search(await response.text())
    assert match is not None
    async with http.post(
        url + "/login",
        data={"csrf": match.group(1), "password": OWNER_PASSWORD},
        headers={"Origin": url},
        allow_redirects=False,
    ) as response:
        assert response.status == 303


async def ranged(
    http: aiohttp.ClientSession, url: str, header: str
) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url, headers={"Range": header}) as response:
        return response.status, dict(response.headers), await response.read()


async def check_ranges(http: aiohttp.ClientSession, url: str, whole: bytes) -> None:
    size = len(whole)
    status, headers, body = await ranged(http, url, "bytes=100-199")
    assert status == 206 and body == whole[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{size}"
    assert headers["Accept-Ranges"] == "bytes" and headers["Content-Length"] == "100"
    status, headers, body = await ranged(http, url, "bytes=-64")
    assert status == 206 and body == whole[-64:]
    assert headers["Content-Range"] == f"bytes {size - 64}-{size - 1}/{size}"
    status, headers, body = await ranged(http, url, f"bytes={size - 10}-{size + 500}")
    assert status == 206 and body == whole[-10:]
    # Across the daemon's 1 MiB pieces.
    status, headers, body = await ranged(http, url, "bytes=1048000-2100000")
    assert status == 206 and body == whole[1048000:2100001]
    status, _headers, body = await ranged(http, url, "bytes=0-")
    assert status == 206 and body == whole
    status, headers, _body = await ranged(http, url, f"bytes={size}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"


async def test_owner_watches_the_preview_then_approves(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    run_camsim: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    executable = ensure_chromium()
    cams: CamsimRun = run_camsim(
        camera("generic", main={"width": 320, "height": 240, "fps": 15, "gop": 15})
    )
    port = free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}"
    deployed = deploy(tmp_path, broker, cams[0], capsys, write_config=preview_config(port))
    hub, site, state, config = deployed.hub, deployed.site, deployed.state, deployed.config
    set_password(tmp_path / "owner", OWNER_PASSWORD)

    async with (
        deployed.serving(),
        deployed.running(),
        page_process(config, url, tmp_path / "owner-page.log"),
    ):
        began = await recording_since(config)
        start, end = began + timedelta(seconds=3), began + timedelta(seconds=11)
        await wait_until(end + timedelta(seconds=2))
        request = await hub_request(
            hub, "clip", "--site", site, "--camera", CAMERA, "--case", CASE,
            "--from", rfc3339(start), "--to", rfc3339(end), "--json",
        )  # fmt: skip
        assert request.stdout is not None
        try:
            jti = (await next_json(request.stdout, "sent"))["jti"]
            await wait_pending(state / "control.sock", jti)
            preview_url = f"{url}/requests/{jti}/preview.mp4"

            async with aiohttp.ClientSession(cookie_jar=owner_jar()) as http:
                async with http.get(preview_url, allow_redirects=False) as response:
                    assert response.status == 303  # signed out: to the sign-in page
                await sign_in(http, url)
                async with http.get(url + "/requests") as response:
                    text = await response.text()
                assert f'src="/requests/{jti}/preview.mp4"' in text and EXACT in text
                async with http.get(preview_url) as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == "video/mp4"
                    assert response.headers["Accept-Ranges"] == "bytes"
                    whole = await response.read()
                assert len(whole) > 2_100_000  # several of the daemon's pieces
                await check_ranges(http, preview_url, whole)
            shown = tmp_path / "preview.mp4"
            shown.write_bytes(whole)
            check_clip(shown, start, end)  # ffprobe, and the window as the delivery checks it
            [cached] = (state / "previews").iterdir()
            assert cached.name == f"{jti}.mp4" and cached.read_bytes() == whole
            assert stat.S_IMODE(cached.stat().st_mode) == 0o600

            await watch_and_approve(executable, url, jti)
            done = await final_line(request, within=90)
            assert done["state"] == "completed", done
            received = await next_json(request.stdout, "received")
            assert await asyncio.wait_for(request.wait(), 30) == 0
        finally:
            if request.returncode is None:
                request.kill()
                await request.wait()
    clip = Path(received["file"])
    check_clip(clip, start, end)
    sent_packets, shown_packets = packets(clip), packets(shown)
    assert sent_packets == shown_packets and len(shown_packets) > 100
    # The export is deterministic: the preview is the very file that was sent.
    assert await asyncio.to_thread(clip.read_bytes) == whole
    print(f"preview = delivered clip: {len(whole)} bytes, {len(shown_packets)} packets")
    # Stopped: the daemon left no preview behind.
    assert list((state / "previews").iterdir()) == []


async def watch_and_approve(executable: str, url: str, jti: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            context = await browser.new_context(viewport=PHONE)
            page = await context.new_page()
            page.set_default_timeout(60_000)
            await page.goto(url + "/login")
            await page.fill("#password", OWNER_PASSWORD)
            await page.click('button[type="submit"]')
            await page.wait_for_url(re.compile(r".*/$"))
            await page.click("nav >> text=Requests")
            card = page.locator(f"#request-{jti}")
            assert EXACT in await card.inner_text()
            video = card.locator("video")
            await video.scroll_into_view_if_needed()
            await video.evaluate("v => { v.muted = true; return v.play(); }")
            handle = await video.element_handle()
            assert handle is not None
            await page.wait_for_function(
                "v => v.readyState >= 2 && v.currentTime > 0.5", arg=handle
            )
            first = await video.evaluate("v => v.currentTime")
            await page.wait_for_function(f"v => v.currentTime > {first} + 0.5", arg=handle)
            duration = await video.evaluate("v => v.duration")
            assert 7.0 < duration < 20.0, duration
            await video.evaluate("v => v.pause()")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOTS / "owner-page-preview.png"), full_page=True)
            await card.locator("button.yes").click()
            await page.wait_for_selector(f"text=Approved: the footage for case {CASE}")
        finally:
            await browser.close()
