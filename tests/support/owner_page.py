"""The owner's page for tests, as it runs for real: `rtcc-edge owner serve` in a process of its
own, on a free loopback port, talking to a control socket over a running request service
(`tests.support.link_service`), with the owner password set as `rtcc-edge owner passwd` does.

    async with running_service(config, handlers=...) as site:
        async with running_page(site) as page:            # page.url: http://127.0.0.1:PORT
            async with page.signed_in() as http: ...      # an aiohttp session with its cookie

`daemon_socket(site)` is the daemon's side alone (the control socket, its overview and
pictures), for tests that start the page some other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.cookies import BaseCookie
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from agent.control import ControlServer
from agent.control.pictures import Pictures
from agent.owner_page.password import set_password
from agent.store import ClipStore
from tests.support.broker import free_port
from tests.support.link_service import Site, write_site_config

_NO_URL = URL()


class BrowserJar(aiohttp.CookieJar):
    """Cookies kept as Chromium keeps them: loopback is a secure context, so the page's Secure
    session cookie goes to http://127.0.0.1 too (aiohttp's own jar sends Secure cookies over
    https only)."""

    def __init__(self) -> None:
        super().__init__(unsafe=True)  # unsafe: the page is on an IP address, not a domain

    def filter_cookies(self, request_url: URL = _NO_URL) -> BaseCookie[str]:
        if request_url.scheme == "http" and request_url.host in ("127.0.0.1", "localhost"):
            request_url = request_url.with_scheme("https")
        return super().filter_cookies(request_url)


def owner_jar() -> aiohttp.CookieJar:
    return BrowserJar()


OWNER_PASSWORD = "correct horse battery"
FAILED_CHECK_ADVICE = "The camera's clock is 9 minutes off. Turn on NTP in its time settings."
_T = TypeVar("_T")
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
BY_PAGE = "uid 0 (root) through the owner's page"  # the ledger's `by` for the page run as root


@dataclass
class RunningPage:
    url: str
    site: Site
    log: Path
    config_file: Path | None = None  # what `owner serve` was started with

    async def csrf_of(self, http: aiohttp.ClientSession, path: str) -> str:
        async with http.get(self.url + path) as response:
            assert response.status == 200, await response.text()
            match = CSRF_FIELD.search(await response.text())
        assert match is not None, f"no CSRF field on {path}"
        return match.group(1)

    async def sign_in(self, http: aiohttp.ClientSession, password: str = OWNER_PASSWORD) -> int:
        """The sign-in form as a browser posts it; the response's status (303: signed in)."""
        token = await self.csrf_of(http, "/login")
        async with http.post(
            self.url + "/login",
            data={"csrf": token, "password": password},
            headers={"Origin": self.url},
            allow_redirects=False,
        ) as response:
            return response.status

    @contextlib.asynccontextmanager
    async def signed_in(self) -> AsyncIterator[aiohttp.ClientSession]:
        async with aiohttp.ClientSession(cookie_jar=owner_jar()) as http:
            assert await self.sign_in(http) == 303
            yield http


def overview_of(site: Site) -> dict[str, Any]:
    """What the daemon's `LinkComponent.overview` says, for the site's configured cameras."""
    rows = [
        {
            "camera": camera.id,
            "state": "recording" if index else "offline",
            "since": None,
            "last_error": None,
            "last_frame": None,
            "footage_days": 2.5 if index else 0.4,
            "bar_days": 2.0,
            "meets_bar": bool(index),
            "oldest": None,
            "newest": None,
        }
        for index, camera in enumerate(site.config.cameras)
    ]
    first = site.config.cameras[0].id
    checks: dict[str, dict[str, Any]] = {
        camera.id: {"verdict": "pass", "advice": [], "checked": "2026-12-06T12:00:00+00:00"}
        for camera in site.config.cameras
    }
    checks[first] = {"verdict": "fail", "advice": [FAILED_CHECK_ADVICE], "checked": None}
    return {
        "site": site.config.site.id,
        "link": {"state": "connected"},
        "recorders": rows,
        "checks": checks,
    }


class _StoreThread:
    """The site's store used off the event loop, as the daemon's store thread does."""

    def __init__(self, store: ClipStore) -> None:
        self.store = store

    async def run(self, function: Callable[[ClipStore], _T]) -> _T:
        return await asyncio.to_thread(function, self.store)


@contextlib.asynccontextmanager
async def daemon_socket(site: Site, *, group: str | None = None) -> AsyncIterator[ControlServer]:
    """The daemon's control socket over `site`, as `rtcc-edge run` serves it."""

    async def overview() -> dict[str, Any]:
        return overview_of(site)

    config = site.config
    server = ControlServer(
        config.control.socket,
        site.service,
        group=group,
        overview=overview,
        owner_group=config.control.owner_group,
        pictures=Pictures(
            _StoreThread(site.store),
            config.state_dir / "picture-tmp",
            cameras=lambda: [camera.id for camera in config.cameras],
        ),
        state_dir=config.state_dir,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def _text(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


async def wait_for_page(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while True:
            if process.returncode is not None:
                raise AssertionError(f"the page exited ({process.returncode}): {_text(log)}")
            try:
                # Only whether it answers: the tests that care pin the certificate themselves.
                async with http.get(url + "/login", ssl=False) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() < deadline, f"the page never answered: {_text(log)}"
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def page_process(config_file: Path, url: str, log: Path) -> AsyncIterator[None]:
    """`rtcc-edge owner serve` with `config_file`, until the block ends (SIGTERM)."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "agent", "owner", "serve", "--config", str(config_file)),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await wait_for_page(url, process, log)
        yield
    finally:
        if process.returncode is None:
            process.terminate()
        code = await asyncio.wait_for(process.wait(), 30)
        assert code in (0, -15), f"the page exited with {code}: {_text(log)}"


def page_config(site: Site, port: int) -> Path:
    """The site's configuration as a file, with the page on 127.0.0.1:`port`."""
    path = write_site_config(site.config, Path(site.config.state_dir).parent / "agent.toml")
    page = site.config.owner_page
    with path.open("a") as out:
        out.write(
            f'\n[owner_page]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
            f'tls_cert = "{page.certificate}"\ntls_key = "{page.private_key}"\n'
        )
    return path


@contextlib.asynccontextmanager
async def running_page(site: Site, *, password: str = OWNER_PASSWORD) -> AsyncIterator[RunningPage]:
    set_password(site.config.owner_dir, password)
    port = free_port("127.0.0.1")
    # As `owner serve` decides: HTTPS once the page's certificate is made, else loopback HTTP.
    scheme = "https" if site.config.owner_page.certificate.is_file() else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    config_file = page_config(site, port)
    log = config_file.with_name("owner-page.log")
    async with daemon_socket(site), page_process(config_file, url, log):
        yield RunningPage(url, site, log, config_file)
