"""The console's pages in a real browser (Playwright driving Debian's Chromium), with simulated
sites: the map, an incident made from the page and its live progress, the evidence locker,
fleet health, the audit log. Screenshots land in test-artifacts/screenshots/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sitesim import CameraSpec, SiteSpec
from tests.hub.conftest import HubRunner
from tests.support.broker import MosquittoBroker
from tests.support.browser import console_browser, until_count
from tests.support.console import running_console

pytestmark = pytest.mark.slow

SITES = [
    SiteSpec("pg-a", "Corner Grocery", 35.0844, -106.6504, (
        CameraSpec("front", "Front door", "integrated", True, 35.08441, -106.65041, 270, 90,
                   "Hikvision", "DS-2CD2143G2-I", "V5.5.0 build 170725"),
        CameraSpec("side", "Side alley", "integrated", False, 35.08436, -106.65052, 180, 70),
    )),
    SiteSpec("pg-b", "Main St Pharmacy", 35.0851, -106.6509, (
        CameraSpec("lot", "Parking lot", "registry", False, 35.0851, -106.6509, 90, 100),
    )),
    SiteSpec("pg-c", "Far Away Diner", 35.1100, -106.6100, (
        CameraSpec("door", "Door", "integrated", False, 35.1100, -106.6100, 0, 90),
    )),
]  # fmt: skip


async def test_map_incident_locker_fleet_audit(
    hub_cli: HubRunner, broker: MosquittoBroker, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    async with running_console(hub_cli, db_url) as hub:
        await hub.add_analyst("ana")
        await hub.add_analyst("sam", role="supervisor")
        await hub.wait_ingesting()
        async with (
            hub.sites(SITES, broker, tmp_path / "sites", footage_s=120),
            console_browser(hub.home, hub.url) as browser,
        ):
            page = await browser.signed_in("ana")
            # The map: every shared camera of the three sites (the private one is not shared).
            await page.wait_for_selector("body[data-map-ready='4']")
            assert "4 camera(s) at 3 site(s)" in await page.inner_text("#count")
            await browser.shot(page, "map")
            await page.check("#f-live")
            await page.wait_for_selector("body[data-map-ready='1']")
            await page.uncheck("#f-live")

            # An incident that covers two of the sites, made from the page.
            await page.goto(hub.url + "/incidents/new?lat=35.0846&lon=-106.6506")
            now = datetime.now(UTC)
            start = (now - timedelta(seconds=70)).astimezone().strftime("%Y-%m-%dT%H:%M:%S")
            end = (now - timedelta(seconds=30)).astimezone().strftime("%Y-%m-%dT%H:%M:%S")
            await page.fill('input[name="radius"]', "300")
            await page.fill('input[name="start"]', start)
            await page.fill('input[name="end"]', end)
            await page.fill('input[name="case"]', "2026-114523")
            await page.fill('textarea[name="reason"]', "armed robbery at the corner store")
            await page.click("text=Find cameras in range")
            plan = await page.inner_text("#plan")
            assert "3 camera(s) at 2 site(s)" in plan
            assert "Footage at once" in plan and "Owner must approve" in plan
            await browser.shot(page, "incident-plan")
            await page.click("text=Send a signed request to all 3 camera(s)")
            await page.wait_for_url("**/incidents/*")

            # Progress comes by itself: the integrated clips verified, the registry waiting.
            await until_count(page, "#cameras .state.good", 2, within=90)
            await page.wait_for_selector("#cameras .state.wait")
            text = await page.inner_text("#cameras")
            assert text.count("Delivered and verified") == 2
            assert "Waiting for the owner to approve" in text
            await browser.shot(page, "incident")

            # The locker: both clips verified, custody, the registry camera still to come.
            await page.click("text=Open in the evidence locker >> nth=0")
            await page.wait_for_selector("[data-verified='yes']")
            assert await page.locator("[data-verified='yes']").count() == 2
            assert "Waiting for the owner to approve" in await page.inner_text("main")
            async with page.expect_download() as download_info:
                await page.click("text=Download bundle >> nth=0")
            download = await download_info.value
            assert download.suggested_filename.endswith(".zip")
            await page.reload()
            await page.click("text=Chain of custody >> nth=0")
            custody = await page.inner_text("table.custody >> nth=0")
            assert "received" in custody and "verified" in custody and "downloaded" in custody
            await browser.shot(page, "locker", full_page=True)

            # Fleet health: sortable, the vulnerable firmware named.
            await page.goto(hub.url + "/fleet")
            assert "CVE-2021-36260" in await page.inner_text("#fleet")
            await page.click("#fleet th >> text=Site")
            await page.wait_for_url("**/fleet?sort=site*")
            rows = await page.locator("#fleet tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.site)"
            )
            # (The session's broker may still hold other tests' sites: untrusted, listed too.)
            ours = [site for site in rows if site.startswith("pg-")]
            assert ours in (["pg-a", "pg-b", "pg-c"], ["pg-c", "pg-b", "pg-a"])
            await browser.shot(page, "fleet")

            # The audit log, for a supervisor: ana's search, incident and download are in it.
            supervisor = await browser.signed_in("sam")
            await supervisor.goto(hub.url + "/audit")
            log = await supervisor.inner_text("#audit")
            for words in ("opened an incident", "requested footage", "downloaded", "searched"):
                assert words in log, words
            await browser.shot(supervisor, "audit")
