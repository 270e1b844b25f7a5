"""The owner's page in a real browser (Playwright driving Debian's Chromium, no browser
download), on a phone-sized screen: sign in, see the overview, see a pending request, approve
it, pause sharing. Screenshots: test-artifacts/screenshots/owner-page-*.png."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, ViewportSize, async_playwright

from agent.config import AgentConfig
from agent.ledger import Kind, read_entries
from tests.support.chromium import ensure_chromium
from tests.support.console import SCREENSHOTS
from tests.support.link_service import running_service, site_config
from tests.support.owner_page import BY_PAGE, FAILED_CHECK_ADVICE, OWNER_PASSWORD, running_page
from tests.support.rtcc import jti_of, make_request

PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return site_config(tmp_path / "state")


async def _shot(page: Page, what: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"owner-page-{what}.png"), full_page=True)


async def test_owner_signs_in_approves_denies_and_pauses(config: AgentConfig) -> None:
    executable = ensure_chromium()
    async with running_service(config) as site, running_page(site) as served:
        payload = make_request("clip", camera="parking-lot")
        jti = jti_of(payload)
        await site.service.handle(payload)
        await site.sink.wait_for(jti, "pending_approval")
        other = make_request("clip", camera="parking-lot", case="2026-000456")
        denied = jti_of(other)
        await site.service.handle(other)
        await site.sink.wait_for(denied, "pending_approval")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                context = await browser.new_context(viewport=PHONE)
                page = await context.new_page()
                page.set_default_timeout(30_000)
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))

                await page.goto(served.url + "/")
                await page.wait_for_url(re.compile(r".*/login\?next=/$"))
                await page.fill("#password", OWNER_PASSWORD)
                await _shot(page, "login")
                await page.click('button[type="submit"]')
                await page.wait_for_url(re.compile(r".*/$"))
                overview = await page.inner_text("main")
                assert "Connected to the RTCC." in overview
                assert "2 requests waiting for you" in overview
                assert "Camera Front door is offline." in overview
                await _shot(page, "overview")

                await page.click("text=Requests")
                card = page.locator(f"#request-{jti}")
                text = await card.inner_text()
                assert "2026-000123" in text and "burglary nearby" in text
                assert "Parking lot" in text and "analyst-7" in text
                await _shot(page, "requests")
                await card.locator("button.yes").click()
                await page.wait_for_selector("text=Approved: the footage for case 2026-000123")
                assert await page.locator(f"#request-{jti}").count() == 0
                await _shot(page, "approved")
                await site.sink.wait_for(jti, "approved")

                # The other one is denied, with the reason the RTCC is told.
                card = page.locator(f"#request-{denied}")
                await card.locator("input[name=reason]").fill("That camera faces my own yard.")
                await card.locator("button.no").click()
                await page.wait_for_selector("text=Denied: the RTCC is told your reason")
                await _shot(page, "denied")
                assert "Denied by you · case 2026-000456" in await page.inner_text("main")
                refused = await site.sink.wait_for(denied, "rejected")
                assert refused.code == "denied_by_owner", refused
                assert refused.message == "That camera faces my own yard."

                await page.click("nav >> text=Pause")
                await page.fill("#duration", "2h")
                await page.click("button.no")
                await page.wait_for_selector("text=Sharing is paused until")
                await _shot(page, "paused")

                await page.click("nav >> text=Cameras")
                # The first camera failed its last check: the verdict, and what to do, in words.
                first = await page.inner_text("#camera-front-door .verdict")
                assert "does not work with the program as it is" in first
                assert FAILED_CHECK_ADVICE in first
                passed = await page.inner_text("#camera-side-door .verdict")
                assert "works with the program (checked Sun 06 Dec 2026" in passed
                await page.check("#mode-side-door-registry")
                await page.locator("#camera-side-door button").click()
                await page.wait_for_selector("text=Side door is now registry.")
                await _shot(page, "cameras")

                await page.click("nav >> text=Activity")
                check = await page.inner_text("#ledger-check")
                assert "intact" in check
                await _shot(page, "activity")
                assert site.service.policy.paused
                assert errors == []
            finally:
                await browser.close()
    by = {e.kind: e.data.get("by") for e in read_entries(config.state_dir / "ledger")}
    assert by[Kind.APPROVAL] == by[Kind.PAUSED] == by[Kind.SHARING_CHANGED] == BY_PAGE
    assert by[Kind.DENIAL] == BY_PAGE
