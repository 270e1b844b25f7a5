"""camsim's configuration: the cameras one process runs, its discovery responder, its control API.

A TOML file (`camsim run --config FILE`) or the equivalent flags. Every model forbids unknown
keys, so a typo is an error rather than a silently ignored setting.

    [discovery]
    port = 3702              # 0 on a shared host: pick a free port
    interface = "127.0.0.1"  # where to join 239.255.255.250

    [[cameras]]
    id = "front-door"
    persona = "hikvision"
    username = "admin"
    password = "s3cret-pass"
    host = "127.0.0.2"       # each camera may have its own loopback address
    add_quirks = ["no_snapshot"]
    main = { width = 1280, height = 720 }
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from camsim.media import VideoSpec
from camsim.persona import PERSONAS, Persona, Quirk, StreamName, get_persona

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Port = Annotated[int, Field(ge=0, le=65535)]
_PRINTABLE = r"^[ -~]+$"


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"not an IPv4 address: {value!r}") from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VideoOverride(_Model):
    """Changes to a persona's stream settings (anything left out keeps the persona's value)."""

    codec: Literal["h264", "hevc"] | None = Field(None, title="Codec")
    width: int | None = Field(None, title="Width", ge=16, le=4096, multiple_of=2)
    height: int | None = Field(None, title="Height", ge=16, le=2304, multiple_of=2)
    fps: int | None = Field(None, title="Frames per second", ge=1, le=60)
    gop: int | None = Field(None, title="Frames between keyframes", ge=1, le=600)
    bitrate: int | None = Field(None, title="Bitrate (bits/s)", ge=16_000, le=50_000_000)
    bframes: int | None = Field(None, title="B-frames between references", ge=0, le=4)

    def apply(self, spec: VideoSpec) -> VideoSpec:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        return replace(spec, **changes)


class CameraConfig(_Model):
    id: str = Field(title="Camera id", pattern=ID_PATTERN)
    persona: str = Field("generic", title="Persona", description="a name from `camsim personas`")
    name: str | None = Field(
        None, title="Name", max_length=64, description="ONVIF name scope (default: vendor model)"
    )
    model: str | None = Field(
        None,
        title="Model",
        min_length=1,
        max_length=64,
        pattern=_PRINTABLE,
        description="report this model instead of the persona's",
    )
    firmware: str | None = Field(
        None,
        title="Firmware version",
        min_length=1,
        max_length=64,
        pattern=_PRINTABLE,
        description="report this firmware instead of the persona's (e.g. to test CVE checks)",
    )
    host: str = Field("127.0.0.1", title="Listen address")
    onvif_port: Port = Field(0, title="ONVIF HTTP port", description="0 picks a free port")
    rtsp_port: Port = Field(0, title="RTSP port", description="0 picks a free port")
    username: str = Field("admin", title="Username", min_length=1, max_length=64)
    password: str = Field(title="Password", min_length=1, max_length=128)
    location: str | None = Field(
        None,
        title="Location scope",
        max_length=128,
        pattern=r"^[A-Za-z0-9_./-]+$",
        description="tail of onvif://www.onvif.org/location/... (default: the persona's)",
    )
    quirks: list[Quirk] | None = Field(
        None, title="Quirks", description="replace the persona's quirks with exactly these"
    )
    add_quirks: list[Quirk] = Field(default_factory=list, title="Extra quirks")
    clock_skew: float | None = Field(
        None, title="Clock skew (s)", ge=-10 * 365 * 86400, le=10 * 365 * 86400
    )
    auth_window: float = Field(
        300.0,
        title="WS-Security time window (s)",
        gt=0,
        le=86400,
        description="how far a PasswordDigest Created may be from the camera's clock",
    )
    max_sessions: int | None = Field(
        None,
        title="RTSP session limit",
        ge=1,
        le=64,
        description="default: the persona's (4 for a camera, more for a recorder)",
    )
    main: VideoOverride | None = Field(None, title="Main stream overrides")
    sub: VideoOverride | None = Field(None, title="Sub stream overrides")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return _ipv4(value)

    @field_validator("persona")
    @classmethod
    def _check_persona(cls, value: str) -> str:
        if value not in PERSONAS:
            raise ValueError(f"unknown persona {value!r}; known: {', '.join(PERSONAS)}")
        return value

    @property
    def persona_info(self) -> Persona:
        return get_persona(self.persona)

    def effective_quirks(self) -> frozenset[Quirk]:
        base = self.persona_info.quirks if self.quirks is None else frozenset(self.quirks)
        return base | frozenset(self.add_quirks)

    def effective_max_sessions(self) -> int:
        return self.persona_info.max_sessions if self.max_sessions is None else self.max_sessions

    def effective_clock_skew(self) -> float:
        return self.persona_info.clock_skew if self.clock_skew is None else self.clock_skew

    def video_spec(self, stream: StreamName) -> VideoSpec:
        """The persona's stream, made consistent with the quirks, then the overrides applied."""
        persona = self.persona_info
        quirks = self.effective_quirks()
        if stream == "main":
            spec = persona.main
            codec: Literal["h264", "hevc"] = "hevc" if Quirk.H265_MAIN in quirks else "h264"
            spec = replace(spec, codec=codec)
            override = self.main
        else:
            spec = persona.sub
            if Quirk.SUB_352X240 in quirks:
                spec = replace(spec, width=352, height=240)
            elif (spec.width, spec.height) == (352, 240):
                spec = replace(spec, width=640, height=360)
            override = self.sub
        return override.apply(spec) if override is not None else spec


class DiscoveryConfig(_Model):
    enabled: bool = Field(True, title="Answer WS-Discovery Probes")
    port: Port = Field(
        3702, title="UDP port", description="3702 in a network namespace, 0 on a shared host"
    )
    interface: str = Field(
        "127.0.0.1", title="Multicast interface address", description="where to join the group"
    )
    multicast: bool = Field(True, title="Join 239.255.255.250 and send Hello/Bye")

    @field_validator("interface")
    @classmethod
    def _check_interface(cls, value: str) -> str:
        return _ipv4(value)


class ControlConfig(_Model):
    enabled: bool = Field(True, title="Serve the fault-injection control API")
    host: str = Field("127.0.0.1", title="Listen address")
    port: Port = Field(0, title="Port", description="0 picks a free port")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return _ipv4(value)


class HostConfig(_Model):
    cameras: list[CameraConfig] = Field(title="Cameras", min_length=1, max_length=256)
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig, title="WS-Discovery")
    control: ControlConfig = Field(default_factory=ControlConfig, title="Control API")

    @model_validator(mode="after")
    def _check_unique(self) -> HostConfig:
        seen: set[str] = set()
        endpoints: set[tuple[str, int, str]] = set()
        for camera in self.cameras:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} is used twice")
            seen.add(camera.id)
            for kind, port in (("onvif", camera.onvif_port), ("rtsp", camera.rtsp_port)):
                if port and (camera.host, port, "tcp") in endpoints:
                    raise ValueError(
                        f"camera {camera.id!r}: {kind} port {camera.host}:{port} is taken "
                        "by another camera"
                    )
                endpoints.add((camera.host, port, "tcp"))
        return self


class ConfigError(Exception):
    """A configuration file that cannot be used, with every problem named by its field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def _problems(error: ValidationError) -> list[str]:
    out = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        out.append(f"{where}: {item['msg']}")
    return out


def parse_config(data: dict[str, Any], *, source: str = "config") -> HostConfig:
    try:
        return HostConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_config(path: Path) -> HostConfig:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > 1_000_000:
        raise ConfigError(str(path), ["file is larger than 1 MB"])
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_config(data, source=str(path))
