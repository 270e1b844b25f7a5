"""The Cameras page changes the cameras themselves, in a real browser (Playwright driving
Debian's Chromium) on a phone-sized screen, against a real `rtcc-edge run` recording camsim
cameras: the page is its own process's aiohttp app here (as `rtcc-edge owner serve` runs it),
talking to the daemon only over the control socket and editing the configuration file.

Each change is checked three ways: what the page says, what the configuration file holds, and
what the daemon did (its `reload` answer, its recorders' state file): the location set by a tap
on the map (no tiles configured) and by the fields with JavaScript off, a rename, a password the
camera refuses (nothing written) and then the right one (encrypted by the daemon's `seal`,
recording again), a removal after its confirmation, and cameras added from an RTSP address and
from the last `rtcc-edge discover`. Nothing overflows a 390 px wide screen. Screenshots:
test-artifacts/screenshots/owner-cameras-*.png."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from agent.config import load_config
from agent.control import ControlClient
from agent.control.owner_client import AsyncOwnerClient
from agent.owner_page import cameras
from agent.owner_page.app import make_app
from agent.owner_page.password import set_password
from agent.recorder import RecorderStatus
from agent.secretbox import SecretBox
from tests.daemon.conftest import Daemon, low_res_camera
from tests.support.broker import free_port
from tests.support.camsim import CameraHandle, CamsimRun
from tests.support.chromium import ensure_chromium
from tests.support.console import SCREENSHOTS

PHONE: ViewportSize = {"width": 390, "height": 844}
OWNER_PASSWORD = "the shop owner's password"
OLD_PASSWORD = "before-it-changed"  # what the configuration says; the camera no longer takes it
DISCOVERED_HOST = "127.0.0.73"


def _config_text(tmp_path: Path, door: CameraHandle, yard: CameraHandle) -> str:
    state = tmp_path / "state"
    return (
        "# The shop's agent, as the installer wrote it\n"
        f'state_dir = "{state}"\n'
        '[site]\nid = "corner"\nname = "Corner Grocery"\n'
        "[store]\nsegment_seconds = 10\nmin_free = 0\n"
        '[log]\nlevel = "info"\nformat = "console"\n'
        f'[control]\nsocket = "{tmp_path / "control.sock"}"\n'
        "\n[[cameras]]  # the one over the till\n"
        f'id = "door"\nname = "Front door"\nrtsp_url = "{door.rtsp_url("main")}"\n'
        f'username = "{door.username}"\nsecret = "{door.password}"\n'
        "\n[[cameras]]\n"
        f'id = "yard"\nname = "Yard"\nrtsp_url = "{yard.rtsp_url("main")}"\n'
        f'username = "{yard.username}"\nsecret = "{OLD_PASSWORD}"\n'
    )


@contextlib.asynccontextmanager
async def _page(config_path: Path) -> AsyncIterator[str]:
    """The owner's page as its own app: the daemon reached through its control socket only."""
    config = load_config(config_path)
    set_password(config.owner_dir, OWNER_PASSWORD)
    app = make_app(owner=AsyncOwnerClient(config, via="page"))
    cameras.configure(app, config_path=config_path, control_socket=config.control.socket)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port("127.0.0.1")
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _shot(page: Page, what: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"owner-cameras-{what}.png"), full_page=True)


async def _fits(page: Page) -> None:
    """Nothing is wider than the phone's screen."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide"


async def _recording(daemon: Daemon, camera_id: str) -> int | None:
    """The worker's pid once the daemon reports `camera_id` recording (within 90 s)."""
    deadline = time.monotonic() + 90
    while True:
        state = daemon.state()
        current = state.cameras.get(camera_id) if state is not None else None
        if current is not None and current.status is RecorderStatus.RECORDING:
            return current.pid
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log()
        assert time.monotonic() < deadline, f"{camera_id} not recording\n{daemon.log()}"
        await asyncio.sleep(0.2)


async def _text(path: Path) -> str:
    return await asyncio.to_thread(path.read_text)


