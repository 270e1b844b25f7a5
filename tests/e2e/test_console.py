"""The RTCC console, the whole story in a real browser: `rtcc-hub serve` and `rtcc-edge run` as
real processes, a camsim camera, two more sites simulated with the agent's real link code.

An analyst signs in; sees the cameras of three sites on the map; opens an incident that covers
two of them; watches the integrated camera's clip arrive in the locker, verified, while the
registry camera waits for its owner; opens a live view of the integrated camera on the live
wall and sees frames play. Screenshots: test-artifacts/screenshots/."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page

from hub.ca import site_ca
from sitesim import Broker, CameraSpec, Rtcc, Simulation, SiteSpec
from tests.e2e.deploy import CAMERA, deploy
from tests.e2e.test_clip_delivery import clip_config, recording_since, wait_until
from tests.support.broker import MosquittoBroker, broker  # noqa: F401
from tests.support.browser import console_browser, until_count
from tests.support.camsim import CamsimRun, camera, run_camsim  # noqa: F401
from tests.support.console import PASSWORD
from tests.support.rtcc import ISSUER

pytestmark = pytest.mark.slow

NEIGHBOURS = [
    SiteSpec("e2e-pharmacy", "Main St Pharmacy", 35.0849, -106.6508, (
        CameraSpec("lot", "Parking lot", "registry", False, 35.0849, -106.6508, 90, 100),
    )),
    SiteSpec("e2e-diner", "Far Away Diner", 35.1100, -106.6100, (
        CameraSpec("door", "Door", "integrated", False, 35.1100, -106.6100, 0, 90),
    )),
]  # fmt: skip


async def test_console_story(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    run_camsim: Callable[..., CamsimRun],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    cams = run_camsim(camera("generic", main={"width": 320, "height": 240, "fps": 15, "gop": 30}))
    deployed = deploy(tmp_path, broker, cams[0], capsys, write_config=clip_config)
    hub = deployed.hub
    (tmp_path / "password").write_text(PASSWORD + "\n")
    added = await hub.run_async(
        "users", "add", "ana", "--password-file", str(tmp_path / "password")
    )
    assert added.code == 0, added.err
    simulation = Simulation(
        NEIGHBOURS,
        tmp_path / "sites",
        Broker(broker.url(), broker.ca_file, broker.issue_client_cert),
        Rtcc(ISSUER, hub.home.jwks_path, upload_ca=site_ca(hub.home).cert_path),
    )
    for site in simulation.sites:
        hub.home.trust_site(site.id, site.public_jwk)

    async with deployed.serving(), deployed.running(), simulation:
        url = _public_url(hub.home.root)
        async with console_browser(hub.home, url) as browser:
            page = await browser.signed_in("ana")
            await page.wait_for_selector("body[data-map-ready='3']", timeout=60_000)
            assert "3 camera(s) at 3 site(s)" in await page.inner_text("#count")
            await browser.shot(page, "map")

            # A window of footage the site holds: it has recorded for a while.
            since = await recording_since(deployed.config)
            await wait_until(since + timedelta(seconds=25))
            now = datetime.now(UTC)
            start = (since + timedelta(seconds=3)).astimezone().strftime("%Y-%m-%dT%H:%M:%S")
            end = (now - timedelta(seconds=5)).astimezone().strftime("%Y-%m-%dT%H:%M:%S")
            await page.goto(url + "/incidents/new?lat=35.0846&lon=-106.6506")
            await page.fill('input[name="radius"]', "300")
            await page.fill('input[name="start"]', start)
            await page.fill('input[name="end"]', end)
            await page.fill('input[name="case"]', "2026-114523")
            await page.fill('textarea[name="reason"]', "armed robbery at the corner store")
            await page.click("text=Find cameras in range")
            assert "2 camera(s) at 2 site(s)" in await page.inner_text("#plan")
            await page.click("text=Send a signed request to all 2 camera(s)")
            await page.wait_for_url("**/incidents/*")
            await until_count(page, "#cameras .state.good", 1, within=120)
            text = await page.inner_text("#cameras")
            assert "Delivered and verified" in text
            assert "Waiting for the owner to approve" in text
            await browser.shot(page, "incident")
            await page.click("text=Open in the evidence locker")
            await page.wait_for_selector("[data-verified='yes']")
            await browser.shot(page, "locker", full_page=True)

            # The live wall: start a live view of the integrated camera from the map.
            await page.goto(url + "/")
            await page.wait_for_selector("body[data-map-ready='3']")
            await page.click(f"button.result[data-camera='{deployed.site}/{CAMERA}']")
            await page.fill("#details input[name='case']", "2026-114523")
            await page.fill("#details input[name='reason']", "suspect may still be nearby")
            await page.fill("#details input[name='minutes']", "2")
            await page.click("text=Watch live")
            await page.wait_for_url("**/wall")
            await page.wait_for_selector(".tile[data-playing='yes'] video", timeout=60_000)
            first = await _current_time(page)
            await asyncio.sleep(2.0)
            assert await _current_time(page) > first + 0.5, "the live video is not advancing"
            assert "left" in await page.inner_text(".tile footer")
            await browser.shot(page, "live-wall")
            await page.click(".tile button.danger")
            await page.wait_for_selector(".tile[data-kind='ended']", timeout=60_000)
            assert "Ended" in await page.inner_text(".tile")


async def _current_time(page: Page) -> float:
    value = await page.evaluate("document.querySelector('.tile video').currentTime")
    return float(value)


def _public_url(root: Path) -> str:
    import tomllib

    return str(tomllib.loads((root / "serve.toml").read_text())["public_url"])
