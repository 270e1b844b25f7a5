"""A real mosquitto for the tests: TLS on loopback, client certificates, passwords, an ACL.

`MosquittoBroker` runs one mosquitto process on two free 127.0.0.1 ports:

- `cert_port`: sites, mutual TLS (`require_certificate true`, `use_identity_as_username true`):
  the client certificate's CN is the MQTT username. Certificates from `issue_client_cert(site)`.
- `password_port`: sites, TLS without a client certificate; users from `add_password_user()`.
- `hub_port`: the RTCC side, mutual TLS against a separate hub CA; certificates from
  `issue_client_cert(HUB_IDENTITY)`.

On both site listeners `use_username_as_clientid true` binds the client id to the username:
without it a site could connect with another site's client id and take over (and wipe) that
site's persistent session with its queued requests (seen with mosquitto 2.0.11). The hub needs
several clients at once (`watch` beside `request`), hence its own listener that only hub
certificates can reach. One ACL serves all: every user may read and write only under
`rtcc/v1/sites/<its username>/`, the hub identity under all of `rtcc/v1/sites/`.

Persistence is on (in the broker's own temp directory), so persistent sessions and their queued
QoS 1 messages survive client reconnects and `stop()`/`start()` of the broker.
`allow_anonymous false`.

Use it from any test package through the fixtures below; in that package's conftest.py:

    from tests.support.broker import broker, private_broker  # noqa: F401

`broker` is shared by the whole session (never stop it); `private_broker` is a fresh broker for
one test, which may stop, kill and restart it. Make TLS contexts for hand-made clients with
`broker.client_tls(cn)` (certificate) or `broker.client_tls()` (password listener).
`CuttableProxy` sits between a client and the broker and cuts every connection on demand, the
way a network failure does (the broker then publishes the client's will).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HUB_IDENTITY = "hub"
HOST = "127.0.0.1"
_START_TIMEOUT = 15.0
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class BrokerError(RuntimeError):
    """mosquitto did not start or stop as asked; the message carries its log."""


def _mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        raise BrokerError("mosquitto is not installed (Debian package mosquitto; `make sysdeps`)")
    return exe


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class TestCA:
    """A throw-away certificate authority (ECDSA P-256) that issues server and client certs."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtcc-edge test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = directory / "ca.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, *, server: bool = False) -> tuple[Path, Path]:
        """Write `<cn>.pem` and `<cn>.key` (mode 0600); server certs name localhost/127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
                ),
                critical=False,
            )
        cert = builder.sign(self._key, hashes.SHA256())
        cert_path = self.directory / f"{cn}.pem"
        key_path = self.directory / f"{cn}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_bytes = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_bytes)
        return cert_path, key_path


class MosquittoBroker:
    """One mosquitto process (see the module docstring). Not thread-safe; tests drive it."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="rtcc-mosquitto-"))
        self.host = HOST
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.cert_port, self.password_port, self.hub_port = sorted(ports)
        # Files mosquitto reads live in `broker/` (owned by the mosquitto user when we are
        # root, since it drops privileges); client credentials for the tests in `clients/`.
        self._broker_dir = self.workdir / "broker"
        self._broker_dir.mkdir(parents=True, exist_ok=True)
        (self._broker_dir / "data").mkdir(exist_ok=True)
        self.ca = TestCA(self.workdir / "clients")
        self.hub_ca = TestCA(self.workdir / "hub-clients")
        self.ca_file = self.ca.cert_path
        self._issued: dict[str, tuple[Path, Path]] = {}
        self.log_path = self.workdir / "mosquitto.log"
        self._passwd = self._broker_dir / "passwd"
        self._passwd.touch()
        self._write_config()
        self._proc: subprocess.Popen[bytes] | None = None

    # --- configuration ---------------------------------------------------------------------

    def _write_config(self) -> None:
        server_cert, server_key = self.ca.issue("localhost", server=True)
        shutil.copy(self.ca_file, self._broker_dir / "ca.pem")
        shutil.copy(self.hub_ca.cert_path, self._broker_dir / "hub-ca.pem")
        shutil.copy(server_cert, self._broker_dir / "server.pem")
        shutil.copy(server_key, self._broker_dir / "server.key")
        acl = self._broker_dir / "acl"
        acl.write_text(
            "# each site: only its own subtree\n"
            "pattern readwrite rtcc/v1/sites/%u/#\n"
            "pattern read rtcc/v1/trust\n"
            "\n"
            f"user {HUB_IDENTITY}\n"
            "topic readwrite rtcc/v1/sites/#\n"
            "topic readwrite rtcc/v1/trust\n"
        )
        server = (
            f"certfile {self._broker_dir / 'server.pem'}\n"
            f"keyfile {self._broker_dir / 'server.key'}\n"
        )
        sites_ca = f"cafile {self._broker_dir / 'ca.pem'}\n"
        self.config_path = self._broker_dir / "mosquitto.conf"
        self.config_path.write_text(
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"password_file {self._passwd}\n"
            f"acl_file {acl}\n"
            "persistence true\n"
            f"persistence_location {self._broker_dir / 'data'}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 10000\n"
            # Nagle's algorithm against the clients' delayed ACKs costs ~40 ms per message hop.
            "set_tcp_nodelay true\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
            "connection_messages true\n"
            "\n"
            f"listener {self.cert_port} {self.host}\n"
            f"{server}{sites_ca}"
            "require_certificate true\n"
            "use_identity_as_username true\n"
            "use_username_as_clientid true\n"
            "\n"
            f"listener {self.password_port} {self.host}\n"
            f"{server}{sites_ca}"
            "use_username_as_clientid true\n"
            "\n"
            f"listener {self.hub_port} {self.host}\n"
            f"{server}"
            f"cafile {self._broker_dir / 'hub-ca.pem'}\n"
            "require_certificate true\n"
            "use_identity_as_username true\n"
        )
        self._hand_to_mosquitto()

    def _hand_to_mosquitto(self) -> None:
        """As root mosquitto runs as the `mosquitto` user: give it its own files."""
        if os.geteuid() != 0:
            return
        try:
            account = pwd.getpwnam("mosquitto")
        except KeyError:
            return  # no such user: mosquitto keeps running as root
        for path in [self._broker_dir, *self._broker_dir.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)
        self._broker_dir.chmod(0o700)
        # It must still be able to traverse to its directory.
        self.workdir.chmod(0o755)

    # --- credentials -----------------------------------------------------------------------

    def issue_client_cert(self, cn: str) -> tuple[Path, Path]:
        """A client certificate + key; the broker's username = `cn`.

        `HUB_IDENTITY` gets a hub-CA certificate (for `hub_port`); any other CN a site
        certificate (for `cert_port`).
        """
        if cn not in self._issued:
            issuer = self.hub_ca if cn == HUB_IDENTITY else self.ca
            self._issued[cn] = issuer.issue(cn)
        return self._issued[cn]

    def add_password_user(self, username: str, password: str) -> None:
        """Add (or change) a user of the password listener; a running broker reloads it."""
        subprocess.run(
            ["mosquitto_passwd", "-b", str(self._passwd), username, password],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self._hand_to_mosquitto()
        if self.running:
            self._reload()

    def _reload(self) -> None:
        assert self._proc is not None
        before = self.log().count("Reloading config.")
        self._proc.send_signal(signal.SIGHUP)
        # mosquitto reloads in its main loop; a connection accepted after this line is logged
        # is checked against the new password file.
        self._wait_for(lambda: self.log().count("Reloading config.") > before, "reload")

    def client_tls(self, cn: str | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the broker; with a client certificate if `cn` is given."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cn is not None:
            cert, key = self.issue_client_cert(cn)
            context.load_cert_chain(cert, key)
        return context

    def client(
        self,
        cn: str = HUB_IDENTITY,
        *,
        identifier: str | None = None,
        clean_session: bool | None = None,
        port: int | None = None,
        timeout: float = 20,
    ) -> aiomqtt.Client:
        """An aiomqtt client (enter it with `async with`) holding `cn`'s certificate, on the hub
        listener for the hub identity and on the site listener for anyone else."""
        default_port = self.hub_port if cn == HUB_IDENTITY else self.cert_port
        return aiomqtt.Client(
            self.host,
            port or default_port,
            identifier=identifier,
            clean_session=clean_session,
            tls_context=self.client_tls(cn),
            timeout=timeout,
            socket_options=[NODELAY],
        )

    def password_client(
        self, username: str, password: str, *, identifier: str | None = None
    ) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.password_port,
            username=username,
            password=password,
            identifier=identifier,
            tls_context=self.client_tls(),
            timeout=20,
            socket_options=[NODELAY],
        )

    def url(self, *, password: bool = False, hub: bool = False) -> str:
        """`mqtts://127.0.0.1:<port>` of the site certificate, site password or hub listener."""
        port = self.hub_port if hub else self.password_port if password else self.cert_port
        return f"mqtts://{self.host}:{port}"

    # --- process ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [_mosquitto_exe(), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._wait_for(self._accepts_tls, "accept TLS connections")

    def stop(self) -> None:
        """Stop cleanly (SIGTERM): mosquitto writes its persistence database first."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _end(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._proc = None
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        self._proc = None

    def _accepts_tls(self) -> bool:
        probe_site = "probe"
        checks = (
            (self.cert_port, probe_site),
            (self.password_port, None),
            (self.hub_port, HUB_IDENTITY),
        )
        for port, cn in checks:
            context = self.client_tls(cn)
            try:
                with (
                    socket.create_connection((self.host, port), timeout=2) as raw,
                    context.wrap_socket(raw, server_hostname=self.host),
                ):
                    pass
            except (OSError, ssl.SSLError):
                return False
        return True

    def _wait_for(self, condition: object, what: str) -> None:
        assert callable(condition)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with {self._proc.returncode} before it could {what}; "
                    f"its log:\n{self.log()}"
                )
            if condition():
                return
            time.sleep(0.05)
        raise BrokerError(
            f"mosquitto did not {what} within {_START_TIMEOUT} s; its log:\n{self.log()}"
        )


async def next_message(client: aiomqtt.Client, *, within: float = 20.0) -> aiomqtt.Message:
    """The next message `client` receives; fails the test after `within` seconds of nothing."""
    async with asyncio.timeout(within):
        async for message in client.messages:
            return message
    raise AssertionError("the client was disconnected while waiting for a message")


async def eventually(predicate: Callable[[], bool], *, within: float = 30.0) -> None:
    """Wait until `predicate()` holds; fail after `within` s (a deadline, not a measurement)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls counters that have no event to await
            await asyncio.sleep(0.02)


@contextlib.contextmanager
def running_broker() -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def broker() -> Iterator[MosquittoBroker]:
    """One broker for the whole session. Tests must not stop it (use `private_broker`)."""
    with running_broker() as shared:
        yield shared


@pytest.fixture
def private_broker() -> Iterator[MosquittoBroker]:
    """A broker of this test's own, which it may stop, kill and restart."""
    with running_broker() as own:
        print(f"mosquitto log: {own.log_path}")  # shown with a failing test's output
        yield own


class CuttableProxy:
    """A TCP forwarder on 127.0.0.1 whose `cut()` drops every connection without a goodbye.

    Point a client at `port` instead of the broker's: the broker then sees the connection die
    the way a network failure or a killed process looks (no DISCONNECT), and publishes the will.
    """

    def __init__(self, target_port: int, *, target_host: str = HOST) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepting = True

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    def cut(self, *, refuse_new: bool = False) -> None:
        """Abort every open connection (both directions); optionally refuse new ones too."""
        self.accepting = not refuse_new
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def cuttable_proxy(target_port: int) -> AsyncIterator[CuttableProxy]:
    proxy = CuttableProxy(target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
