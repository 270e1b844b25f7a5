"""Deploying the whole chain for the end-to-end tests: a hub home, a site configuration
trusted by it, and the product's processes (`rtcc-hub serve`, `rtcc-edge run`) as an owner and
an RTCC would run them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.identity import DeviceKey, device_key_path
from hub.ca import site_ca
from tests.hub.conftest import HubRunner, init_home
from tests.support.broker import MosquittoBroker

REPO = Path(__file__).resolve().parents[2]
CAMERA = "front-door"


def agent_config(
    path: Path, state: Path, *, site: str, mqtt: MosquittoBroker, hub: HubRunner, cam: Any
) -> Path:
    cert, key = mqtt.issue_client_cert(site)
    text = f"""
state_dir = "{state}"
[site]
id = "{site}"
name = "Corner Grocery"
[rtcc]
broker_url = "{mqtt.url()}"
ca_file = "{mqtt.ca_file}"
cert_file = "{cert}"
key_file = "{key}"
issuer = "https://rtcc.test"
jwks_file = "{hub.home.jwks_path}"
[store]
segment_seconds = 10
min_free = 0
[upload]
ca_file = "{site_ca(hub.home).cert_path}"
[policy]
allowed_relay_hosts = ["127.0.0.1", "localhost"]
[control]
socket = "{state / "control.sock"}"
[log]
level = "info"
format = "console"
[[cameras]]
id = "{CAMERA}"
name = "Front door"
rtsp_url = "{cam.rtsp_url("main")}"
username = "{cam.username}"
secret = "{cam.password}"
sharing = "integrated"
live = true
[cameras.location]
lat = 35.0844
lon = -106.6504
"""
    path.write_text(text)
    return path


def edge(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`rtcc-edge --config CONFIG args…` as the owner runs it."""
    return subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@contextlib.asynccontextmanager
async def process(*argv: str, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_for_file(path: Path, within: float, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(path.exists):
        assert proc.returncode is None, f"process exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        await asyncio.sleep(0.1)


async def next_json(
    stream: asyncio.StreamReader, kind: str, *, within: float = 60
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            line = await stream.readline()
            assert line, f"the hub's request ended before a {kind} line"
            data: dict[str, Any] = json.loads(line)
            if data.get("type") == kind:
                return data


@dataclass
class Deployment:
    hub: HubRunner
    site: str
    state: Path
    config: Path
    tmp: Path

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[asyncio.subprocess.Process]:
        """`rtcc-hub serve` on a free port, up and listening."""
        ready = self.tmp / "serve.json"
        async with process(
            "-m", "hub", "--home", str(self.hub.home.root), "serve", "--port", "0",
            "--ready-file", str(ready), log=self.tmp / "serve.log",
        ) as serve:  # fmt: skip
            await wait_for_file(ready, 60, serve)
            yield serve

    @contextlib.asynccontextmanager
    async def running(self, *, log: str = "agent.log") -> AsyncIterator[asyncio.subprocess.Process]:
        """`rtcc-edge run`, with its owner socket up."""
        async with process(
            "-m", "agent", "--config", str(self.config), "run", log=self.tmp / log
        ) as run:
            await wait_for_file(self.state / "control.sock", 60, run)
            yield run


def deploy(
    tmp_path: Path,
    broker: MosquittoBroker,
    cam: Any,
    capsys: pytest.CaptureFixture[str],
    *,
    write_config: Callable[..., Path] = agent_config,
) -> Deployment:
    """A hub home and an enrolled-like site for `cam`: its config written, its device key
    registered with the hub (what enrollment does, without the token round trip)."""
    hub = init_home(tmp_path / "hub", broker, capsys)
    site = f"site-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "agent"
    state.mkdir()
    config = write_config(tmp_path / "agent.toml", state, site=site, mqtt=broker, hub=hub, cam=cam)
    device = DeviceKey.load_or_create(device_key_path(state))
    assert hub.run("sites", "trust", site, json.dumps(device.public_jwk)).code == 0
    return Deployment(hub, site, state, config, tmp_path)
