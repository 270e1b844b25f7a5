"""The camera forms' guard and headers, over HTTP with no daemon running: every change needs a
session, the session's CSRF token and this site's Origin (nothing is written otherwise); the
settings page allows this server's scripts only and images from the configured tiles' origin
(in Chromium: tiles from another origin are drawn, with no policy violation);
a change made while the agent is not running is saved and says it applies when the agent
starts; a change that cannot be made writes nothing. A recorder found by `rtcc-edge discover`
is added from the page as one camera per channel asked for."""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from agent.config import load_config
from agent.control import ControlServer
from agent.control.owner_client import AsyncOwnerClient
from agent.owner_page import cameras
from agent.owner_page.app import make_app
from agent.owner_page.password import set_password
from agent.secretbox import SecretBox
from tests.support.broker import free_port
from tests.support.camsim import CamsimRun, camera
from tests.support.chromium import ensure_chromium
from tests.support.owner_page import CSRF_FIELD, owner_jar, page_process

PASSWORD = "the shop owner's password"
TILES = "https://{s}.tiles.example.net/{z}/{x}/{y}.png"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        '[site]\nid = "corner"\nname = "Corner Grocery"\n'
        f'[control]\nsocket = "{tmp_path / "nobody-listens.sock"}"\n'
        '[[cameras]]\nid = "door"\nname = "Front door"\n'
        'rtsp_url = "rtsp://127.0.0.1:9/stream1"\nusername = "admin"\nsecret = "x"\n'
    )
    return path


@contextlib.asynccontextmanager
async def _page(config_path: Path, *, tiles: str | None = TILES) -> AsyncIterator[str]:
    config = load_config(config_path)
    set_password(config.owner_dir, PASSWORD)

    app = make_app(owner=AsyncOwnerClient(config, via="page"))
    cameras.configure(
        app, config_path=config_path, control_socket=config.control.socket, tiles=tiles
    )
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port("127.0.0.1")
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        match = CSRF_FIELD.search(await response.text())
    assert match is not None
    return match.group(1)


async def _sign_in(http: aiohttp.ClientSession, url: str) -> str:
    token = await _csrf(http, url + "/login")
    async with http.post(
        url + "/login",
        data={"csrf": token, "password": PASSWORD},
        headers={"Origin": url},
        allow_redirects=False,  # to the overview, which needs the agent (not running here)
    ) as response:
        assert response.status == 303
    return await _csrf(http, url + "/cameras/door/settings")


async def test_every_change_needs_the_owner(config_path: Path) -> None:
    before = await asyncio.to_thread(config_path.read_bytes)
    async with _page(config_path) as url, aiohttp.ClientSession() as stranger:
        for path in ("/cameras/door/settings", "/cameras/add", "/cameras/door/remove"):
            async with stranger.get(url + path, allow_redirects=False) as response:
                assert response.status == 303
                assert response.headers["Location"] == f"/login?next={quote(path)}"
        for path in ("rename", "location", "password", "remove"):
            async with stranger.post(
                f"{url}/cameras/door/{path}", data={"name": "x", "confirm": "yes"}
            ) as response:
                assert response.status == 403
        async with aiohttp.ClientSession(cookie_jar=owner_jar()) as http:
            token = await _sign_in(http, url)
            forged = {"csrf": "forged", "name": "Hacked", "confirm": "yes"}
            for path in ("rename", "remove"):
                async with http.post(
                    f"{url}/cameras/door/{path}", data=forged, headers={"Origin": url}
                ) as response:
                    assert response.status == 403
                async with http.post(
                    f"{url}/cameras/door/{path}",
                    data={**forged, "csrf": token},
                    headers={"Origin": "https://elsewhere.example"},
                ) as response:
                    assert response.status == 403
            async with http.post(
                url + "/cameras/add",
                data={"how": "rtsp", "rtsp": "rtsp://127.0.0.1:9/x"},
                headers={"Origin": url},
            ) as response:
                assert response.status == 403
    assert await asyncio.to_thread(config_path.read_bytes) == before


async def test_the_map_page_policy_and_changes_without_the_agent(config_path: Path) -> None:
    async with (
        _page(config_path) as url,
        aiohttp.ClientSession(cookie_jar=owner_jar()) as http,
    ):
        token = await _sign_in(http, url)
        async with http.get(url + "/cameras/door/settings") as response:
            policy = response.headers["Content-Security-Policy"]
            page = await response.text()
        assert "script-src 'self';" in policy and "unsafe" not in policy
        assert "img-src 'self' data: https://*.tiles.example.net;" in policy
        assert f'data-tiles="{TILES}"' in page and "<script>" not in page
        async with http.get(url + "/cameras") as response:
            assert "script-src" not in response.headers["Content-Security-Policy"]
        async with http.get(url + "/leaflet/leaflet.js") as response:
            assert response.status == 200 and "Leaflet" in (await response.text())[:400]
        async with http.get(url + "/static/camera_map.js") as response:
            assert response.status == 200

        async with http.post(
            url + "/cameras/door/rename",
            data={"csrf": token, "name": "Front door (street)"},
            headers={"Origin": url},
        ) as response:
            said = await response.text()
        assert "It is now called “Front door (street)”." in said
        assert "The agent is not running: it uses the new settings when it starts." in said
        assert load_config(config_path).cameras[0].name == "Front door (street)"

        before = await asyncio.to_thread(config_path.read_bytes)
        async with http.post(
            url + "/cameras/door/location",
            data={"csrf": token, "lat": "35.08", "lon": ""},
            headers={"Origin": url},
        ) as response:
            assert "Give both the latitude and the longitude" in await response.text()
        assert await asyncio.to_thread(config_path.read_bytes) == before


