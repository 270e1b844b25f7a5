"""Every answer of the owner's page says how long the page spent on it (`Server-Timing: app;dur=
<ms>`, daemon round trips included), which is what `bench.owner_page_bench` reads. Only that the
header is there and parses: the suite asserts no timing. And the page does nothing while nobody
looks at it (the bench's other figure), counted in wake-ups of its process."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import psutil

from tests.support.link_service import running_service, site_config
from tests.support.owner_page import owner_jar, running_page

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
        aiohttp.ClientSession(cookie_jar=owner_jar()) as http,
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


def _wakeups(pid: int) -> int:
    """Voluntary context switches of all the process's threads: each is a sleep it woke from."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def _page_pid(config_file: Path) -> int:
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "serve" in command and str(config_file) in command:
            return int(process.pid)
    raise AssertionError(f"no `owner serve` process for {config_file}")


async def test_the_page_sleeps_while_nobody_looks(tmp_path: Path) -> None:
    """No timer, sweep or poll of the daemon while nobody is connected: the page's process does
    not wake up at all (a once-a-second timer would wake it four times here). Counts wake-ups,
    not time."""
    async with running_service(site_config(tmp_path / "state")) as site, running_page(site) as page:
        async with aiohttp.ClientSession(cookie_jar=owner_jar()) as http:
            assert await page.sign_in(http) == 303
            async with http.get(page.url + "/") as response:
                assert response.status == 200
        pid = _page_pid(page.log.with_name("agent.toml"))
        await asyncio.sleep(1)  # the connection's close reaches the page
        before = _wakeups(pid)
        await asyncio.sleep(4)
        print(f"page wake-ups over 4 s idle: {_wakeups(pid) - before}")
        assert _wakeups(pid) - before < 4
