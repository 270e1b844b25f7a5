"""`rtcc-hub serve`: one HTTPS server for everything sites and analysts reach over HTTP.

The application is composed from route modules, each a module with
`setup(app: web.Application, context: ServerContext) -> None`; adding one is a line in
`ROUTE_MODULES`. The TLS certificate is given (`--tls-cert/--tls-key`, e.g. a publicly trusted
one) or issued by the hub's site CA for the host names the server is reached by, kept in
`<home>/tls/` and re-issued when the names change or it nears expiry.

Settings that other commands need to know about the running hub live in `<home>/serve.toml`:
`public_url` (how sites and analysts reach this server; `serve` records what it runs with) and
`site_broker_url` (the broker URL given to enrolling sites; `broker-config` records it).
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import ipaddress
import json
import socket
import ssl
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.ca import CaError, site_ca, write_private
from hub.console.settings import ConsoleSettings
from hub.state import HubHome, HubStateError, write_atomic

# Route modules, each with `setup(app, context)`.
ROUTE_MODULES: tuple[str, ...] = ("hub.enroll", "hub.receiver", "hub.relay", "hub.console")

SERVE_FILE = "serve.toml"
_ANY_ADDRESS = ("0.0.0.0", "::", "")  # noqa: S104 - names compared, nothing bound
TLS_DIR = "tls"
_RENEW_BEFORE = datetime.timedelta(days=30)


class ServeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_url: str | None = Field(
        None, title="Public URL", description="https://host:port where this server is reached"
    )
    site_broker_url: str | None = Field(
        None, title="Broker URL for sites", description="mqtts://host:port given at enrollment"
    )
    site_broker_urls: list[str] = Field(
        default_factory=list,
        title="Every broker node for sites",
        description="a clustered broker's nodes, all given at enrollment (the first is "
        "site_broker_url)",
        max_length=32,
    )
    site_ca_https: bool = Field(
        False,
        title="HTTPS under the site CA",
        description="the server's certificate is the hub's own (issued by its site CA), not a "
        "publicly trusted one: the install line must bring the CA (`GET /ca.pem`, pinned)",
    )

    @field_validator("public_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError("must look like https://host:port")
            value = value.rstrip("/")
        return value

    @field_validator("site_broker_urls")
    @classmethod
    def _all_mqtts(cls, value: list[str]) -> list[str]:
        for url in value:
            cls._mqtts(url)
        return value

    @field_validator("site_broker_url")
    @classmethod
    def _mqtts(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme != "mqtts" or not parts.hostname:
                raise ValueError("must look like mqtts://host:8883")
        return value


def serve_settings_path(home: HubHome) -> Path:
    return home.root / SERVE_FILE


def load_serve_settings(home: HubHome) -> ServeSettings:
    path = serve_settings_path(home)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return ServeSettings()
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HubStateError(f"{path}: {exc}") from exc
    try:
        return ServeSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise HubStateError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


def update_serve_settings(home: HubHome, **changes: str | bool | list[str] | None) -> ServeSettings:
    """Validate and write `serve.toml` with `changes` applied."""
    current = load_serve_settings(home).model_dump()
    current.update(changes)
    try:
        settings = ServeSettings.model_validate(current)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise HubStateError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
    lines = ["# rtcc-hub server settings (written by `rtcc-hub serve` and `broker-config`)\n"]
    for key, value in settings.model_dump().items():
        if value is not None and value != []:
            lines.append(f"{key} = {json.dumps(value)}\n")  # JSON strings and lists are TOML
    write_atomic(serve_settings_path(home), "".join(lines), mode=0o644)
    return settings


@dataclass(frozen=True)
class ServerContext:
    """What every route module gets: the hub's home and the URL the server is reached at, the
    database URL given to `serve` (None: the home's), and the console's settings."""

    home: HubHome
    public_url: str
    database: str | None = None
    console: ConsoleSettings = field(default_factory=ConsoleSettings)


def create_app(
    context: ServerContext, *, modules: Sequence[str] = ROUTE_MODULES
) -> web.Application:
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    for name in modules:
        importlib.import_module(name).setup(app, context)
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


# --- TLS ------------------------------------------------------------------------------------


def _cert_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return set()
    assert isinstance(san, x509.SubjectAlternativeName)
    names = {str(n) for n in san.get_values_for_type(x509.DNSName)}
    names |= {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    return names


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def hub_server_certificate(home: HubHome, names: Sequence[str]) -> tuple[Path, Path]:
    """`<home>/tls/server.pem|.key` from the site CA for `names`, made or renewed as needed."""
    wanted = list(dict.fromkeys(_normal(n) for n in names if n))
    directory = home.root / TLS_DIR
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            cert = None
        now = datetime.datetime.now(datetime.UTC)
        if (
            cert is not None
            and set(wanted) <= _cert_names(cert)
            and cert.not_valid_after_utc - now > _RENEW_BEFORE
        ):
            return cert_path, key_path
    pair = site_ca(home).issue_server(wanted)
    write_private(key_path, pair.key_pem)
    write_atomic(cert_path, pair.cert_pem.decode())
    return cert_path, key_path


def server_tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise HubStateError(f"TLS certificate {cert_file} / key {key_file}: {exc}") from exc
    return context


# --- running --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listening:
    url: str
    host: str
    port: int


class HubServer:
    """The composed application on one HTTPS listener; `start()`, then `close()`."""

    def __init__(
        self,
        home: HubHome,
        *,
        host: str = "127.0.0.1",
        port: int = 8443,
        public_url: str | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        modules: Sequence[str] = ROUTE_MODULES,
        database: str | None = None,
        console: ConsoleSettings | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise HubStateError("--tls-cert and --tls-key go together")
        self.home = home
        self.host = host
        self.port = port
        self._public_url = public_url.rstrip("/") if public_url else None
        self._tls = (tls_cert, tls_key)
        self._modules = modules
        self._database = database
        self._console = console or ConsoleSettings()
        self._runner: web.AppRunner | None = None
        self.listening: Listening | None = None

    async def start(self) -> Listening:
        # The socket is bound first so that port 0 is resolved before the URL, and so the
        # certificate's names, are known; the same socket is then served.
        sock = await asyncio.to_thread(_bind, self.host, self.port)
        try:
            port = int(sock.getsockname()[1])
            public_url = self._public_url or f"https://{_url_host(self.host)}:{port}"
            tls = await asyncio.to_thread(self._tls_context, public_url)
            await asyncio.to_thread(
                update_serve_settings,
                self.home,
                public_url=public_url,
                site_ca_https=self._tls[0] is None,
            )
            context = ServerContext(
                self.home, public_url, database=self._database, console=self._console
            )
            app = create_app(context, modules=self._modules)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.SockSite(self._runner, sock, ssl_context=tls).start()
        except BaseException:
            sock.close()
            await self.close()
            raise
        self.listening = Listening(public_url, self.host, port)
        return self.listening

    def _tls_context(self, public_url: str) -> ssl.SSLContext:
        cert_file, key_file = self._tls
        if cert_file is None or key_file is None:
            names = [urlsplit(public_url).hostname or "", "localhost", "127.0.0.1"]
            if self.host not in _ANY_ADDRESS:
                names.append(self.host)
            try:
                cert_file, key_file = hub_server_certificate(self.home, names)
            except CaError as exc:
                raise HubStateError(str(exc)) from exc
        return server_tls_context(cert_file, key_file)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise HubStateError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise HubStateError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _url_host(host: str) -> str:
    if host in _ANY_ADDRESS:
        return "localhost"
    return f"[{host}]" if ":" in host else host