async def _not_recorded(daemon: Daemon, camera_id: str) -> None:
    """Until the daemon's state file no longer lists `camera_id` (within 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        state = daemon.state()
        if state is not None and camera_id not in state.cameras:
            return
        assert time.monotonic() < deadline, f"{camera_id} still listed\n{daemon.log()}"
        await asyncio.sleep(0.2)


def _camera_in_file(config_path: Path, camera_id: str) -> Any:
    return load_config(config_path).camera(camera_id)


def _daemon_cameras(config_path: Path) -> dict[str, Any]:
    """The cameras the daemon uses now, from its own answer (a reload that changes nothing)."""
    socket = load_config(config_path).control.socket
    answer = ControlClient(socket).call("reload")
    assert answer["applied"] is True
    return {c["id"]: c for c in answer["cameras"]}


async def _signed_in(browser: Browser, url: str, *, javascript: bool = True) -> Page:
    context = await browser.new_context(viewport=PHONE, java_script_enabled=javascript)
    page = await context.new_page()
    page.set_default_timeout(90_000)
    await page.goto(url + "/login")
    await page.fill("#password", OWNER_PASSWORD)
    await page.click('button[type="submit"]')
    await page.wait_for_url(url + "/")
    return page


async def _done(page: Page) -> str:
    note = page.locator('p.note.ok[role="status"]')
    await note.wait_for()
    return await note.inner_text()


async def _refused(page: Page) -> str:
    note = page.locator('p.note.bad[role="alert"]')
    await note.wait_for()
    return await note.inner_text()


def _discover(config_path: Path, cams: CamsimRun, cam: CameraHandle) -> None:
    """`rtcc-edge discover`, as the owner or a technician runs it, finds camera `cam`."""
    done = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config_path), "discover",
         "--scan", f"{DISCOVERED_HOST}/32", "--no-multicast",
         "--ws-port", str(cams.discovery_port), "--ports", str(cam.onvif_port), "--wait", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


async def test_owner_changes_cameras_from_a_phone(
    run_camsim: Callable[..., CamsimRun], tmp_path: Path
) -> None:
    executable = ensure_chromium()
    cams = run_camsim(
        low_res_camera(id="door"),
        low_res_camera(id="yard", password="Yard-Pa55-changed"),
        low_res_camera(id="spare", host=DISCOVERED_HOST),
    )
    door, yard = cams["door"], cams["yard"]
    config_path = tmp_path / "agent.toml"
    config_path.write_text(_config_text(tmp_path, door, yard))
    config_path.chmod(0o640)
    daemon = Daemon(config_path, tmp_path / "state", tmp_path / "daemon.log").start()
    try:
        door_worker = await _recording(daemon, "door")
        async with _page(config_path) as url, async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                await _story(browser, url, daemon, config_path, door_worker, cams)
            finally:
                await browser.close()
    finally:
        await asyncio.to_thread(daemon.stop)


async def _picture_shown(page: Page, camera: str, *, within: float = 60) -> None:
    """The camera's picture on the Cameras page, decoded by the browser. Its first footage may
    still be in a segment being written: the page says "no picture" until then (reloaded)."""
    deadline = time.monotonic() + within
    picture = page.locator(f"#camera-{camera} img.picture")
    while True:
        if await picture.count():
            await page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=await picture.element_handle()
            )
            return
        assert time.monotonic() < deadline, await page.inner_text(f"#camera-{camera}")
        await asyncio.sleep(2)
        await page.reload()


async def _story(
    browser: Browser,
    url: str,
    daemon: Daemon,
    config_path: Path,
    door_worker: int | None,
    cams: CamsimRun,
) -> None:
    yard, spare = cams["yard"], cams["spare"]
    page = await _signed_in(browser, url)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # The list of cameras, each with its settings; nothing overflows the phone's screen.
    await page.click("nav >> text=Cameras")
    await page.locator("#camera-door").wait_for()
    # The recording camera's current picture, cut from the store by the daemon, shown.
    await _picture_shown(page, "door")
    await _fits(page)
    await _shot(page, "list")

    # Location by a tap on the map (no tiles configured), direction and field of view typed.
    await page.click("#camera-door >> text=Location, name, password")
    await page.wait_for_url(url + "/cameras/door/settings")
    response = await page.reload()
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    await page.wait_for_selector("body[data-map-ready]")
    assert "No map pictures are set up" in await page.inner_text("#map")
    assert await page.input_value("#lat") == ""
    await page.click("#map", position={"x": 120, "y": 90})
    lat, lon = float(await page.input_value("#lat")), float(await page.input_value("#lon"))
    drawn = page.locator("#map .leaflet-overlay-pane path")
    assert await drawn.count() == 1  # the marker
    await page.fill("#heading", "90")
    await page.fill("#fov", "60")
    await page.locator("#heading").dispatch_event("input")
    assert await drawn.count() == 2  # the marker and the wedge
    await _fits(page)
    await _shot(page, "map")
    await page.click("text=Save the location")
    said = await _done(page)
    assert "Location saved. Recording goes on without a break" in said
    assert "the RTCC sees the new location and field of view after the agent's next restart" in said
    where = (await asyncio.to_thread(_camera_in_file, config_path, "door")).location
    assert (where.lat, where.lon, where.heading, where.fov) == (lat, lon, 90, 60)
    assert "# the one over the till" in await _text(config_path), "comments stay"
    applied = (await asyncio.to_thread(_daemon_cameras, config_path))["door"]["location"]
    assert (applied["lat"], applied["lon"], applied["fov"]) == (lat, lon, 60)
    assert await _recording(daemon, "door") == door_worker, "recording never stopped"
    assert float(await page.input_value("#lat")) == lat, "shown again to the digit"
    await _shot(page, "located")

    # The same by the fields alone, with JavaScript off: the map stays hidden, the form works.
    plain = await _signed_in(browser, url, javascript=False)
    await plain.goto(url + "/cameras/door/settings")
    assert not await plain.locator("#map").is_visible()
    await plain.fill("#lat", "35.0846")
    await plain.fill("#lon", "-106.6509")
    await plain.fill("#heading", "270")
    await plain.click("text=Save the location")
    assert "Location saved." in await _done(plain)
    where = (await asyncio.to_thread(_camera_in_file, config_path, "door")).location
    assert (where.lat, where.lon, where.heading, where.fov) == (35.0846, -106.6509, 270, 60)
    await plain.fill("#lat", "95")
    await plain.click("text=Save the location")
    assert "The latitude must be between -90 and 90." in await _refused(plain)
    await plain.context.close()

    # Rename: the file and the daemon have the new name; the recorder went on.
    await page.goto(url + "/cameras/door/settings")
    await page.fill("#name", "Front door (street)")
    await page.click("text=Rename")
    said = await _done(page)
    assert "It is now called “Front door (street)”." in said
    assert "the RTCC sees the new name after the agent's next restart" in said
    assert (await asyncio.to_thread(_camera_in_file, config_path, "door")).name == (
        "Front door (street)"
    )
    daemon_view = await asyncio.to_thread(_daemon_cameras, config_path)
    assert daemon_view["door"]["name"] == "Front door (street)"
    assert await _recording(daemon, "door") == door_worker

    # The yard camera's password was changed on the camera: the agent cannot record it. A
    # wrong new one is refused by the camera itself and nothing is written.
    before = await _text(config_path)
    await page.goto(url + "/cameras/yard/settings")
    await page.fill("#new-password", "not-the-password")
    await page.click("text=Change the password")
    said = await _refused(page)
    assert said.startswith("Nothing was changed. The camera refused it;"), said
    assert await _text(config_path) == before
    await page.fill("#new-password", yard.password)
    await page.click("text=Change the password")
    said = await _done(page)
    assert "The camera accepted the new password; it is stored." in said
    assert "Recording restarted with the new password." in said
    secret = (await asyncio.to_thread(_camera_in_file, config_path, "yard")).secret
    sealed = secret.get_secret_value()
    assert sealed.startswith("enc:v1:") and yard.password not in await _text(config_path)
    assert SecretBox.load(daemon.state_dir).decrypt(sealed) == yard.password
    await _recording(daemon, "yard")
    await _shot(page, "password")

    # Remove, after its confirmation step.
    await page.click("text=Remove this camera…")
    await page.wait_for_url(url + "/cameras/yard/remove")
    await _fits(page)
    await _shot(page, "remove")
    assert await asyncio.to_thread(_camera_in_file, config_path, "yard") is not None
    await page.click("text=Yes, remove Yard")
    said = await _done(page)
    assert "Yard is removed. It is no longer recorded" in said
    assert await asyncio.to_thread(_camera_in_file, config_path, "yard") is None
    await _not_recorded(daemon, "yard")
    assert "yard" not in await asyncio.to_thread(_daemon_cameras, config_path)
    assert await page.locator("#camera-yard").count() == 0  # gone from the Cameras list

    # Add the yard camera back by its RTSP address.
    await page.click("text=Add a camera")
    await page.wait_for_url(url + "/cameras/add")
    await page.fill("#rtsp", yard.rtsp_url("main"))
    await page.fill("#rtsp-username", yard.username)
    await page.fill("#rtsp-password", "not-the-password")
    await page.fill("#rtsp-name", "Yard")
    await page.click("#add-rtsp button")
    assert (await _refused(page)).startswith("Not added.")
    # The address as the camera's manual gives it, login included: taken out, stored sealed.
    await page.fill("#rtsp", yard.rtsp_url("main", credentials=True))
    await page.fill("#rtsp-username", "")
    await page.fill("#rtsp-password", "")
    await page.fill("#rtsp-name", "Yard")
    await page.click("#add-rtsp button")
    said = await _done(page)
    assert "Added Yard (yard)." in said and "Recording starts now." in said
    added = await asyncio.to_thread(_camera_in_file, config_path, "yard")
    assert added.secret is not None and added.username == yard.username
    assert added.rtsp_url == yard.rtsp_url("main"), "no password in the address"
    assert SecretBox.load(daemon.state_dir).decrypt(added.secret.get_secret_value()) == (
        yard.password
    )
    await _recording(daemon, added.id)

    # Add a camera from the last discovery.
    await asyncio.to_thread(_discover, config_path, cams, spare)
    await page.goto(url + "/cameras/add")
    found = page.locator("#add-found")
    assert DISCOVERED_HOST in await found.inner_text()
    await _fits(page)
    await _shot(page, "add")
    await page.fill("#found-username", spare.username)
    await page.fill("#found-password", spare.password)
    await page.fill("#found-name", "Stockroom")
    await page.click("#add-found button")
    said = await _done(page)
    assert "Added Stockroom (stockroom)." in said and "Recording starts now." in said
    stockroom = await asyncio.to_thread(_camera_in_file, config_path, "stockroom")
    assert stockroom.onvif_url is not None and DISCOVERED_HOST in stockroom.onvif_url
    await _recording(daemon, stockroom.id)
    await page.goto(url + "/cameras")
    await page.locator(f"#camera-{stockroom.id}").wait_for()
    await _fits(page)
    await _shot(page, "after")
    assert errors == []
