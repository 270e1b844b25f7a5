"""An incident covering many simulated sites: from each signed request leaving the hub to the
site's answer (`accepted`, or `pending_approval` for a registry camera) stored in the hub's
database (issue 16: p95 under 1 s for 50 sites).

    python -m bench.incident_bench [--sites 50] [--rounds 3] [--database URL | --postgres]

Everything is real: a TLS mosquitto; `sitesim` sites in one process running the agent's real
link code (each request's signature, issuer, audience, lifetime and replay checked, the owner's
policy applied, a hold placed, the ledger written, the event signed); the hub's library opening
the incident exactly as the console does (`hub.incidents.open_incident`: every camera in range,
each request signed, recorded, published) and its ingestion verifying every event into the
database (SQLite, or `--database postgresql+asyncpg://…`).

Per request: the moment it was published → the moment its first event was stored; and from
the analyst's send (the incident opened: every request signed, recorded and published, one after
the other) → each answer stored. The peer,
in the same run on the same broker: a bare MQTT round trip (publish to a site topic, a client
there answers at once) — the floor no verification, policy or database adds to.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
from sqlalchemy import select

from agent.log import configure_logging
from bench._hub_rig import hub_rig
from bench.record_cpu import machine
from hub.audit import Actor
from hub.db import RequestRow
from hub.incidents import IncidentSpec, open_incident
from hub.registry import map_cameras
from sitesim import CameraSpec, SiteSpec
from sitesim.layout import Sharing, offset
from tests.support.postgres import running_cluster

CENTRE = (35.0844, -106.6504)


def sites_around(count: int) -> list[SiteSpec]:
    """`count` sites within 250 m of the centre, one camera each, a third registry only."""
    specs = []
    for index in range(count):
        lat, lon = offset(*CENTRE, (index % 10 - 5) * 45.0, (index // 10 - 2) * 45.0)
        sharing: Sharing = "registry" if index % 3 == 2 else "integrated"
        camera = CameraSpec("cam-1", "Front door", sharing, False, lat, lon, 90, 90)
        specs.append(SiteSpec(f"inc-{index:03d}", f"Shop {index}", lat, lon, (camera,)))
    return specs


class TimedPublisher:
    """The ingestion's connection, noting when each request left."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: dict[str, float] = {}

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        claims = json.loads(_b64(payload.split(b".")[1]))
        self.sent[claims["jti"]] = time.time()
        await self.inner.publish(topic, payload, qos=qos)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def mqtt_round_trip(rig: Any, count: int) -> list[float]:
    """publish → answer → back, on the same broker, with nothing in between."""
    times: list[float] = []
    async with rig.broker.client() as hub, rig.broker.client("echo-site") as site:
        await site.subscribe("rtcc/v1/sites/echo-site/req", qos=1)
        await hub.subscribe("rtcc/v1/sites/echo-site/evt", qos=1)

        async def echo() -> None:
            with contextlib.suppress(aiomqtt.MqttError):
                async for message in site.messages:
                    await site.publish("rtcc/v1/sites/echo-site/evt", message.payload, qos=1)

        task = asyncio.create_task(echo())
        try:
            await asyncio.sleep(0.2)
            for _ in range(count):
                started = time.monotonic()
                await hub.publish("rtcc/v1/sites/echo-site/req", b"x" * 600, qos=1)
                await anext(aiter(hub.messages))
                times.append(time.monotonic() - started)
        finally:
            task.cancel()
    return times


async def bench(sites: int, rounds: int, database: str | None) -> dict[str, Any]:
    specs = sites_around(sites)
    latencies: list[float] = []
    from_send: list[float] = []
    answered: dict[str, int] = {}
    async with hub_rig(specs, database=database) as rig:
        console = rig.console
        db = console.hub.db
        waited = time.monotonic()
        while len(await map_cameras(db)) < sites:
            if time.monotonic() - waited > 300:
                raise TimeoutError("the registries did not all arrive")
            await asyncio.sleep(0.2)
        for round_number in range(rounds):
            publisher = TimedPublisher(console.ingestor)
            now = datetime.now(UTC)
            spec = IncidentSpec(
                case=f"BENCH-{round_number}",
                reason="benchmark",
                lat=CENTRE[0],
                lon=CENTRE[1],
                radius_m=400,
                start=now - timedelta(minutes=10),
                end=now - timedelta(minutes=5),
            )
            pressed = time.time()
            outcome = await open_incident(console.hub, publisher, spec, Actor("bench"))
            assert len(outcome.sent) == sites, (len(outcome.sent), outcome.unsent)
            ids = [row.id for row in outcome.sent]
            deadline = time.monotonic() + 120
            while True:
                async with db.session() as session:
                    rows = (
                        (await session.execute(select(RequestRow).where(RequestRow.id.in_(ids))))
                        .scalars()
                        .all()
                    )
                if all(r.first_event is not None for r in rows):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("not every site answered")
                await asyncio.sleep(0.1)
            for row in rows:
                assert row.first_event is not None
                latencies.append(row.first_event.timestamp() - publisher.sent[row.id])
                from_send.append(row.first_event.timestamp() - pressed)
                answered[row.state] = answered.get(row.state, 0) + 1
            await asyncio.sleep(1.0)
        floor = await mqtt_round_trip(rig, 50)
    p95 = percentile(latencies, 0.95)
    floor_median = statistics.median(floor)
    return {
        "machine": machine(),
        "database": "postgresql" if database else "sqlite",
        "sites": sites,
        "rounds": rounds,
        "requests": len(latencies),
        "answers": answered,
        "first_event_median_s": round(statistics.median(latencies), 3),
        "first_event_p95_s": round(p95, 3),
        "first_event_max_s": round(max(latencies), 3),
        "from_send_p95_s": round(percentile(from_send, 0.95), 3),
        "from_send_max_s": round(max(from_send), 3),
        "mqtt_round_trip_median_s": round(floor_median, 4),
        "ratio_median_over_round_trip": round(statistics.median(latencies) / floor_median, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", metavar="URL", help="default: SQLite in a temp dir")
    parser.add_argument(
        "--postgres", action="store_true", help="start a throw-away PostgreSQL cluster and use it"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning", fmt="console")
    if args.postgres:
        with running_cluster() as cluster:
            result = asyncio.run(bench(args.sites, args.rounds, cluster.new_database()))
    else:
        result = asyncio.run(bench(args.sites, args.rounds, args.database))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}")
    print(
        f"incident covering {result['sites']} simulated sites, {result['rounds']} rounds, "
        f"{result['requests']} requests, database {result['database']}: {result['answers']}"
    )
    print(
        f"request published → first event stored: median {result['first_event_median_s']:.3f} s,"
        f" p95 {result['first_event_p95_s']:.3f} s, max {result['first_event_max_s']:.3f} s"
    )
    print(
        f"the analyst's send (signing and publishing all {result['sites']}) → each answer stored:"
        f" p95 {result['from_send_p95_s']:.3f} s, max {result['from_send_max_s']:.3f} s"
    )
    print(
        f"bare MQTT round trip on the same broker: median "
        f"{result['mqtt_round_trip_median_s'] * 1000:.1f} ms; ratio "
        f"{result['ratio_median_over_round_trip']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
