"""The owner's page for tests: served on a free loopback port, over a running request service
(`tests.support.link_service`), with the owner password set as `rtcc-edge owner passwd` does.

    async with running_service(config, handlers=...) as site:
        async with running_page(site) as page:            # page.url: http://127.0.0.1:PORT
            async with page.signed_in() as http: ...      # an aiohttp session with its cookie
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from agent.link.owner_actions import OwnerActions
from agent.owner_page.app import make_app
from agent.owner_page.password import set_password
from agent.owner_page.pictures import Pictures
from agent.store import ClipStore
from tests.support.broker import free_port
from tests.support.link_service import Site

OWNER_PASSWORD = "correct horse battery"
_T = TypeVar("_T")
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class RunningPage:
    url: str
    site: Site

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
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
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
    return {"site": site.config.site.id, "link": {"state": "connected"}, "recorders": rows}


class _StoreThread:
    """The site's store used off the event loop, as the daemon's store thread does."""

    def __init__(self, store: ClipStore) -> None:
        self.store = store

    async def run(self, function: Callable[[ClipStore], _T]) -> _T:
        return await asyncio.to_thread(function, self.store)


@contextlib.asynccontextmanager
async def running_page(
    site: Site,
    *,
    password: str = OWNER_PASSWORD,
    ssl_context: ssl.SSLContext | None = None,
    secure: bool = False,
) -> AsyncIterator[RunningPage]:
    """`ssl_context`: served over HTTPS (page.url https://); `secure`: Secure cookies."""
    set_password(site.config.owner_dir, password)
    actions = OwnerActions(site.service)

    async def overview() -> dict[str, Any]:
        return overview_of(site)

    app = make_app(
        owner_dir=site.config.owner_dir,
        actions=lambda: actions,
        overview=overview,
        state_dir=site.config.state_dir,
        pictures=Pictures(_StoreThread(site.store), site.config.state_dir / "owner-page-tmp"),
        secure=secure,
    )
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port("127.0.0.1")
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    scheme = "https" if ssl_context is not None else "http"
    try:
        yield RunningPage(f"{scheme}://127.0.0.1:{port}", site)
    finally:
        await runner.cleanup()
