"""Playwright driving Debian's Chromium (`executable_path`, no browser download) for the
console's pages.

    async with console_browser(hub.home, hub.url) as browser:
        page = await browser.signed_in("ana")
        await page.goto(hub.url + "/")
        await browser.shot(page, "map")          # test-artifacts/screenshots/<test>-map.png

The hub's server certificate (from its private CA) is accepted by pinning its public key
(`--ignore-certificate-errors-spki-list`), never by turning certificate checks off. Screenshots
go to `test-artifacts/screenshots/` (git-ignored), named after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from hub.state import HubHome
from tests.support.chromium import ensure_chromium, spki_hash
from tests.support.console import PASSWORD, SCREENSHOTS


@dataclass
class ConsoleBrowser:
    url: str
    browser: Browser
    context: BrowserContext
    name: str
    errors: list[str] = field(default_factory=list)

    def _watch(self, page: Page) -> None:
        """Script errors and failed loads on a page are test failures, not silent blanks."""
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"{page.url}: {message.text}")
                if message.type == "error"
                else None
            ),
        )

    async def new_page(self) -> Page:
        page = await self.context.new_page()
        page.set_default_timeout(30_000)
        self._watch(page)
        return page

    async def signed_in(self, username: str, *, password: str = PASSWORD) -> Page:
        page = await self.new_page()
        await page.goto(self.url + "/login")
        await page.fill('input[name="username"]', username)
        await page.fill('input[name="password"]', password)
        await page.click('button[type="submit"]')
        await page.wait_for_url(re.compile(r".*/$"))
        return page

    async def shot(self, page: Page, what: str, *, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{what}.png"
        await page.screenshot(path=str(path), full_page=full_page)
        return path


def _test_name() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "test").split(" ")[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "_", current.split("::")[-1])[:80]


@contextlib.asynccontextmanager
async def console_browser(
    home: HubHome, url: str, *, viewport: ViewportSize | None = None, strict: bool = True
) -> AsyncIterator[ConsoleBrowser]:
    """Chromium pinned to the server certificate `rtcc-hub serve` made in `home`. `strict`:
    any script error or failed load on a page fails the test (off where a test provokes one,
    e.g. media the browser cannot decode)."""
    executable = ensure_chromium()
    pin = spki_hash((home.root / "tls" / "server.pem").read_bytes())
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required",
                f"--ignore-certificate-errors-spki-list={pin}",
            ],
        )
        try:
            context = await browser.new_context(viewport=viewport or {"width": 1400, "height": 900})
            console = ConsoleBrowser(url, browser, context, _test_name())
            yield console
            if strict:
                assert not console.errors, "errors in the pages:\n" + "\n".join(console.errors)
        finally:
            await browser.close()


async def until_count(page: Page, selector: str, count: int, *, within: float = 30.0) -> None:
    """Until `selector` matches exactly `count` elements. Polled from here: the console's
    Content-Security-Policy (no eval) rightly stops Playwright's in-page wait_for_function."""
    deadline = asyncio.get_running_loop().time() + within
    while (found := await page.locator(selector).count()) != count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{selector}: {found} element(s), expected {count}")
        await asyncio.sleep(0.2)
