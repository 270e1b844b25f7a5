"""A page's event stream: the first state at once, and the stream ends when the server shuts
down (an open page must not hold `rtcc-hub serve` up until its shutdown timeout)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.hub.conftest import HubRunner
from tests.support.console import running_console


async def test_stream_sends_state_and_ends_at_shutdown(hub_cli: HubRunner, tmp_path: Path) -> None:
    async with running_console(hub_cli, f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}") as hub:
        await hub.add_analyst("ana")
        async with hub.signed_in("ana") as http:
            now = datetime.now(UTC)
            form = {
                "lat": "10.0", "lon": "10.0", "radius": "100", "tz_offset": "0",
                "start": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"),
                "end": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                "case": "2026-1", "reason": "nobody there",
            }  # fmt: skip
            async with http.post(hub.url + "/incidents", data=form) as response:
                page = await response.text()
                assert "No shared camera was within range" in page
                incident = str(response.url).rsplit("/", 1)[1]
            async with http.get(f"{hub.url}/incidents/{incident}/events") as stream:
                assert stream.headers["Content-Type"] == "text/event-stream"
                first = await stream.content.readline()
                assert json.loads(first.decode().removeprefix("data: ")) == {
                    "cameras": [],
                    "counts": {"total": 0, "good": 0, "wait": 0, "info": 0, "bad": 0, "off": 0},
                }
                closing = asyncio.create_task(hub.server.close())
                async with asyncio.timeout(30):  # far below aiohttp's 60 s shutdown timeout
                    while await stream.content.readline():
                        pass
                await closing
