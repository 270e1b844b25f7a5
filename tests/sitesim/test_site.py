"""A simulated site: the agent's real link (signed registry and status, verified requests,
events, ledger) over a synthetic store whose footage keeps growing in real time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.ledger import read_entries
from agent.store import ClipStore
from hub.mqtt import retained
from hub.state import TrustedSite
from hub.trust import check_message
from sitesim import Broker, CameraSpec, Rtcc, Simulation, SiteSpec, city
from tests.support.broker import MosquittoBroker, broker  # noqa: F401
from tests.support.rtcc import ISSUER, RTCC, forged, make_claims

SITE = SiteSpec("sim-one", "Corner Grocery", 35.0844, -106.6504, (
    CameraSpec("front", "Front door", "integrated", True, 35.0844, -106.6504, 270, 90),
    CameraSpec("back", "Back door", "private"),
))  # fmt: skip


def _simulation(tmp_path: Path, mqtt: MosquittoBroker, *, footage_s: float = 0) -> Simulation:
    jwks = RTCC.write_jwks(tmp_path / "rtcc-jwks.json")
    return Simulation(
        [SITE],
        tmp_path / "sites",
        Broker(mqtt.url(), mqtt.ca_file, mqtt.issue_client_cert),
        Rtcc(ISSUER, jwks),
        footage_s=footage_s,
    )


async def test_registry_is_signed_and_lists_only_shared_cameras(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
) -> None:
    simulation = _simulation(tmp_path, broker)
    async with simulation:
        await simulation.wait_connected()
        site = simulation.sites[0]
        trusted = {
            "sim-one": TrustedSite(
                jwk=site.public_jwk, kid=site.public_jwk["kid"], added=datetime.now(UTC)
            )
        }
        deadline = time.monotonic() + 20
        while True:
            async with broker.client("hub") as client:
                found = await retained(client, ["rtcc/v1/sites/sim-one/registry"])
            if found or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        checked = check_message(found[0].topic.value, bytes(found[0].payload), trusted)
        assert checked.ok, checked.reason
        assert checked.claims is not None
        assert [c["id"] for c in checked.claims["cameras"]] == ["front"]


async def test_requests_are_verified_and_footage_keeps_growing(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
) -> None:
    simulation = _simulation(tmp_path, broker, footage_s=20)
    async with simulation:
        await simulation.wait_connected()
        site = simulation.sites[0]
        started = datetime.now(UTC)
        await asyncio.sleep(4)
        with ClipStore.from_config(site.config, create=False) as store:
            coverage = store.coverage("front", started - timedelta(seconds=18), started)
            status = {s.camera: s for s in store.status()}
        assert not coverage.gaps, coverage
        newest = status["front"].newest
        assert newest is not None and newest > started + timedelta(seconds=1)  # still growing
        # A forged request is refused and logged by the real link code.
        await site.service.handle(forged(make_claims("clip", aud="sim-one", camera="front")))
        entries = list(read_entries(site.config.state_dir / "ledger"))
        assert any(e.data.get("code") == "bad_signature" for e in entries)


def test_city_layout_is_deterministic() -> None:
    first, second = city(50), city(50)
    assert first == second
    assert len({s.id for s in first}) == 50
    assert sum(len(s.cameras) for s in first) >= 50
