"""The map registry from the sites' signed retained registries, through the hub's ingestion
into the database (SQLite and PostgreSQL): simulated sites appear with their cameras; a forged
registry removes a site's cameras and the fleet page says why; an untrusted site appears once
its key is trusted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from agent.identity import DeviceKey
from hub.mqtt import hub_client
from sitesim import CameraSpec, SiteSpec
from tests.hub.conftest import HubRunner
from tests.support.broker import MosquittoBroker
from tests.support.console import json_get, running_console

SITES = [
    SiteSpec("reg-a", "Corner Grocery", 35.0844, -106.6504, (
        CameraSpec("front", "Front door", "integrated", True, 35.08441, -106.65041, 270, 90,
                   "Hikvision", "DS-2CD2143G2-I", "V5.5.0 build 170725"),
        CameraSpec("lot", "Parking lot", "registry", False, 35.08452, -106.65061),
        CameraSpec("office", "Office", "private"),
    )),
    SiteSpec("reg-b", "Main St Pharmacy", 35.0861, -106.6489, (
        CameraSpec("door", "Door", "integrated", False, 35.0861, -106.6489, 180, 60),
    )),
]  # fmt: skip


async def _cameras(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = await json_get(http, url + "/api/cameras")
    return data


async def _until(check: Any, *, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_sites_appear_and_a_forged_registry_hides_them(
    hub_cli: HubRunner, broker: MosquittoBroker, db_url: str, tmp_path: Path
) -> None:
    async with running_console(hub_cli, db_url) as hub:
        await hub.add_analyst("ana")
        await hub.wait_ingesting()
        async with hub.sites(SITES, broker, tmp_path / "sites"), hub.signed_in("ana") as http:

            async def listed() -> list[dict[str, Any]]:
                cams = await _cameras(http, hub.url)
                return cams if len(cams) == 3 else []

            cameras = await _until(listed)
            by_id = {(c["s"], c["c"]): c for c in cameras}
            assert set(by_id) == {("reg-a", "front"), ("reg-a", "lot"), ("reg-b", "door")}
            front = by_id["reg-a", "front"]
            assert (front["m"], front["l"], front["h"], front["f"]) == ("integrated", True, 270, 90)
            assert by_id["reg-a", "lot"]["m"] == "registry"
            assert front["sn"] == "Corner Grocery" and front["o"] is True

            async with http.get(hub.url + "/fleet") as response:
                page = await response.text()
            assert "CVE-2021-36260" in page  # the Hikvision camera's firmware

            # Someone publishes a registry for reg-b that reg-b's key did not sign.
            forger = DeviceKey.generate()
            forged = forger.sign(
                {"iss": "reg-b", "iat": int(time.time()), "cameras": [],
                 "site": {"id": "reg-b", "name": "Not the pharmacy"}}
            )  # fmt: skip
            config = hub.home.load_config()
            assert config.broker is not None
            async with hub_client(config.broker) as client:
                await client.publish(
                    "rtcc/v1/sites/reg-b/registry", forged.encode(), qos=1, retain=True
                )

            async def hidden() -> bool:
                return all(c["s"] != "reg-b" for c in await _cameras(http, hub.url))

            await _until(hidden)
            async with http.get(hub.url + "/fleet") as response:
                page = await response.text()
            assert "registry forged" in page and "hidden from the map" in page


async def test_a_site_appears_once_its_key_is_trusted(
    hub_cli: HubRunner, broker: MosquittoBroker, db_url: str, tmp_path: Path
) -> None:
    async with running_console(hub_cli, db_url) as hub:
        await hub.add_analyst("ana")
        await hub.wait_ingesting()
        async with (
            hub.sites(SITES[:1], broker, tmp_path / "sites") as sim,
            hub.signed_in("ana") as http,
        ):
            await _until(lambda: _count(http, hub.url, 2))
            # Forget the key: sites.json rewritten without reg-a.
            hub.home.sites_path.write_text("{}\n")
            # The ingestion re-checks stored registries when the trusted keys change; a new
            # status message from the site wakes it.
            sim.sites[0].session.presence_changed()
            await _until(lambda: _count(http, hub.url, 0))
            hub.home.trust_site("reg-a", sim.sites[0].public_jwk)
            sim.sites[0].session.presence_changed()
            await _until(lambda: _count(http, hub.url, 2))


async def _count(http: aiohttp.ClientSession, url: str, expected: int) -> bool:
    return len(await _cameras(http, url)) == expected