async def test_without_tiles_no_other_origin(config_path: Path) -> None:
    async with (
        _page(config_path, tiles=None) as url,
        aiohttp.ClientSession(cookie_jar=owner_jar()) as http,
    ):
        await _sign_in(http, url)
        async with http.get(url + "/cameras/door/settings") as response:
            policy = response.headers["Content-Security-Policy"]
        assert "img-src 'self' data:;" in policy


def _png(size: int = 256) -> bytes:
    """A plain grey square PNG: a map tile."""
    row = b"\x00" + b"\xc8\xc8\xc8" * size
    body = zlib.compress(row * size)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


@contextlib.asynccontextmanager
async def _tile_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A tile server on another origin (another port); the tiles it was asked for."""
    asked: list[str] = []
    tile = _png()

    async def serve(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=tile, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{z}/{x}/{y}.png", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port("127.0.0.1")
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png", asked
    finally:
        await runner.cleanup()


async def test_configured_tiles_are_drawn(config_path: Path) -> None:
    executable = ensure_chromium()
    async with (
        _tile_server() as (tiles, asked),
        _page(config_path, tiles=tiles) as url,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            await page.goto(url + "/login")
            await page.fill("#password", PASSWORD)
            await page.click('button[type="submit"]')
            await page.wait_for_url(url + "/")  # says the agent is not running: none here
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            await page.goto(url + "/cameras/door/settings")
            await page.wait_for_selector("body[data-map-ready]")
            await page.wait_for_function(
                "[...document.querySelectorAll('img.leaflet-tile-loaded')]"
                ".some(img => img.naturalWidth === 256)"
            )
            assert asked, "the tiles came from the tile server"
            assert await page.locator(".notiles").count() == 0
            assert problems == [], problems  # no Content-Security-Policy violation either
        finally:
            await browser.close()


NVR_HOST = "127.0.0.75"
NVR_PASSWORD = "Nvr-Shop-5521"


async def test_a_recorders_channels_added_from_the_last_discovery(
    run_camsim: Callable[..., CamsimRun], config_path: Path, tmp_path: Path
) -> None:
    """The page offers what `rtcc-edge discover` found; a recorder's channels become cameras
    of their own, their password sealed by the control socket (the daemon's own code)."""
    cams = run_camsim(camera("hikvision-nvr", id="nvr", host=NVR_HOST, password=NVR_PASSWORD))
    nvr = cams["nvr"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agent", "--config", str(config_path), "discover",
         "--scan", f"{NVR_HOST}/32", "--no-multicast", "--ws-port", str(cams.discovery_port),
         "--ports", str(nvr.onvif_port), "--wait", "0.5"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    config = load_config(config_path)
    control = ControlServer(config.control.socket, None, group=None, state_dir=config.state_dir)
    await control.start()
    try:
        async with (
            _page(config_path) as url,
            aiohttp.ClientSession(cookie_jar=owner_jar()) as http,
        ):
            token = await _sign_in(http, url)
            async with http.get(url + "/cameras/add") as response:
                page = await response.text()
            match = re.search(r'name="device" value="(\d+)"[^>]*> ([^<]+)', page)
            assert match is not None, page
            assert "DS-7608NI-K2" in match.group(2) and NVR_HOST in match.group(2)
            form = {
                "csrf": token,
                "how": "discovery",
                "device": match.group(1),
                "username": nvr.username,
                "password": NVR_PASSWORD,
                "name": "Shop NVR",
                "channels": "1-2",
            }
            async with http.post(
                url + "/cameras/add", data=form, headers={"Origin": url}
            ) as response:
                said = await response.text()
            assert "Added Shop NVR channel 1 (shop-nvr-ch1), Shop NVR channel 2" in said, said
    finally:
        await control.close()
    added = {c.id: c for c in load_config(config_path).cameras}
    assert set(added) == {"door", "shop-nvr-ch1", "shop-nvr-ch2"}
    for channel, camera_id in enumerate(("shop-nvr-ch1", "shop-nvr-ch2"), 1):
        secret = added[camera_id].secret
        assert added[camera_id].channel == channel and secret is not None
        assert SecretBox.load(config.state_dir).decrypt(secret.get_secret_value()) == (NVR_PASSWORD)
    assert NVR_PASSWORD not in await asyncio.to_thread(config_path.read_text)


async def test_the_page_process_changes_cameras(config_path: Path, tmp_path: Path) -> None:
    """`rtcc-edge owner serve` sets the camera forms up on the file it was started with, and
    the map's tiles from `[owner_page] tiles`."""
    port = free_port("127.0.0.1")
    text = await asyncio.to_thread(config_path.read_text)
    extra = f'\n[owner_page]\nlisten = "127.0.0.1:{port}"\ntiles = "{TILES}"\n'
    await asyncio.to_thread(config_path.write_text, text + extra)
    set_password(load_config(config_path).owner_dir, PASSWORD)
    url = f"http://127.0.0.1:{port}"
    async with (
        page_process(config_path, url, tmp_path / "page.log"),
        aiohttp.ClientSession(cookie_jar=owner_jar()) as http,
    ):
        token = await _sign_in(http, url)
        async with http.get(url + "/cameras/door/settings") as response:
            assert response.status == 200
            assert "*.tiles.example.net" in response.headers["Content-Security-Policy"]
        async with http.post(
            url + "/cameras/door/rename",
            data={"csrf": token, "name": "Front door (street)"},
            headers={"Origin": url},
        ) as response:
            assert "It is now called “Front door (street)”." in await response.text()
    assert load_config(config_path).cameras[0].name == "Front door (street)"
