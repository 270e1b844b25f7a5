"""The hub's home directory: its configuration, signing key, JWKS and the sites it trusts.

Layout of `--home` (`$RTCC_HUB_HOME`, default `~/.local/share/rtcc-hub`):

- `hub.toml`: issuer and broker connection (mode 0600: it may hold a broker password);
- `signing.key`: the Ed25519 request-signing key (PKCS#8 PEM, 0600);
- `jwks.json`: its public half as a JWKS, the file sites are given to trust;
- `sites.json`: each trusted site's device key (JWK), registered by `sites trust`.

Every file is replaced atomically (written beside, then renamed), so an interrupted command
never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from agent import fsutil
from agent.identity import jwk_thumbprint
from agent.identity.jwk import public_key_from_jwk

HOME_ENV = "RTCC_HUB_HOME"
DEFAULT_HOME = Path("~/.local/share/rtcc-hub")
SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # agent.config.ID_PATTERN


class HubStateError(Exception):
    """A file in the hub's home is missing, unreadable or not what it should be."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerConfig(_Model):
    url: str = Field(title="Broker URL", description="mqtts://host:8883")
    urls: list[str] = Field(
        default_factory=list,
        title="Further broker URLs",
        description="The other nodes of a clustered broker, tried in turn after `url`.",
        max_length=32,
    )
    ca_file: Path | None = Field(None, title="CA certificate the broker's certificate chains to")
    cert_file: Path | None = Field(None, title="Hub client certificate (PEM)")
    key_file: Path | None = Field(None, title="Hub client key (PEM)")
    username: str | None = Field(None, title="Broker username")
    password: SecretStr | None = Field(None, title="Broker password")
    keepalive: int = Field(30, ge=5, le=3600, title="MQTT keepalive (s)")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtts", "mqtt") or not parts.hostname:
            raise ValueError("must look like mqtts://host:8883")
        if parts.scheme == "mqtt" and parts.hostname not in ("localhost", "127.0.0.1"):
            raise ValueError("plaintext mqtt:// only to localhost; use mqtts://")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
        return value

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [cls._url(url) for url in value]

    def all_urls(self) -> list[str]:
        """The nodes to try, in order: `url` first."""
        return list(dict.fromkeys([self.url, *self.urls]))


class HubConfig(_Model):
    issuer: str | None = Field(None, title="Issuer (iss of every request)")
    database: str | None = Field(
        None,
        title="Database URL",
        description="postgresql+asyncpg://user@host/name; default: SQLite in the hub's home",
    )
    broker: BrokerConfig | None = Field(None, title="Broker connection")


class TrustedSite(_Model):
    jwk: dict[str, str]
    kid: str
    added: datetime


@contextlib.contextmanager
def exclusive(lock_path: Path, *, directory_mode: int = 0o700) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (several `rtcc-hub` processes share one home)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=directory_mode)
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_atomic(path: Path, data: str, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.atomic_write(path, data, mode=mode)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    text = str(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise HubStateError(f"control character in configuration value {text!r}")
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def _toml_table(values: dict[str, Any]) -> str:
    return "".join(
        f"{k} = {_toml_value(v)}\n" for k, v in values.items() if v is not None and v != []
    )


class HubHome:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> HubHome:
        chosen = explicit or os.environ.get(HOME_ENV) or DEFAULT_HOME
        return cls(Path(chosen).expanduser())

    @property
    def config_path(self) -> Path:
        return self.root / "hub.toml"

    @property
    def key_path(self) -> Path:
        return self.root / "signing.key"

    @property
    def jwks_path(self) -> Path:
        return self.root / "jwks.json"

    @property
    def sites_path(self) -> Path:
        return self.root / "sites.json"

    # --- configuration ---------------------------------------------------------------------

    def load_config(self) -> HubConfig:
        if not self.config_path.exists():
            return HubConfig()
        try:
            with self.config_path.open("rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise HubStateError(f"{self.config_path}: {exc}") from exc
        try:
            return HubConfig.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise HubStateError(f"{self.config_path}: {problems}") from exc

    def save_config(self, config: HubConfig) -> None:
        text = "# rtcc-hub configuration (written by `rtcc-hub init` / `keys new`)\n"
        text += _toml_table({"issuer": config.issuer, "database": config.database})
        if config.broker is not None:
            broker = config.broker.model_dump()
            password = config.broker.password
            broker["password"] = password.get_secret_value() if password else None
            text += "\n[broker]\n" + _toml_table(broker)
        write_atomic(self.config_path, text, mode=0o600)

    # --- trusted sites ---------------------------------------------------------------------

    def trusted_sites(self) -> dict[str, TrustedSite]:
        if not self.sites_path.exists():
            return {}
        try:
            data = json.loads(self.sites_path.read_text(encoding="utf-8"))
            return {site: TrustedSite.model_validate(entry) for site, entry in data.items()}
        except (OSError, ValueError, AttributeError) as exc:
            raise HubStateError(f"{self.sites_path}: {exc}") from exc

    def trust_site(self, site: str, jwk: dict[str, Any]) -> TrustedSite:
        """Register (or replace) `site`'s device key. The JWK must be an Ed25519 public key;
        a `kid` it carries must be its RFC 7638 thumbprint."""
        if not SITE_ID.match(site):
            raise HubStateError(f"site id {site!r} is not valid (a-z, 0-9, - and _)")
        if "d" in jwk:
            raise HubStateError("that JWK holds a private key: give the public key only")
        try:
            public_key_from_jwk(jwk)
            kid = jwk_thumbprint(jwk)
        except (ValueError, KeyError, TypeError) as exc:
            raise HubStateError(f"not an Ed25519 public JWK: {exc}") from exc
        if "kid" in jwk and jwk["kid"] != kid:
            raise HubStateError(f"the JWK's kid {jwk['kid']!r} is not its thumbprint {kid!r}")
        public = {"kty": "OKP", "crv": "Ed25519", "x": str(jwk["x"]), "kid": kid}
        entry = TrustedSite(jwk=public, kid=kid, added=datetime.now(UTC))
        sites = self.trusted_sites()
        sites[site] = entry
        document = {name: value.model_dump(mode="json") for name, value in sorted(sites.items())}
        write_atomic(self.sites_path, json.dumps(document, indent=2) + "\n")
        return entry


class TrustedSitesFile:
    """`sites.json`, read again only when it changed (for long-running commands)."""

    def __init__(self, home: HubHome) -> None:
        self._home = home
        self._stamp: int | None = None
        self._sites: dict[str, TrustedSite] = {}

    def __call__(self) -> dict[str, TrustedSite]:
        try:
            stamp: int | None = self._home.sites_path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._sites = self._home.trusted_sites() if stamp is not None else {}
            self._stamp = stamp
        return self._sites
