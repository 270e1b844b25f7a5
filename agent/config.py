"""The agent's configuration: one TOML file plus environment overrides.

The file is `/etc/rtcc-edge/agent.toml` unless `--config` or `RTCC_EDGE_CONFIG` names another.
Any field can be overridden from the environment as `RTCC_EDGE_<SECTION>__<FIELD>` (for example
`RTCC_EDGE_LOG__LEVEL=debug`). Every model forbids unknown keys so that a typo is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import tomllib
import types
import typing
from datetime import timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent import units
from agent.redact import url_secrets

DEFAULT_CONFIG_PATH = Path("/etc/rtcc-edge/agent.toml")
CONFIG_ENV = "RTCC_EDGE_CONFIG"
DEFAULT_STATE_DIR = Path("/var/lib/rtcc-edge")

# Ids become file names, topic levels and SQL values: keep them to a small safe alphabet.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SafeId = Annotated[str, Field(pattern=ID_PATTERN)]


def parse_duration(value: Any) -> Any:
    """Accept `90`, `"90s"`, `"15m"`, `"2h"`, `"7d"`, `"1w"` (a bare number is seconds); the
    string forms are `agent.units`', the same the CLIs read."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return units.duration_from_seconds(value)
    if isinstance(value, str):
        return units.parse_duration(value)
    raise ValueError(f'not a duration: {value!r} (use e.g. "90s", "15m", "2h", "7d")')


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

# No silent coercion: `requests_per_hour = true` is not 1, `segment_seconds = "10"` is not 10,
# `live = "yes"` is not true. An int is still accepted where a number with a fraction is.
Integer = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]


def _byte_size(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f'not a size: {value!r} (use e.g. "500GB" or a number of bytes)')
    return value


Bytes = Annotated[ByteSize, BeforeValidator(_byte_size)]


