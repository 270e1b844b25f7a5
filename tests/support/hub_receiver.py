"""`rtcc-hub serve` (with its upload receiver) on a free loopback port, for delivery tests.

    async with running_receiver(tmp_path / "hub") as hub:
        url = hub.mint("2026-000123", jti, "clip.mp4")     # a signed, expiring upload URL
        ... the agent PUTs to it, trusting hub.ca_file ...
        hub.stored("2026-000123", jti, "clip.mp4")         # where the receiver keeps it

The hub home gets its CA (which issues the server certificate) and the receiver's HMAC key on
first use, exactly as `rtcc-hub serve` makes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from hub.ca import site_ca
from hub.presign import UploadSigner, case_directory, load_upload_key
from hub.server import HubServer
from hub.state import HubHome

HOST = "127.0.0.1"


@dataclass
class RunningReceiver:
    home: HubHome
    url: str
    ca_file: Path

    def mint(self, case: str, request_id: str, name: str, *, ttl: float = 600) -> str:
        signer = UploadSigner(load_upload_key(self.home))
        return signer.upload_url(self.url, case, request_id, name, expires=int(time.time() + ttl))

    def stored(self, case: str, request_id: str, name: str) -> Path:
        return case_directory(self.home, case, request_id) / name


@contextlib.asynccontextmanager
async def running_receiver(root: Path) -> AsyncIterator[RunningReceiver]:
    home = HubHome(root)
    home.root.mkdir(parents=True, exist_ok=True)
    server = HubServer(home, host=HOST, port=0)
    try:
        listening = await server.start()
        yield RunningReceiver(home, listening.url, site_ca(home).cert_path)
    finally:
        await server.close()
