"""A real hub for enrollment tests: a hub home with its signing key and CAs, the mosquitto
configuration `rtcc-hub broker-config` writes (optionally running), and `rtcc-hub serve` over
HTTPS on a free loopback port, all as the product sets them up.

    async with running_hub(tmp_path, broker=True) as hub:
        token = hub.token()                        # a fresh one-time token
        ... rtcc-edge enroll --hub hub.url --token token --ca hub.ca_file ...
        hub.mqtt.site_port / hub.mqtt.hub_port     # the generated broker, running

`HubThread(root)` runs the same in a thread of its own, for synchronous tests (and processes)
that talk to it. `write_agent_config(path, state_dir)` writes a minimal pre-enrollment agent
configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from hub.broker_config import BrokerFiles, default_owner, write_broker_config
from hub.ca import site_ca
from hub.keys import new_signing_key
from hub.server import HubServer
from hub.state import HubConfig, HubHome
from hub.tokens import Location, TokenStore
from tests.support.broker import free_port
from tests.support.rtcc import ISSUER

HOST = "127.0.0.1"


def write_agent_config(path: Path, state_dir: Path, *, extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# the owner's own comment, which enrollment must keep\n"
        f'state_dir = "{state_dir}"\n'
        "\n"
        "[site]\n"
        "# the RTCC assigns the id at enrollment\n"
        'id = "unenrolled"\n'
        'name = "not enrolled yet"\n'
        'contact = "owner@example.org"\n'
        "\n"
        "[log]\n"
        'level = "info"  # keep me\n' + extra
    )
    path.chmod(0o640)
    return path


class GeneratedMosquitto:
    """mosquitto started with exactly the files `broker-config` wrote."""

    def __init__(self, files: BrokerFiles) -> None:
        self.files = files
        self.log_path = files.directory.parent / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, ports: tuple[int, int]) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [exe, "-c", str(self.files.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log()}")
            if all(_listening(port) for port in ports):
                return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen: {self.log()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=15)
        self._proc = None


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


@dataclass
class EnrollHub:
    home: HubHome
    url: str
    ca_file: Path  # the site CA: it issued the HTTPS and the broker's server certificates
    broker_files: BrokerFiles
    site_port: int
    hub_port: int
    mqtt: GeneratedMosquitto | None

    def token(
        self,
        name: str = "Corner Grocery",
        *,
        location: tuple[float, float] = (35.0844, -106.6504),
        ttl: timedelta = timedelta(hours=1),
    ) -> str:
        token, _ = TokenStore(self.home).create(
            site_name=name, location=Location(lat=location[0], lon=location[1]), ttl=ttl
        )
        return token

    def hub_tls(self) -> ssl.SSLContext:
        """The hub's own broker identity, as `broker-config` set it up in hub.toml."""
        broker = self.home.load_config().broker
        assert broker is not None and broker.cert_file and broker.key_file
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(broker.cert_file, broker.key_file)
        return context


def _broker_dir() -> Path:
    """Outside pytest's 0700 tmp tree: mosquitto runs as its own user and must reach it."""
    parent = Path(tempfile.mkdtemp(prefix="rtcc-enroll-broker-"))
    parent.chmod(0o755)
    return parent


@contextlib.asynccontextmanager
async def running_hub(root: Path, *, broker: bool = False) -> AsyncIterator[EnrollHub]:
    home = HubHome(root / "hub")
    home.root.mkdir(parents=True)
    new_signing_key(home)
    home.save_config(HubConfig(issuer=ISSUER))
    site_port, hub_port = free_port(), free_port()
    while hub_port == site_port:
        hub_port = free_port()
    parent = _broker_dir()
    files = write_broker_config(
        home,
        parent / "broker",
        host=HOST,
        port=site_port,
        bind=HOST,
        hub_port=hub_port,
        hub_bind=HOST,
        run_as=default_owner(),
    )
    mqtt = None
    server = HubServer(home, host=HOST, port=0)
    try:
        if broker:
            mqtt = GeneratedMosquitto(files)
            mqtt.start((site_port, hub_port))
        listening = await server.start()
        yield EnrollHub(
            home=home,
            url=listening.url,
            ca_file=site_ca(home).cert_path,
            broker_files=files,
            site_port=site_port,
            hub_port=hub_port,
            mqtt=mqtt,
        )
    finally:
        await server.close()
        if mqtt is not None:
            print(f"mosquitto log:\n{mqtt.log()}")
            mqtt.stop()
        shutil.rmtree(parent, ignore_errors=True)


class HubThread:
    """`rtcc-hub serve` on its own event loop in a thread, for synchronous clients."""

    def __init__(self, root: Path, *, broker: bool = False) -> None:
        self.root = root
        self.broker = broker
        self.hub: EnrollHub | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with running_hub(self.root, broker=self.broker) as hub:
            self.hub = hub
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> EnrollHub:
        self._thread.start()
        assert self._ready.wait(30), "the hub did not start"
        assert self.hub is not None
        return self.hub

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
