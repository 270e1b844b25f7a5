"""A hub for the console benchmarks: a TLS mosquitto, a hub home with its keys, `rtcc-hub serve`
(in this process, on the database asked for), an analyst, and simulated sites (`sitesim`, the
agent's real link code) enrolled with it."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub import analysts
from hub.ca import site_ca
from hub.console.app import CONSOLE, Console
from hub.console.settings import ConsoleSettings
from hub.keys import new_signing_key
from hub.server import HubServer
from hub.state import BrokerConfig, HubConfig, HubHome
from sitesim import Broker, Rtcc, Simulation, SiteSpec
from tests.support.broker import MosquittoBroker, eventually

ISSUER = "https://rtcc.bench"
ANALYST, PASSWORD = "bench", "bench-password-1"


@dataclass
class Rig:
    work: Path
    broker: MosquittoBroker
    home: HubHome
    server: HubServer
    url: str
    simulation: Simulation

    @property
    def console(self) -> Console:
        assert self.server._runner is not None
        return self.server._runner.app[CONSOLE]


def _home(root: Path, broker: MosquittoBroker) -> HubHome:
    home = HubHome(root)
    cert, key = broker.issue_client_cert("hub")
    home.save_config(
        HubConfig(
            issuer=ISSUER,
            broker=BrokerConfig(
                url=broker.url(hub=True), ca_file=broker.ca_file, cert_file=cert, key_file=key
            ),
        )
    )
    new_signing_key(home)
    return home


@contextlib.asynccontextmanager
async def hub_rig(
    specs: Sequence[SiteSpec], *, database: str | None = None, footage_s: float = 0
) -> AsyncIterator[Rig]:
    work = Path(tempfile.mkdtemp(prefix="rtcc-bench-hub-"))
    broker = MosquittoBroker()
    broker.start()
    try:
        home = _home(work / "hub", broker)
        server = HubServer(home, host="127.0.0.1", port=0, database=database,
                           console=ConsoleSettings(ingest_id="bench-hub"))  # fmt: skip
        listening = await server.start()
        try:
            console = server._runner.app[CONSOLE]  # type: ignore[union-attr]
            await analysts.add_user(console.hub.db, ANALYST, PASSWORD, role="supervisor")
            assert console.ingestor is not None
            await eventually(lambda: console.ingestor is not None and console.ingestor.connected)
            simulation = Simulation(
                specs,
                work / "sites",
                Broker(broker.url(), broker.ca_file, broker.issue_client_cert),
                Rtcc(ISSUER, home.jwks_path, upload_ca=site_ca(home).cert_path),
                footage_s=footage_s,
            )
            for site in simulation.sites:
                home.trust_site(site.id, site.public_jwk)
            async with simulation:
                await simulation.wait_connected(within=300)
                yield Rig(work, broker, home, server, listening.url, simulation)
        finally:
            await server.close()
    finally:
        broker.close()
