"""A real three-node NATS Server cluster (MQTT + JetStream) for the tests, configured by the
product itself: a hub home in a temp directory, `write_nats_config` with free loopback ports,
three `nats-server` processes.

    from tests.support.nats import nats_cluster  # noqa: F401   (in a conftest or test module)

`nats_cluster` is one cluster for the whole test session (starting one costs seconds and three
processes). Tests may `kill(node)` a node (SIGKILL) and must `start(node)` it again before they
end. Sites are trusted up front (`SITES`), each with a device key and a broker certificate, so
no test needs the rolling restart that new users take (see `hub.broker_config_nats`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.identity import DeviceKey
from hub.broker_config_nats import NatsFiles, NatsNode, write_nats_config, write_users
from hub.ca import site_ca, write_private
from hub.keys import new_signing_key
from hub.state import BrokerConfig, HubConfig, HubHome, write_atomic
from tests.support.broker import free_port
from tests.support.rtcc import ISSUER

SITES = ("city-a", "city-b", "city-c")
_START_TIMEOUT = 60.0


def _nats_exe() -> str:
    exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(exe).exists():
        raise RuntimeError("nats-server is not installed (Debian package nats-server)")
    return exe


def _free_range(count: int) -> int:
    """A first port with `count` free ports in a row (loopback)."""
    for _ in range(200):
        base = free_port()
        if base + count > 65535:
            continue
        try:
            for offset in range(1, count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")


class NatsCluster:
    def __init__(self, workdir: Path, *, home: HubHome | None = None) -> None:
        """With `home`, a hub home that already trusts its sites (a benchmark's); without, a
        fresh one trusting `SITES`."""
        self.workdir = workdir
        self.keys: dict[str, DeviceKey] = {}
        if home is None:
            home = HubHome(workdir / "hub")
            home.root.mkdir(parents=True)
            new_signing_key(home)
            home.save_config(HubConfig(issuer=ISSUER))
            for site in SITES:
                self.keys[site] = DeviceKey.generate()
                home.trust_site(site, self.keys[site].public_jwk)
        self.home = home
        self.files: NatsFiles = write_nats_config(
            self.home,
            workdir / "nats",
            host="127.0.0.1",
            port=_free_range(3),
            cluster_port=_free_range(3),
            client_port=_free_range(3),
            monitor_port=_free_range(3),
        )
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # --- what tests use -----------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[NatsNode, ...]:
        return self.files.nodes

    @property
    def urls(self) -> tuple[str, ...]:
        return self.files.site_urls

    @property
    def ca_file(self) -> Path:
        return site_ca(self.home).cert_path

    @property
    def hub_broker(self) -> BrokerConfig:
        broker = self.home.load_config().broker
        assert broker is not None
        return broker

    def credentials(self, site: str) -> tuple[Path, Path]:
        """A broker client certificate for `site` from the hub's site CA, as enrollment gives."""
        cert, key = self.workdir / "certs" / f"{site}.pem", self.workdir / "certs" / f"{site}.key"
        if not cert.exists():
            pair = site_ca(self.home).issue_client(site)
            write_private(key, pair.key_pem)
            write_atomic(cert, pair.cert_pem.decode())
        return cert, key

    def node_on(self, port: int) -> NatsNode:
        return next(node for node in self.nodes if node.mqtt_port == port)

    def log(self, node: NatsNode) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self._log_path(node).read_text(errors="replace")
        return ""

    def pid(self, node: NatsNode) -> int:
        return self._procs[node.name].pid

    def running(self, node: NatsNode) -> bool:
        proc = self._procs.get(node.name)
        return proc is not None and proc.poll() is None

    def start(self, node: NatsNode) -> None:
        proc = self._procs.get(node.name)
        if proc is not None and proc.poll() is None:
            return
        with self._log_path(node).open("ab") as log:
            self._procs[node.name] = subprocess.Popen(
                [_nats_exe(), "-c", str(node.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def kill(self, node: NatsNode) -> None:
        self._end(node, signal.SIGKILL)

    def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)
        self.wait_healthy()

    def restart_rolling(self) -> None:
        """Apply a new `users.conf`: each node in turn, the others holding the sessions."""
        write_users(self.home, self.files.directory)
        for node in self.nodes:
            self._end(node, signal.SIGTERM)
            self.start(node)
            self.wait_healthy()

    def wait_healthy(self) -> None:
        """Until every running node answers healthy (JetStream and its streams current)."""
        deadline = time.monotonic() + _START_TIMEOUT
        pending = [n for n in self.nodes if n.name in self._procs]
        while pending:
            node = pending[0]
            proc = self._procs[node.name]
            if proc.poll() is not None:
                raise RuntimeError(f"{node.name} exited: {self.log(node)[-3000:]}")
            if self._healthy(node):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} not healthy: {self.log(node)[-3000:]}")
            time.sleep(0.2)

    def close(self) -> None:
        for node in self.nodes:
            self._end(node, signal.SIGTERM)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- internals ------------------------------------------------------------------------------

    def _log_path(self, node: NatsNode) -> Path:
        return self.workdir / f"{node.name}.log"

    def _healthy(self, node: NatsNode) -> bool:
        url = f"http://127.0.0.1:{node.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                answer: dict[str, object] = json.loads(response.read())
                return answer.get("status") == "ok"
        except (OSError, ValueError):
            return False

    def _end(self, node: NatsNode, sig: signal.Signals) -> None:
        proc = self._procs.pop(node.name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def running_cluster() -> Iterator[NatsCluster]:
    cluster = NatsCluster(Path(tempfile.mkdtemp(prefix="rtcc-nats-")))
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def nats_cluster() -> Iterator[NatsCluster]:
    """One three-node cluster for the session; a test that kills a node starts it again."""
    with running_cluster() as cluster:
        yield cluster
