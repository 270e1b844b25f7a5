"""Every answer of the owner's page says how long the page spent on it (`Server-Timing: app;dur=
<ms>`, daemon round trips included), which is what `bench.owner_page_bench` reads. Only that the
header is there and parses: the suite asserts no timing."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from tests.support.link_service import running_service, site_config
from tests.support.owner_page import running_page

SERVER_TIMING = re.compile(r"app;dur=(\d+(?:\.\d+)?)")


def app_duration(response: aiohttp.ClientResponse) -> float:
    header = response.headers.get("Server-Timing")
    assert header is not None, f"no Server-Timing on {response.url}"
    match = SERVER_TIMING.fullmatch(header)
    assert match is not None, header
    return float(match.group(1))


async def test_server_timing_on_every_answer(tmp_path: Path) -> None:
    async with (
        running_service(site_config(tmp_path / "state")) as site,
        running_page(site) as page,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        async with http.get(page.url + "/login") as response:
            assert response.status == 200
            app_duration(response)
        # Raised answers (the redirect to sign in) carry it too.
        async with http.get(page.url + "/", allow_redirects=False) as response:
            assert response.status == 303
            app_duration(response)
        assert await page.sign_in(http) == 303
        async with http.get(page.url + "/") as response:
            assert response.status == 200
            assert "Overview" in await response.text()
            app_duration(response)
        async with http.get(page.url + "/static/page.css") as response:
            assert response.status == 200
            app_duration(response)
