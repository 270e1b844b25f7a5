"""A city: N simulated sites on a three-node NATS Server cluster, and the same on one mosquitto,
in one run (issue 17).

    python -m bench.city --sites 1000 [--incident-sites 100] [--loads 2] [--json]

Everything is real: the brokers as `rtcc-hub broker-config` writes them (NATS: three
`nats-server` nodes, MQTT + JetStream, TLS `verify_and_map`, one user per site; mosquitto:
the test suite's TLS + ACL broker); `rtcc-hub serve` as its own process (the console and the
event ingestion, SQLite); `sitesim` sites in this process (the agent's real link code, each
with its own keys, replay cache, ledger and persistent MQTT session), spread over the nodes.

Measured per broker:
- every site connected, and every registry verified into the hub's database;
- the console's map with every camera, in Debian's Chromium (as `bench.console_map`);
- an incident covering `--incident-sites` sites (within 400 m of the centre; the rest of the
  city lies beyond): each request published → its first event stored, p95;
- resident memory (VmRSS) of the hub process and of each broker process, after the above;
- failover: SIGKILL the node most sites are on; per site, the kill → its session up again on
  another node. For mosquitto there is no other node: it is restarted at once (what a
  supervisor does) and the figure is kill → back on the restarted broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
from sqlalchemy import select

from agent.log import configure_logging
from bench.console_map import _load
from bench.incident_bench import CENTRE, TimedPublisher, percentile, sites_around
from bench.record_cpu import machine
from hub import analysts
from hub.audit import Actor
from hub.broker_config_nats import write_users
from hub.ca import site_ca
from hub.core import Hub
from hub.db import RequestRow
from hub.incidents import IncidentSpec, open_incident
from hub.keys import new_signing_key
from hub.mqtt import connect_any
from hub.registry import map_cameras
from hub.state import BrokerConfig, HubConfig, HubHome
from sitesim import Broker, Rtcc, Simulation, SiteSpec, city
from sitesim.layout import offset
from tests.support.broker import MosquittoBroker
from tests.support.chromium import ensure_chromium, spki_hash
from tests.support.nats import NatsCluster

ISSUER = "https://rtcc.bench"
ANALYST, PASSWORD = "bench", "bench-password-1"


def city_specs(sites: int, incident_sites: int) -> list[SiteSpec]:
    """`incident_sites` close around the centre (one camera each), the rest of the city 2 to
    8 km away, 1 to 3 cameras each."""
    near = sites_around(incident_sites)
    far_centre = offset(*CENTRE, 5000.0, 0.0)
    return near + city(sites - incident_sites, centre=far_centre, spread_m=3000, prefix="city")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@dataclass
class BrokerUnderTest:
    kind: str
    hub_broker: BrokerConfig
    site_broker: Broker
    pids: Callable[[], dict[str, int]]
    kill_busiest: Callable[[Simulation], tuple[str, set[str]]]
    after_kill: Callable[[], None]
    close: Callable[[], None]
    prepare: Callable[[], None]


def _nats(work: Path, home: HubHome) -> BrokerUnderTest:
    cluster = NatsCluster(work / "cluster", home=home)
    ca = site_ca(home)

    def kill_busiest(simulation: Simulation) -> tuple[str, set[str]]:
        on: dict[int, set[str]] = {}
        for site in simulation.sites:
            on.setdefault(site.session.broker.port, set()).add(site.id)
        port = max(on, key=lambda p: len(on[p]))
        node = cluster.node_on(port)
        cluster.kill(node)
        return node.name, on[port]

    def prepare() -> None:
        write_users(home, cluster.files.directory)  # every simulated site is trusted by now
        cluster.start_all()

    return BrokerUnderTest(
        kind="nats (3 nodes)",
        hub_broker=cluster.hub_broker,
        site_broker=Broker(cluster.urls[0], ca.cert_path, cluster.credentials, cluster.urls),
        pids=lambda: {n.name: cluster.pid(n) for n in cluster.nodes if cluster.running(n)},
        kill_busiest=kill_busiest,
        after_kill=lambda: None,
        close=cluster.close,
        prepare=prepare,
    )


def _mosquitto(work: Path, home: HubHome) -> BrokerUnderTest:
    broker = MosquittoBroker(work / "mosquitto")
    cert, key = broker.issue_client_cert("hub")
    hub_broker = BrokerConfig(
        url=broker.url(hub=True), ca_file=broker.ca_file, cert_file=cert, key_file=key
    )

    def pids() -> dict[str, int]:
        proc = broker._proc
        return {"mosquitto": proc.pid} if proc is not None and broker.running else {}

    def kill_busiest(simulation: Simulation) -> tuple[str, set[str]]:
        broker.kill()
        return "mosquitto", {site.id for site in simulation.sites}

    return BrokerUnderTest(
        kind="mosquitto (1 node)",
        hub_broker=hub_broker,
        site_broker=Broker(broker.url(), broker.ca_file, broker.issue_client_cert),
        pids=pids,
        kill_busiest=kill_busiest,
        after_kill=broker.start,
        close=broker.close,
        prepare=broker.start,
    )


def _start_serve(home: HubHome, work: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "hub", "--home", str(home.root), "serve", "--port", "0"]
    argv += ["--ready-file", str(work / "serve-ready.json"), "--ingest-id", "bench-hub"]
    with (work / "serve.log").open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)


@contextlib.asynccontextmanager
async def hub_process(home: HubHome, work: Path) -> AsyncIterator[tuple[int, str]]:
    ready = work / "serve-ready.json"
    proc = _start_serve(home, work)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rtcc-hub serve did not start; see {work / 'serve.log'}")
            await asyncio.sleep(0.1)
        yield proc.pid, json.loads(ready.read_text())["url"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def map_render(home: HubHome, url: str, cameras: int, loads: int) -> list[float]:
    pin = spki_hash((home.root / "tls" / "server.pem").read_bytes())
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=ensure_chromium(),
            args=["--no-sandbox", f"--ignore-certificate-errors-spki-list={pin}"],
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await page.goto(url + "/login")
        await page.fill('input[name="username"]', ANALYST)
        await page.fill('input[name="password"]', PASSWORD)
        await page.click('button[type="submit"]')
        await page.wait_for_url(url + "/")
        times = [await _load(page, url + "/", cameras) for _ in range(loads)]
        await browser.close()
    return times


async def incident(
    hub: Hub, broker: BrokerConfig, sites: int
) -> tuple[list[float], dict[str, int]]:
    async with connect_any(broker) as client:
        publisher = TimedPublisher(client)
        now = datetime.now(UTC)
        spec = IncidentSpec(
            case="CITY-1",
            reason="benchmark",
            lat=CENTRE[0],
            lon=CENTRE[1],
            radius_m=400,
            start=now - timedelta(minutes=10),
            end=now - timedelta(minutes=5),
        )
        outcome = await open_incident(hub, publisher, spec, Actor("bench"))
        assert len(outcome.sent) == sites, (len(outcome.sent), outcome.unsent)
        ids = [row.id for row in outcome.sent]
        deadline = time.monotonic() + 180
        while True:
            async with hub.db.session() as session:
                query = select(RequestRow).where(RequestRow.id.in_(ids))
                rows = (await session.execute(query)).scalars().all()
            if all(r.first_event is not None for r in rows):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("not every site answered")
            await asyncio.sleep(0.1)
    latencies = [r.first_event.timestamp() - publisher.sent[r.id] for r in rows if r.first_event]
    states: dict[str, int] = {}
    for row in rows:
        states[row.state] = states.get(row.state, 0) + 1
    return latencies, states


async def failover(under: BrokerUnderTest, simulation: Simulation) -> dict[str, Any]:
    before = {site.id: site.session.broker.port for site in simulation.sites}
    killed_at = time.monotonic()
    node, affected = under.kill_busiest(simulation)
    under.after_kill()
    sessions = {site.id: site.session for site in simulation.sites if site.id in affected}
    # Wait until each session has noticed (down), then until it is up again.
    seen_down: set[str] = set()
    back: dict[str, float] = {}
    deadline = time.monotonic() + 300
    while len(back) < len(sessions) and time.monotonic() < deadline:
        now = time.monotonic()
        for site_id, session in sessions.items():
            if site_id in back:
                continue
            if not session.connected:
                seen_down.add(site_id)
            elif site_id in seen_down:
                back[site_id] = now - killed_at
        await asyncio.sleep(0.02)
    moved = sum(1 for s in sessions if simulation.site(s).session.broker.port != before[s])
    times = sorted(back.values())
    return {
        "killed": node,
        "sites_on_it": len(sessions),
        "sites_back": len(back),
        "sites_moved_to_another_node": moved,
        "back_median_s": round(statistics.median(times), 2) if times else None,
        "back_p95_s": round(percentile(times, 0.95), 2) if times else None,
        "back_max_s": round(times[-1], 2) if times else None,
    }


def _new_home(kind: str) -> tuple[Path, HubHome]:
    work = Path(tempfile.mkdtemp(prefix=f"rtcc-city-{kind}-"))
    work.chmod(0o755)  # mosquitto drops to its own user and must reach its directory
    home = HubHome(work / "hub")
    home.root.mkdir(parents=True)
    new_signing_key(home)
    home.save_config(HubConfig(issuer=ISSUER))
    return work, home


async def one_broker(kind: str, specs: list[SiteSpec], args: argparse.Namespace) -> dict[str, Any]:
    work, home = _new_home(kind)
    under = _nats(work, home) if kind == "nats" else _mosquitto(work, home)
    if kind != "nats":
        home.save_config(home.load_config().model_copy(update={"broker": under.hub_broker}))
    simulation = Simulation(
        specs,
        work / "sites",
        under.site_broker,
        Rtcc(ISSUER, home.jwks_path, upload_ca=site_ca(home).cert_path),
    )
    for site in simulation.sites:
        home.trust_site(site.id, site.public_jwk)
    expected = sum(1 for s in specs for c in s.cameras if c.sharing != "private")
    result: dict[str, Any] = {"broker": under.kind}
    hub = await Hub.open(home)
    try:
        await analysts.add_user(hub.db, ANALYST, PASSWORD, role="supervisor")
        under.prepare()
        async with hub_process(home, work) as (hub_pid, url):
            started = time.monotonic()
            async with simulation:
                await simulation.wait_connected(within=900)
                result["all_connected_s"] = round(time.monotonic() - started, 1)
                while len(await map_cameras(hub.db)) < expected:
                    if time.monotonic() - started > 900:
                        raise TimeoutError("the registries did not all arrive")
                    await asyncio.sleep(0.5)
                result["registries_stored_s"] = round(time.monotonic() - started, 1)
                result["cameras"] = expected
                loads = await map_render(home, url, expected, args.loads)
                result["map_ready_s"] = [round(x, 3) for x in loads]
                latencies, states = await incident(hub, under.hub_broker, args.incident_sites)
                result["incident_answers"] = states
                result["incident_first_event_p50_s"] = round(statistics.median(latencies), 3)
                result["incident_first_event_p95_s"] = round(percentile(latencies, 0.95), 3)
                result["incident_first_event_max_s"] = round(max(latencies), 3)
                result["rss_mib"] = {"hub (rtcc-hub serve)": rss_mib(hub_pid)} | {
                    name: rss_mib(pid) for name, pid in under.pids().items()
                }
                result["rss_mib"]["sitesim + bench process"] = rss_mib(os.getpid())
                result["failover"] = await failover(under, simulation)
    finally:
        await hub.close()
        under.close()
        shutil.rmtree(work, ignore_errors=True)
    return result


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    specs = city_specs(args.sites, args.incident_sites)
    runs = [await one_broker(kind, specs, args) for kind in args.brokers]
    return {"machine": machine(), "sites": args.sites, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--incident-sites", type=int, default=100)
    parser.add_argument("--loads", type=int, default=2, help="map loads per broker")
    parser.add_argument(
        "--brokers", nargs="+", default=["nats", "mosquitto"], choices=["nats", "mosquitto"]
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.incident_sites > args.sites:
        parser.error("--incident-sites cannot exceed --sites")
    configure_logging("warning", fmt="console")
    result = asyncio.run(bench(args))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