class SharingMode(StrEnum):
    """What the owner shares from one camera (DESIGN §4.4)."""

    PRIVATE = "private"
    REGISTRY = "registry"
    INTEGRATED = "integrated"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SiteConfig(_Section):
    id: SafeId = Field(
        title="Site id",
        description="Assigned by the RTCC at enrollment; used in MQTT topics.",
    )
    name: str = Field(title="Site name", description="Business or resident name shown to the RTCC.")
    address: str = Field("", title="Street address")
    contact: str = Field("", title="Contact", description="Phone or e-mail of the owner.")
    timezone: str | None = Field(
        None,
        title="Time zone",
        description="IANA name such as America/Denver: local times typed in the CLI and shown "
        "on the owner's page are in it. Default: the machine's own time zone.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            units.site_zone(value)  # ParseError (a ValueError) names an unknown zone
        return value

    def zone(self) -> tzinfo:
        return units.site_zone(self.timezone)


class RtccConfig(_Section):
    broker_url: str | None = Field(
        None,
        title="Broker URL",
        description="`mqtts://host:8883`. Unset: the agent records but does not connect.",
    )
    broker_urls: list[str] = Field(
        default_factory=list,
        title="Broker URLs (a cluster)",
        description="Every node of a clustered broker, tried in turn when one is lost; "
        "`broker_url` defaults to the first.",
        max_length=32,
    )
    ca_file: Path | None = Field(None, title="Broker CA certificate (PEM)")
    cert_file: Path | None = Field(None, title="Client certificate (PEM), issued at enrollment")
    key_file: Path | None = Field(None, title="Client private key (PEM)")
    username: str | None = Field(None, title="Broker username (when not using a certificate)")
    password: SecretStr | None = Field(None, title="Broker password")
    issuer: str | None = Field(None, title="RTCC issuer", description="Expected `iss` of requests.")
    jwks_file: Path | None = Field(
        None, title="RTCC JWKS", description="The RTCC's public signing keys."
    )
    keepalive: Duration = Field(timedelta(seconds=30), title="MQTT keepalive")
    clock_leeway: Duration = Field(
        timedelta(seconds=30),
        title="Clock leeway",
        description="Tolerated clock difference when checking iat/nbf/exp.",
    )

    @field_validator("broker_urls")
    @classmethod
    def _broker_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            cls._broker_url(url)
        return list(dict.fromkeys(value))  # the same node twice is no failover

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("mqtts", "mqtt") or not parts.hostname:
            raise ValueError("must look like mqtts://host:8883")
        host = parts.hostname
        if parts.scheme == "mqtt" and not (host == "localhost" or host.startswith("127.")):
            raise ValueError("plaintext mqtt:// is only allowed to localhost; use mqtts://")
        return value

    @model_validator(mode="after")
    def _complete(self) -> RtccConfig:
        if self.broker_url is None and self.broker_urls:
            self.broker_url = self.broker_urls[0]
        if self.broker_url is None:
            return self
        missing = [name for name in ("issuer", "jwks_file") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"broker_url is set, so {' and '.join(missing)} must be set too")
        has_cert = self.cert_file is not None and self.key_file is not None
        has_password = self.username is not None and self.password is not None
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if not (has_cert or has_password):
            raise ValueError("set cert_file and key_file (enrollment) or username and password")
        return self

    def all_broker_urls(self) -> list[str]:
        """The nodes to try, in order: `broker_url` first, then the rest of `broker_urls`."""
        if self.broker_url is None:
            return []
        return list(dict.fromkeys([self.broker_url, *self.broker_urls]))


class StoreConfig(_Section):
    path: Path | None = Field(
        None,
        title="Store directory",
        description="Where segments and their index live. Default: <state_dir>/store.",
    )
    max_bytes: Bytes = Field(ByteSize(50 * 10**9), title="Byte budget", description='e.g. "500GB".')
    max_age: Duration = Field(timedelta(days=30), title="Keep footage at most this long")
    min_free: Bytes = Field(
        ByteSize(2 * 10**9),
        title="Free-space reserve",
        description="Delete oldest footage to keep at least this much free on the disk. The "
        "same number decides when a recorder stopped by a full disk records again.",
    )
    keep_recent: Duration = Field(
        timedelta(minutes=10),
        title="Never delete footage this recent to make room",
        description="When the disk fills and only held footage and footage this recent is "
        "left, recording stops (disk_full) instead of emptying the store.",
    )
    segment_seconds: Integer = Field(60, ge=10, le=600, title="Segment length (s)")
    fragment_seconds: Number = Field(1.0, gt=0, le=1.0, title="Fragment length (s)")


class LocationConfig(_Section):
    lat: Number = Field(ge=-90, le=90, title="Latitude")
    lon: Number = Field(ge=-180, le=180, title="Longitude")
    heading: Number | None = Field(
        None, ge=0, lt=360, title="Heading", description="Degrees clockwise from north."
    )
    fov: Number | None = Field(None, gt=0, le=360, title="Field of view (degrees)")
    description: str = Field("", title="Where it points, in words")


class CameraConfig(_Section):
    id: SafeId = Field(title="Camera id")
    name: str = Field(title="Camera name")
    enabled: Flag = Field(True, title="Record this camera")
    onvif_url: str | None = Field(
        None, title="ONVIF device service URL", description="http://host:port/onvif/device_service"
    )
    username: str | None = Field(None, title="Camera username")
    secret: SecretStr | None = Field(
        None,
        title="Camera password",
        description="Encrypted (`enc:v1:…`, written by `rtcc-edge cameras add`); plain text works "
        "but `config check` warns.",
    )
    rtsp_url: str | None = Field(
        None, title="RTSP URL override", description="Skip ONVIF GetStreamUri and use this."
    )
    stream: str = Field(
        "main", title="Stream", description="`main`, `sub`, or an ONVIF profile token."
    )
    channel: Integer | None = Field(
        None,
        ge=1,
        le=256,
        title="Recorder channel",
        description="For a channel of an NVR/DVR reached over ONVIF: which one (1 = its first "
        "video source). Leave unset for a camera.",
    )
    location: LocationConfig | None = Field(None, title="Location")
    sharing: SharingMode = Field(SharingMode.PRIVATE, title="Sharing mode")
    live: Flag = Field(False, title="Live view allowed (integrated cameras only)")

    @field_validator("onvif_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http(s):// URL")
        return value

    @field_validator("rtsp_url")
    @classmethod
    def _rtsp_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
                raise ValueError("must be an rtsp:// URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CameraConfig:
        if self.onvif_url is None and self.rtsp_url is None:
            raise ValueError("set onvif_url or rtsp_url")
        if self.live and self.sharing is not SharingMode.INTEGRATED:
            raise ValueError('live = true needs sharing = "integrated"')
        if self.sharing is not SharingMode.PRIVATE and self.location is None:
            raise ValueError(f"a {self.sharing.value} camera is listed on a map: set its location")
        return self


def _host_pattern(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a host name: {value!r}")
    pattern = value.strip().lower()
    host = pattern[2:] if pattern.startswith("*.") else pattern
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", host):
        raise ValueError(f"not a host name or *.domain pattern: {value!r}")
    return pattern


HostPattern = Annotated[str, BeforeValidator(_host_pattern)]


class PolicyConfig(_Section):
    max_clip_window: Duration = Field(timedelta(minutes=30), title="Longest clip window")
    max_live: Duration = Field(timedelta(minutes=10), title="Longest live session")
    requests_per_hour: Integer = Field(60, ge=1, title="Requests per hour, per issuer")
    max_clip_request_lifetime: Duration = Field(
        timedelta(days=7), title="Longest clip/snapshot request lifetime (exp - iat)"
    )
    max_stream_request_lifetime: Duration = Field(
        timedelta(minutes=15), title="Longest stream request lifetime (exp - iat)"
    )
    approval_wait: Duration | None = Field(
        None,
        title="Longest wait for the owner's answer",
        description="A request for a registry camera waits for the owner until its own expiry "
        "(up to 7 days for a clip); set this to refuse it sooner. Unset: its expiry.",
    )
    allowed_upload_hosts: list[HostPattern] = Field(
        default_factory=list,
        title="Allowed upload hosts",
        description="Host names (or *.domain) that clips may be PUT to. Empty: no uploads.",
    )
    allowed_relay_hosts: list[HostPattern] = Field(
        default_factory=list,
        title="Allowed relay hosts",
        description="Host names (or *.domain) live video may be streamed to. Empty: no live.",
    )
    owner_webhook: str | None = Field(
        None, title="Owner webhook", description="URL that receives each pending request (POST)."
    )

    @model_validator(mode="after")
    def _lifetimes(self) -> PolicyConfig:
        if self.max_stream_request_lifetime > timedelta(minutes=15):
            raise ValueError("max_stream_request_lifetime cannot exceed the protocol's 15 min")
        if self.max_clip_request_lifetime > timedelta(days=7):
            raise ValueError("max_clip_request_lifetime cannot exceed the protocol's 7 days")
        if self.approval_wait is not None and self.approval_wait <= timedelta(0):
            raise ValueError("approval_wait must be longer than zero")
        return self


class UploadConfig(_Section):
    bandwidth_mbps: Number | None = Field(
        None, gt=0, title="Upload bandwidth cap (Mbit/s)", description="Unset: no cap."
    )
    concurrency: Integer = Field(2, ge=1, le=16, title="Concurrent uploads")
    retry_budget: Duration = Field(timedelta(minutes=30), title="Give up retrying after this")
    ca_file: Path | None = Field(
        None,
        title="Extra CA certificates (PEM)",
        description="Trusted for uploads besides the system CAs, e.g. the RTCC's private CA.",
    )
    temp_dir: Path | None = Field(
        None,
        title="Temporary directory",
        description="Where clips and snapshots wait for upload. Default: <state_dir>/delivery.",
    )


class CompatConfig(_Section):
    """The program's footage bar that `check` and `doctor` measure cameras against."""

    min_megapixels: Number = Field(1.0, gt=0, title="Minimum resolution (MP)")
    min_fps: Number = Field(5.0, gt=0, title="Minimum frame rate")
    recommended_megapixels: Number = Field(3.0, gt=0, title="Recommended resolution (MP)")
    recommended_fps: Number = Field(15.0, gt=0, title="Recommended frame rate")
    max_keyframe_interval: Number = Field(4.0, gt=0, title="Longest keyframe interval (s)")
    min_retention: Duration = Field(timedelta(hours=48), title="Minimum footage kept")
    recommended_retention: Duration = Field(timedelta(days=10), title="Recommended footage kept")
    upload_budget_mbps: Number = Field(
        10.0, gt=0, title="Site upload bandwidth (Mbit/s)", description="To judge stream bitrates."
    )


class NotifyEmailConfig(_Section):
    """Email to the owner for each request waiting for approval (SMTP, always STARTTLS)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    host: str = Field(title="Mail server", description="e.g. smtp.gmail.com")
    port: Integer = Field(587, ge=1, le=65535, title="Mail server port (STARTTLS)")
    username: str | None = Field(None, title="Mail login")
    password: SecretStr | None = Field(
        None,
        title="Mail password",
        description="Encrypted (`enc:v1:…`, like camera passwords); plain text works but is "
        "best avoided.",
    )
    sender: str = Field(alias="from", title="From address")
    to: list[str] = Field(min_length=1, title="Send to", description="One or more addresses.")
    ca_file: Path | None = Field(
        None,
        title="Extra CA certificates (PEM)",
        description="Trusted for the mail server besides the system CAs.",
    )

    @field_validator("sender", "to")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        for address in [value] if isinstance(value, str) else value:
            if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", address):
                raise ValueError(f"not an email address: {address!r}")
        return value


class NotifyConfig(_Section):
    """How the owner hears of a request waiting for approval (the webhook is
    `policy.owner_webhook`)."""

    page_url: str | None = Field(
        None,
        title="Owner page address in links",
        description="Notifications link to <page_url>/requests/<id>. "
        "Default: the owner page's public_url, else https://127.0.0.1:8443.",
    )
    email: NotifyEmailConfig | None = Field(None, title="Email")

    @field_validator("page_url")
    @classmethod
    def _page_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"must be an http(s) URL, not {value!r}")
        return value


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", title="Log level")
    format: Literal["auto", "json", "console"] = Field(
        "auto", title="Log format", description="auto: JSON unless on a terminal."
    )


class ControlConfig(_Section):
    socket: Path = Field(
        Path("/run/rtcc-edge/control.sock"),
        title="Owner control socket",
        description="Unix socket the owner CLI talks to; root and the rtcc-edge group only.",
    )
    owner_group: str = Field(
        "rtcc-edge-owner",
        title="Owner group",
        description="Members (and root) may change sharing, pause, approve and deny; the "
        "service user never may, even if it were a member.",
    )
    owner_dir: Path | None = Field(
        None,
        title="Owner directory",
        description="Where the owner's choices (sharing changes, pause, approvals) are kept: "
        "written by root and the owner group, only read by the service. Default: `owner/` "
        "beside the configuration file (/etc/rtcc-edge/owner).",
    )


class OwnerPageConfig(_Section):
    enabled: Flag = Field(
        False,
        title="Serve the owner's page",
        description=(
            "The owner's web page (requests, pause, overview): the installer and systemd start "
            "it as its own process, `rtcc-edge owner serve` (the daemon serves no page)."
        ),
    )
    listen: str = Field(
        "127.0.0.1:8443",
        pattern=r"^[^\s:]+:\d{1,5}$",
        title="Address of the owner's page",
        description="host:port. Anything but 127.0.0.1 (e.g. `0.0.0.0:8443`, the whole LAN) "
        "is served over HTTPS only, with the certificate below.",
    )
    tiles: str | None = Field(
        None,
        title="Map tiles for the Cameras page",
        description="URL template of the tiles drawn under the map where a camera's location "
        "is set, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png (mind that server's "
        "usage policy). Unset: no tiles, the map is a plain background, and the latitude, "
        "longitude, heading and field-of-view fields work as well.",
    )

    @field_validator("tiles")
    @classmethod
    def _tiles_template(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value.replace("{s}", "a"))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http(s):// URL template")
            if not all(part in value for part in ("{z}", "{x}", "{y}")):
                raise ValueError("must contain {z}, {x} and {y}")
        return value

    tls_cert: Path | None = Field(
        None,
        title="The page's HTTPS certificate",
        description="Made by the installer (`rtcc-edge owner cert`). Default: "
        "`page/page.crt` beside the configuration file (/etc/rtcc-edge/page/page.crt).",
    )
    tls_key: Path | None = Field(
        None,
        title="The page's HTTPS key",
        description="Readable by root and the page's user only. Default: `page/page.key` "
        "beside the configuration file.",
    )
    public_url: str | None = Field(
        None,
        title="The page's address in notifications",
        description="What e-mails and the webhook link to, e.g. `https://shop-pi.local:8443`. "
        "Default: https://<hostname>.local:PORT when the page is on the LAN, else "
        "127.0.0.1:PORT.",
    )

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not a web address: {value!r} (e.g. https://shop-pi.local:8443)")
        return value.rstrip("/")

    @property
    def certificate(self) -> Path:
        assert self.tls_cert is not None  # filled in by AgentConfig's validator
        return self.tls_cert

    @property
    def private_key(self) -> Path:
        assert self.tls_key is not None  # filled in by AgentConfig's validator
        return self.tls_key


def _scalars(annotation: Any) -> set[type]:
    """The number and flag types a field's annotation admits (through Annotated and unions)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _scalars(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_scalars(arg) for arg in typing.get_args(annotation)))
    return {annotation} & {int, float, bool}


def _from_environment(annotation: Any, value: Any) -> Any:
    """An environment value is text: for a number or flag field, read it as JSON (`30`, `2.5`,
    `true`), so overrides still work although the fields are strict; anything else as it is."""
    if (
        isinstance(value, dict)
        and isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
    ):
        fields = annotation.model_fields
        return {
            name: _from_environment(fields[name].annotation, item) if name in fields else item
            for name, item in value.items()
        }
    wanted = _scalars(annotation)
    if isinstance(value, str) and wanted:
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if type(parsed) in wanted or (type(parsed) is int and float in wanted):
            return parsed
    return value


class _EnvSource(EnvSettingsSource):
    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        prepared = super().prepare_field_value(field_name, field, value, value_is_complex)
        return _from_environment(field.annotation, prepared)


_config_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "rtcc_edge_config_path", default=None
)


class AgentConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RTCC_EDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    state_dir: Path = Field(
        DEFAULT_STATE_DIR, title="State directory", description="Keys, ledger, index, job queue."
    )
    site: SiteConfig
    rtcc: RtccConfig = Field(default_factory=RtccConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    cameras: list[CameraConfig] = Field(default_factory=list, title="Cameras")
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    upload: UploadConfig = Field(default_factory=UploadConfig)
    compat: CompatConfig = Field(default_factory=CompatConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    owner_page: OwnerPageConfig = Field(default_factory=OwnerPageConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    @model_validator(mode="after")
    def _unique_cameras(self) -> AgentConfig:
        seen: set[str] = set()
        for camera in self.cameras:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} is used twice")
            seen.add(camera.id)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_path.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls)]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="after")
    def _owner_dir_beside_the_file(self) -> AgentConfig:
        # Beside the configuration file, so the owner's choices live with the other files only
        # root writes (never in the service-writable state directory); a configuration built
        # in code (tests) has no file and keeps them in its own state directory.
        source = _config_path.get()
        base = source.parent if source is not None else self.state_dir
        if self.control.owner_dir is None:
            self.control.owner_dir = base / "owner"
        # The page's certificate, likewise beside the file (root's, not the service's).
        page = self.owner_page
        if page.tls_cert is None or page.tls_key is None:
            page.tls_cert = page.tls_cert or base / "page" / "page.crt"
            page.tls_key = page.tls_key or base / "page" / "page.key"
        return self

    @property
    def owner_dir(self) -> Path:
        assert self.control.owner_dir is not None  # filled in by the validator above
        return self.control.owner_dir

    @property
    def store_path(self) -> Path:
        return self.store.path if self.store.path is not None else self.state_dir / "store"

    def camera(self, camera_id: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.id == camera_id), None)


