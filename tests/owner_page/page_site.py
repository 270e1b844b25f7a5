"""A site (request service + the daemon's control socket, with its overview and pictures) for
the page-boundary test, run as the service user: `python -m tests.owner_page.page_site CONFIG
OUT` — two registry requests wait for the owner, their ids are written to OUT, and it serves
until SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from agent.config import load_config
from tests.support.link_service import running_service
from tests.support.owner_page import daemon_socket
from tests.support.rtcc import RTCC, jti_of, make_request


async def serve(config_path: Path, out: Path) -> None:
    config = load_config(config_path)
    assert config.rtcc.jwks_file is not None
    RTCC.write_jwks(Path(config.rtcc.jwks_file))  # this process's test RTCC key
    async with running_service(config) as site, daemon_socket(site, group="rtcc-edge"):
        pending = [make_request("clip", camera="parking-lot") for _ in range(2)]
        for payload in pending:
            await site.service.handle(payload)
        await asyncio.to_thread(out.write_text, json.dumps([jti_of(p) for p in pending]))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), Path(sys.argv[2])))
