"""What the ONVIF handlers know about the camera they speak for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote

from camsim.media import VideoSpec
from camsim.persona import DEVICE_SERVICE_PATH, Quirk, StreamName

ONVIF_SCOPE = "onvif://www.onvif.org"


@dataclass(frozen=True)
class MediaProfile:
    token: str
    name: str
    stream: StreamName | None  # None: an extra profile (not served over RTSP by camsim)
    spec: VideoSpec
    encoder_token: str
    rtsp_path: str  # request path including its query
    source_token: str = "VideoSource_1"  # noqa: S105 - an ONVIF token
    encoding: Literal["H264", "JPEG"] = "H264"  # what Media1 can say (H.265 is said H264)


@dataclass
class OnvifDevice:
    """Identity, media and addressing of one camera; ports are filled in once bound."""

    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str
    mac: str
    hostname: str
    name: str
    location: str
    quirks: frozenset[Quirk]
    profiles: tuple[MediaProfile, ...]
    media_path: str
    snapshot_path: str
    clock_skew: float
    host: str  # the address the camera listens on (0.0.0.0: every address)
    http_port: int = 0
    rtsp_port: int = 0
    video_sources: tuple[str, ...] = field(default=("VideoSource_1",))
    scope_encoding: str = "utf-8"  # how the name scope is percent-encoded

    def now(self) -> datetime:
        """The camera's own clock: true UTC plus its skew."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_skew)

    def reachable_host(self, local: str | None) -> str:
        """Where clients reach us: our address, or the one a request arrived on."""
        if self.host == "0.0.0.0" and local:  # noqa: S104 - comparing, not binding
            return local
        return self.host

    def service_url(self, path: str, *, local: str | None = None) -> str:
        """A service address as this camera advertises it, quirks included."""
        host = "0.0.0.0" if Quirk.XADDR_ZERO_HOST in self.quirks else self.reachable_host(local)  # noqa: S104
        port = f":{self.http_port}"
        if Quirk.XADDR_DUPLICATE_PORT in self.quirks:
            port *= 2
        return f"http://{host}{port}{path}"

    def device_url(self, *, local: str | None = None) -> str:
        return self.service_url(DEVICE_SERVICE_PATH, local=local)

    def media_url(self, *, local: str | None = None) -> str:
        return self.service_url(self.media_path, local=local)

    def stream_uri(self, profile: MediaProfile, *, local: str | None = None) -> str:
        return f"rtsp://{self.reachable_host(local)}:{self.rtsp_port}{profile.rtsp_path}"

    def snapshot_uri(self, *, local: str | None = None) -> str:
        return f"http://{self.reachable_host(local)}:{self.http_port}{self.snapshot_path}"

    def profile(self, token: str | None) -> MediaProfile | None:
        return next((p for p in self.profiles if p.token == token), None)

    def scopes(self) -> list[tuple[str, bool]]:
        """(scope, fixed) pairs as GetScopes and WS-Discovery report them."""
        return [
            (f"{ONVIF_SCOPE}/type/video_encoder", True),
            (f"{ONVIF_SCOPE}/type/Network_Video_Transmitter", True),
            (f"{ONVIF_SCOPE}/Profile/Streaming", True),
            (f"{ONVIF_SCOPE}/hardware/{quote(self.model, safe='')}", True),
            (
                f"{ONVIF_SCOPE}/name/{quote(self.name, safe='', encoding=self.scope_encoding)}",
                False,
            ),
            (f"{ONVIF_SCOPE}/location/{quote(self.location, safe='/')}", False),
        ]
