"""The Cameras list names each camera as the configuration file does now, and a camera removed
from the file since the agent started says so instead of offering settings that are gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from agent.cameras.edit import remove_camera, rename_camera
from agent.config import AgentConfig
from tests.support.link_service import running_service, site_config
from tests.support.owner_page import owner_jar, running_page


async def test_names_and_removed_cameras_follow_the_file(tmp_path: Path) -> None:
    config: AgentConfig = site_config(tmp_path / "state")
    async with running_service(config) as site, running_page(site) as served:
        assert served.config_file is not None
        await asyncio.to_thread(rename_camera, served.config_file, "side-door", "Side entrance")
        await asyncio.to_thread(remove_camera, served.config_file, "stockroom")
        async with aiohttp.ClientSession(cookie_jar=owner_jar()) as http:
            assert await served.sign_in(http) == 303
            async with http.get(served.url + "/cameras") as response:
                assert response.status == 200
                text = await response.text()
    side = text[text.index('id="camera-side-door"') :]
    assert "<h2>Side entrance</h2>" in side[:200]
    stock = text[text.index('id="camera-stockroom"') :]
    stock = stock[: stock.index("</section>")]
    assert "Removed from your cameras" in stock
    assert 'href="/cameras/stockroom/settings"' not in stock
    front = text[text.index('id="camera-front-door"') :]
    assert 'href="/cameras/front-door/settings"' in front[: front.index("</section>")]