class ConfigProblem(BaseModel):
    """One thing wrong with a configuration, named by its field path."""

    model_config = ConfigDict(frozen=True)

    field: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.field}: {self.message}"


class ConfigError(Exception):
    """The configuration could not be loaded; `problems` says every reason."""

    def __init__(self, path: Path | None, problems: list[ConfigProblem]) -> None:
        self.path = path
        self.problems = problems
        where = f"{path}: " if path else ""
        super().__init__(where + "; ".join(str(p) for p in problems))


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue  # validator wrapper names, not fields
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def resolve_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(path: str | os.PathLike[str] | None = None) -> AgentConfig:
    """Load and validate the configuration, raising ConfigError with every problem found."""
    resolved = resolve_config_path(path)
    if not resolved.is_file():
        raise ConfigError(resolved, [ConfigProblem(field="(file)", message="no such file")])
    try:
        with resolved.open("rb") as handle:
            tomllib.load(handle)  # parse once ourselves for a clear syntax error
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(resolved, [ConfigProblem(field="(syntax)", message=str(exc))]) from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        message = (
            f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} on line {line} "
            "(save the file as UTF-8)"
        )
        raise ConfigError(resolved, [ConfigProblem(field="(file)", message=message)]) from exc
    except OSError as exc:
        raise ConfigError(resolved, [ConfigProblem(field="(file)", message=str(exc))]) from exc
    token = _config_path.set(resolved)
    try:
        return AgentConfig()
    except ValidationError as exc:
        problems = [
            ConfigProblem(
                field=_field_path(err["loc"]), message=err["msg"].removeprefix("Value error, ")
            )
            for err in exc.errors()
        ]
        raise ConfigError(resolved, problems) from exc
    finally:
        _config_path.reset(token)


