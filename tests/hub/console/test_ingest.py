"""The ingestion takes whatever arrives on the sites' topics without falling over: garbage,
a forged event, an event for a request the hub never sent; only verified events are stored, and
the next good message is still ingested."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import func, select

from agent.identity import DeviceKey
from hub.db import EventRow
from hub.mqtt import hub_client
from sitesim import CameraSpec, SiteSpec
from tests.hub.conftest import HubRunner
from tests.support.broker import MosquittoBroker
from tests.support.console import RunningConsole, running_console

SITE = SiteSpec("ing-a", "Corner Grocery", 35.0844, -106.6504, (
    CameraSpec("front", "Front door", "integrated", False, 35.0844, -106.6504),
))  # fmt: skip


async def test_bad_messages_cost_nothing(
    hub_cli: HubRunner, broker: MosquittoBroker, db_url: str, tmp_path: Path
) -> None:
    async with running_console(hub_cli, db_url) as hub:
        await hub.wait_ingesting()
        ingestor = hub.console.ingestor
        assert ingestor is not None
        async with hub.sites([SITE], broker, tmp_path / "sites") as sim:
            config = hub.home.load_config()
            assert config.broker is not None
            site_key = sim.sites[0].key
            now = int(time.time())
            event = {"iss": "ing-a", "iat": now, "req": "never-sent", "state": "accepted",
                     "seq": 1}  # fmt: skip
            async with hub_client(config.broker) as client:
                topic = "rtcc/v1/sites/ing-a/evt"
                await client.publish(topic, b"\x00\xffnot a jwt at all", qos=1)
                await client.publish(topic, DeviceKey.generate().sign(event).encode(), qos=1)
                await client.publish(topic, site_key.sign({**event, "seq": "x"}).encode(), qos=1)
                await client.publish(topic, site_key.sign(event).encode(), qos=1)
            deadline = time.monotonic() + 20
            # The one verified event is stored, though no request matches it (the messages
            # before it were judged and dropped on the way: the ingestion takes them in order).
            while await _stored(hub) < 1:
                assert time.monotonic() < deadline, dict(ingestor.counts)
                await asyncio.sleep(0.1)
            assert ingestor.counts["evt:malformed"] == 2  # not a JWS; a bad seq
            assert ingestor.counts["evt:forged"] == 1
            assert ingestor.counts["evt:verified"] == 1 and await _stored(hub) == 1
            # Still alive: a new status from the site is ingested.
            before = ingestor.counts["status:verified"]
            sim.sites[0].session.presence_changed()
            while ingestor.counts["status:verified"] <= before:
                assert time.monotonic() < deadline + 20
                await asyncio.sleep(0.1)


async def _stored(hub: RunningConsole) -> int:
    async with hub.console.hub.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(EventRow)) or 0)
