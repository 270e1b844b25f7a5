"""The RTCC console for tests: `rtcc-hub serve` in this process on a free port, on the database
the test gives (SQLite or the session's PostgreSQL), its event ingestion connected to the test
broker; analysts; simulated sites (`sitesim`, the agent's real link code) trusted by the hub.

    async with running_console(hub_runner, db_url) as hub:
        await hub.add_analyst("ana", role="analyst")
        async with hub.sites([site_a, site_b], broker) as sim: ...
        async with hub.signed_in("ana") as http:
            async with http.get(hub.url + "/api/cameras") as response: ...

`browser_page` gives a Playwright page in Debian's Chromium (never a downloaded browser) that
trusts the hub's CA by its key pin, and saves screenshots under `test-artifacts/screenshots/`
(git-ignored).
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hub import analysts
from hub.analysts import Role
from hub.ca import site_ca
from hub.console.app import CONSOLE, Console
from hub.console.settings import ConsoleSettings
from hub.server import HubServer
from hub.state import HubHome
from sitesim import Broker, Rtcc, Simulation, SiteSpec
from tests.hub.conftest import HubRunner
from tests.support.broker import MosquittoBroker, eventually
from tests.support.rtcc import ISSUER

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"


@dataclass
class RunningConsole:
    home: HubHome
    url: str
    server: HubServer
    db_url: str

    @property
    def ca_file(self) -> Path:
        return site_ca(self.home).cert_path

    @property
    def console(self) -> Console:
        runner = self.server._runner
        assert runner is not None
        return runner.app[CONSOLE]

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    async def add_analyst(self, username: str, *, role: Role = "analyst") -> None:
        await analysts.add_user(self.console.hub.db, username, PASSWORD, role=role)

    async def wait_ingesting(self) -> None:
        ingestor = self.console.ingestor
        assert ingestor is not None, "the console has no ingestion (no broker configured?)"
        await eventually(lambda: ingestor.connected, within=30)

    @contextlib.asynccontextmanager
    async def signed_in(
        self, username: str, *, password: str = PASSWORD
    ) -> AsyncIterator[aiohttp.ClientSession]:
        """An HTTP client with a signed-in session (and `csrf` set on it)."""
        jar = aiohttp.CookieJar(unsafe=True)
        connector = aiohttp.TCPConnector(ssl=self.client_ssl())
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
            response = await self.sign_in(http, username, password)
            assert response.status == 200, await response.text()
            http.headers["X-CSRF-Token"] = await self.csrf(http)
            yield http

    async def sign_in(
        self, http: aiohttp.ClientSession, username: str, password: str
    ) -> aiohttp.ClientResponse:
        async with http.get(f"{self.url}/login") as form:
            token = _field(await form.text(), "csrf")
        return await http.post(
            f"{self.url}/login",
            data={"csrf": token, "username": username, "password": password, "next": "/fleet"},
        )

    async def csrf(self, http: aiohttp.ClientSession) -> str:
        async with http.get(f"{self.url}/fleet", headers={"Accept": "text/html"}) as page:
            return _field(await page.text(), "csrf")

    @contextlib.asynccontextmanager
    async def sites(
        self,
        specs: Sequence[SiteSpec],
        broker: MosquittoBroker,
        root: Path,
        *,
        footage_s: float = 0,
    ) -> AsyncIterator[Simulation]:
        """Simulated sites enrolled with this hub (certificates from the test broker's CA,
        device keys trusted by the hub), connected."""
        simulation = Simulation(
            specs,
            root,
            Broker(broker.url(), broker.ca_file, broker.issue_client_cert),
            Rtcc(ISSUER, self.home.jwks_path, upload_ca=self.ca_file),
            footage_s=footage_s,
        )
        for site in simulation.sites:
            self.home.trust_site(site.id, site.public_jwk)
        async with simulation:
            await simulation.wait_connected()
            yield simulation


def _field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} field in the page"
    return match.group(1)


@contextlib.asynccontextmanager
async def running_console(
    hub: HubRunner,
    db_url: str,
    *,
    settings: ConsoleSettings | None = None,
) -> AsyncIterator[RunningConsole]:
    """`rtcc-hub serve` for `hub`'s home (initialised on the test broker) on `db_url`."""
    server = HubServer(
        hub.home, host="127.0.0.1", port=0, database=db_url, console=settings or ConsoleSettings()
    )
    listening = await server.start()
    try:
        yield RunningConsole(hub.home, listening.url, server, db_url)
    finally:
        await server.close()


async def json_get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers={"Accept": "application/json"}) as response:
        assert response.status == 200, await response.text()
        return await response.json()