def config_warnings(config: AgentConfig) -> list[ConfigProblem]:
    """Things that load but that an owner should fix (they do not fail `config check`)."""
    problems: list[ConfigProblem] = []
    for index, camera in enumerate(config.cameras):
        secret = camera.secret.get_secret_value() if camera.secret else None
        if secret and not secret.startswith("enc:"):
            problems.append(
                ConfigProblem(
                    field=f"cameras[{index}].secret",
                    message="password stored in clear; `rtcc-edge cameras add` stores it encrypted",
                    severity="warning",
                )
            )
        # In its userinfo or its query (`?user=admin&password=…`, common on cheap cameras).
        if camera.rtsp_url is not None and url_secrets(camera.rtsp_url):
            problems.append(
                ConfigProblem(
                    field=f"cameras[{index}].rtsp_url",
                    message="the URL carries a password in clear; `rtcc-edge cameras add --rtsp "
                    "URL` stores the URL without it and the password encrypted",
                    severity="warning",
                )
            )
    email = config.notify.email
    mail_secret = email.password.get_secret_value() if email and email.password else None
    if mail_secret and not mail_secret.startswith("enc:"):
        problems.append(
            ConfigProblem(
                field="notify.email.password",
                message="password stored in clear; `rtcc-edge config encrypt` encrypts it",
                severity="warning",
            )
        )
    if config.rtcc.broker_url is None:
        problems.append(
            ConfigProblem(
                field="rtcc.broker_url",
                message="not set: the agent records but takes no requests (enroll to connect)",
                severity="warning",
            )
        )
    return problems


def config_file_problems(config: AgentConfig) -> list[ConfigProblem]:
    """Files the configuration names that do not exist or cannot be read."""
    problems: list[ConfigProblem] = []
    named = [(f"rtcc.{n}", getattr(config.rtcc, n)) for n in ("ca_file", "cert_file", "key_file")]
    named += [("rtcc.jwks_file", config.rtcc.jwks_file), ("upload.ca_file", config.upload.ca_file)]
    if config.notify.email is not None:
        named.append(("notify.email.ca_file", config.notify.email.ca_file))
    for field, path in named:
        if path is not None and not os.access(path, os.R_OK):
            reason = "not readable" if path.exists() else "no such file"
            problems.append(ConfigProblem(field=field, message=f"{path}: {reason}"))
    return problems
