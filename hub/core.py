"""`Hub`: what every client of the hub library works with — the home (configuration and keys,
which stay files), the database, the trusted site keys and the change notices.

    hub = await Hub.open(HubHome.resolve(), database=None)   # the URL of hub.toml, or SQLite
    ...
    await hub.close()

The console, the command line and the MQTT event ingestion each open one; several hub
processes may share one PostgreSQL database (and one home on shared storage).
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.identity import DeviceKey
from hub.bus import ChangeBus
from hub.db import Database, database_url
from hub.keys import load_signing_key
from hub.request import RequestError
from hub.server import load_serve_settings
from hub.state import HubConfig, HubHome, TrustedSite, TrustedSitesFile


class Hub:
    def __init__(self, home: HubHome, db: Database, *, bus: ChangeBus | None = None) -> None:
        self.home = home
        self.db = db
        self.bus = bus or ChangeBus()
        self._trusted = TrustedSitesFile(home)
        self._key: DeviceKey | None = None

    @classmethod
    async def open(cls, home: HubHome, *, database: str | None = None, migrate: bool = True) -> Hub:
        """Open (and migrate) the database named by `database`, `$RTCC_HUB_DATABASE`, `hub.toml`
        or the default SQLite file in the home. DatabaseError if it cannot be."""
        db = await Database.open(database_url(home, database), migrate=migrate)
        return cls(home, db)

    async def close(self) -> None:
        await self.db.close()

    def config(self) -> HubConfig:
        return self.home.load_config()

    def trusted(self) -> Mapping[str, TrustedSite]:
        """The site keys the hub trusts (re-read when `sites.json` changed)."""
        return self._trusted()

    def signing_key(self) -> DeviceKey:
        if self._key is None:
            self._key = load_signing_key(self.home)
        return self._key

    def issuer(self) -> str:
        issuer = self.config().issuer
        if issuer is None:
            raise RequestError("no issuer configured: run `rtcc-hub keys new --issuer URL`")
        return issuer

    def public_url(self) -> str | None:
        return load_serve_settings(self.home).public_url
