"""Incidents end to end with simulated sites that hold real (synthetic) footage: the command line
and the console ask every shared camera in range; the integrated camera's clip arrives in the
locker verified; the registry camera waits for its owner; two hub processes on one database act
on each event once."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.db import Custody, EventRow, Evidence, RequestRow
from sitesim import CameraSpec, SiteSpec
from tests.hub.conftest import HubRunner
from tests.support.broker import MosquittoBroker
from tests.support.console import RunningConsole, running_console

CENTRE = (35.0844, -106.6504)
NEAR = [
    SiteSpec("inc-a", "Corner Grocery", 35.0844, -106.6504, (
        CameraSpec("front", "Front door", "integrated", False, 35.08441, -106.65041, 270, 90),
    )),
    SiteSpec("inc-b", "Main St Pharmacy", 35.0851, -106.6509, (
        CameraSpec("lot", "Parking lot", "registry", False, 35.0851, -106.6509),
    )),
]  # fmt: skip
FAR = SiteSpec("inc-c", "Far Away Diner", 35.1200, -106.6000, (
    CameraSpec("door", "Door", "integrated", False, 35.1200, -106.6000),
))  # fmt: skip
FOOTAGE_S = 120.0


async def _wait(check: Any, *, within: float = 90.0) -> Any:
    deadline = time.monotonic() + within
    while not (result := await check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.25)
    return result


async def _evidence(hub: RunningConsole, case: str) -> list[Evidence]:
    async with hub.console.hub.db.session() as session:
        return list(
            (await session.execute(select(Evidence).where(Evidence.case == case))).scalars()
        )


async def _verified(hub: RunningConsole, case: str) -> list[Evidence]:
    found = await _evidence(hub, case)
    return found if found and all(e.verified_ok is not None for e in found) else []


def _window() -> tuple[str, str]:
    now = datetime.now(UTC)
    return (
        (now - timedelta(seconds=70)).isoformat().replace("+00:00", "Z"),
        (now - timedelta(seconds=30)).isoformat().replace("+00:00", "Z"),
    )


@pytest.mark.slow
async def test_incident_from_the_command_line(
    hub_cli: HubRunner, broker: MosquittoBroker, db_url: str, tmp_path: Path
) -> None:
    async with running_console(hub_cli, db_url) as hub:
        await hub.wait_ingesting()
        async with hub.sites([*NEAR, FAR], broker, tmp_path / "sites", footage_s=FOOTAGE_S):
            start, end = _window()
            result = await hub_cli.run_async(
                "--database", db_url, "incident", "new",
                "--near", f"{CENTRE[0]},{CENTRE[1]}", "--radius", "300m",
                "--from", start, "--to", end, "--case", "2026-114523",
                "--reason", "armed robbery at the corner store", "--requester", "det-ortiz",
                "--json",
            )  # fmt: skip
            assert result.code == 0, result.out + result.err
            lines = [json.loads(line) for line in result.out.splitlines()]
            cameras = {(x["site"], x["group"]) for x in lines if x["type"] == "camera"}
            assert cameras == {("inc-a", "integrated"), ("inc-b", "registry")}  # not inc-c
            states = {x["camera"]: x["state"] for x in lines if x["type"] == "event"}
            assert states["inc-a/front"] in ("accepted", "progress", "completed")
            assert states["inc-b/lot"] == "pending_approval"

            found = await _wait(lambda: _verified(hub, "2026-114523"))
            assert len(found) == 1 and found[0].site_id == "inc-a"
            assert found[0].verified_ok, found[0].verification
            assert found[0].window_start is not None
            async with hub.console.hub.db.session() as session:
                actions = list(
                    (
                        await session.execute(
                            select(Custody.action).where(Custody.evidence_id == found[0].id)
                        )
                    ).scalars()
                )
                pending = await session.get(RequestRow, _request_of(lines, "inc-b/lot"))
            assert actions == ["received", "verified"]
            assert pending is not None and pending.state == "pending_approval"
            clip = hub.home.root / "cases" / "2026-114523" / found[0].request_id / "clip.mp4"
            assert clip.is_file()

            # Someone alters the stored clip: verifying again says so, and the custody shows it.
            data = bytearray(clip.read_bytes())
            data[len(data) // 2] ^= 0xFF
            clip.write_bytes(bytes(data))
            await hub.add_analyst("ana")
            async with (
                hub.signed_in("ana") as http,
                http.post(f"{hub.url}/evidence/{found[0].id}/verify") as response,
            ):
                assert response.status == 200
                page = await response.text()
            assert 'data-verified="no"' in page and "NOT verified" in page
            assert "is not the signed" in page  # the SHA-256 check names both hashes
            async with hub.console.hub.db.session() as session:
                stored = await session.get(Evidence, found[0].id)
                last = (
                    (
                        await session.execute(
                            select(Custody)
                            .where(Custody.evidence_id == found[0].id)
                            .order_by(Custody.id.desc())
                        )
                    )
                    .scalars()
                    .first()
                )
            assert stored is not None and stored.verified_ok is False
            assert last is not None and (last.actor, last.action) == ("ana", "re-verified")
            assert last.detail.startswith("NOT verified")


def _request_of(lines: list[dict[str, Any]], camera: str) -> str:
    return str(next(x["request"] for x in lines if x.get("camera") == camera and x["request"]))


@pytest.mark.slow
async def test_two_hub_processes_act_on_each_event_once(
    hub_cli: HubRunner, broker: MosquittoBroker, db_url: str, tmp_path: Path
) -> None:
    from hub.console.settings import ConsoleSettings

    async with (
        running_console(hub_cli, db_url, settings=ConsoleSettings(ingest_id="hub-one")) as one,
        running_console(hub_cli, db_url, settings=ConsoleSettings(ingest_id="hub-two")) as two,
    ):
        await one.add_analyst("ana")
        await one.wait_ingesting()
        await two.wait_ingesting()
        async with (
            one.sites(NEAR[:1], broker, tmp_path / "sites", footage_s=FOOTAGE_S),
            one.signed_in("ana") as http,
        ):
            now = datetime.now(UTC)
            form = {
                "lat": str(CENTRE[0]), "lon": str(CENTRE[1]), "radius": "200",
                "start": (now - timedelta(seconds=70)).strftime("%Y-%m-%dT%H:%M:%S"),
                "end": (now - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S"),
                "tz_offset": "0", "case": "2026-000200", "reason": "shots fired",
            }  # fmt: skip
            async with http.post(one.url + "/incidents", data=form) as response:
                assert response.status == 200, await response.text()
                assert "/incidents/" in str(response.url)
            found = await _wait(lambda: _verified(two, "2026-000200"))
            assert len(found) == 1 and found[0].verified_ok, found[0].verification
            async with one.console.hub.db.session() as session:
                events = (
                    await session.execute(
                        select(EventRow.request_id, EventRow.seq, func.count()).group_by(
                            EventRow.request_id, EventRow.seq
                        )
                    )
                ).all()
                received = await session.scalar(
                    select(func.count()).select_from(Custody).where(Custody.action == "received")
                )
                request = (await session.execute(select(RequestRow))).scalar_one()
            # Both processes received every event; each was stored and acted on once.
            for hub in (one, two):
                ingestor = hub.console.ingestor
                assert ingestor is not None and ingestor.counts["evt:verified"] >= len(events)
            assert events and all(count == 1 for _, _, count in events)
            assert sorted(seq for _, seq, _ in events) == list(range(1, len(events) + 1))
            assert received == 1
            assert request.state == "completed" and request.last_seq == len(events)
