"""The Requests page's previews through the real control socket, over a real store holding
stamped footage of the registry camera: a clip with a hole in its window shows the player and
the sentence; a snapshot of a past moment shows its picture; a snapshot of "now" shows the
camera's picture and says why."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent.control import ControlServer
from agent.control.owner_client import AsyncOwnerClient
from agent.control.preview import Previews
from agent.owner_page.app import make_app
from agent.owner_page.password import set_password
from agent.owner_page.preview import EXACT, EXACT_STILL
from tests.control.test_previews import CAMERA, CASE, record
from tests.delivery.site import (
    DeliverySite,
    delivering_site,
    delivery_config,
    footage_spec,
    recent,
    rfc3339,
    wall,
)
from tests.support.broker import free_port
from tests.support.media import MediaSpec
from tests.support.owner_page import CSRF_FIELD, OWNER_PASSWORD, owner_jar
from tests.support.rtcc import make_request


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("preview-page-media")


@pytest.fixture(scope="module")
def footage() -> MediaSpec:
    return footage_spec(recent(300), 30)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rc-pp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def serving(site: DeliverySite, socket: Path) -> AsyncIterator[str]:
    """The page's app over the daemon's socket at `socket` (in the page's own process in real
    life; here in the test's, which changes nothing it serves)."""
    set_password(site.config.owner_dir, OWNER_PASSWORD)
    control = site.config.control.model_copy(update={"socket": socket})
    config = site.config.model_copy(update={"control": control})
    app = make_app(owner=AsyncOwnerClient(config, via="page"))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port("127.0.0.1")
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def requests_page(url: str) -> str:
    async with aiohttp.ClientSession(cookie_jar=owner_jar()) as http:
        async with http.get(url + "/login") as response:
            match = CSRF_FIELD.search(await response.text())
        assert match is not None
        form = {"csrf": match.group(1), "password": OWNER_PASSWORD}
        async with http.post(url + "/login", data=form, headers={"Origin": url}) as response:
            assert response.status == 200
        async with http.get(url + "/requests") as response:
            return await response.text()


async def pending(site: DeliverySite, kind: str, **claims: Any) -> str:
    jti = str(uuid.uuid4())
    upload = {"url": "https://127.0.0.1:1/x", "manifest_url": "https://127.0.0.1:1/m"}
    payload = make_request(kind, jti=jti, camera=CAMERA, case=CASE, upload=upload, **claims)
    await site.service.handle(payload)
    await site.sink.wait_for(jti, "pending_approval")
    return jti


def card(page: str, jti: str) -> str:
    start = page.index(f'id="request-{jti}"')
    return page[start : page.index("</section>", start)]


async def test_the_requests_page_shows_each_kind_of_preview(
    tmp_path: Path, short_dir: Path, media_dir: Path, footage: MediaSpec
) -> None:
    config = delivery_config(tmp_path / "state")
    await asyncio.to_thread(record, config, media_dir, footage)
    socket = short_dir / "control.sock"
    async with delivering_site(config) as site:
        previews = Previews(site.service, site.store, config.state_dir / "previews")
        server = ControlServer(socket, site.service, group=None, previews=previews)
        await server.start()
        try:
            holed = await pending(
                site,
                "clip",
                start=rfc3339(wall(footage, 0) - timedelta(seconds=8)),
                end=rfc3339(wall(footage, 60)),
            )
            past = await pending(site, "snapshot", at=rfc3339(wall(footage, 100)))
            now = await pending(site, "snapshot")
            async with serving(site, socket) as url:
                page = await requests_page(url)
        finally:
            await server.close()

    shown = card(page, holed)
    video = f'<video controls preload="metadata" playsinline src="/requests/{holed}/preview.mp4"'
    assert video in shown and EXACT in shown
    assert "Part of this window is not recorded: " in shown
    shown = card(page, past)
    assert f'src="/requests/{past}/preview.jpg"' in shown and EXACT_STILL in shown
    shown = card(page, now)
    assert f'src="/cameras/{CAMERA}/picture.jpg"' in shown
    assert "the camera&#39;s picture at the moment it is sent" in shown
