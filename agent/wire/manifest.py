"""The clip/snapshot manifest (DESIGN §4.5), signed as a JWS by the device key."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.wire.registry import Location

# The JWS header `typ` of a manifest: the device key signs events too, and neither may pass for
# the other.
MANIFEST_TYP = "rtcc-manifest+jwt"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ManifestCamera(_Model):
    id: str
    name: str
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    location: Location | None = None


class Window(_Model):
    start: datetime
    end: datetime


class ManifestFile(_Model):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    container: Literal["mp4", "jpeg"]
    codec: str
    width: int
    height: int
    duration: float | None = Field(None, description="seconds; None for a still image")
    frames: int | None = Field(None, ge=0, description="video frames in the file")


class SourceSegment(_Model):
    name: str = Field(description="segment file name in the site's store")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int
    start: datetime
    end: datetime
    complete: bool = Field(
        True,
        description="False: the segment was still being written; sha256 and bytes cover the "
        "prefix the clip was cut from",
    )


class ClockFacts(_Model):
    ntp_synchronized: bool | None
    camera_offset_s: float | None = Field(None, description="camera clock minus agent clock")
    camera_offset_measured: datetime | None = Field(
        None,
        description="when camera_offset_s was measured (agent clock): the daemon measures it "
        "over ONVIF periodically and each time the camera's recorder reconnects",
    )


class Manifest(_Model):
    iss: str = Field(description="site id")
    iat: int
    kind: Literal["clip", "snapshot"]
    req: str
    case: str
    site: str
    camera: ManifestCamera
    requested: Window
    actual: Window = Field(description="first and last frame, agent clock")
    gaps: list[Window] = Field(default_factory=list)
    file: ManifestFile
    segments: list[SourceSegment] = Field(default_factory=list)
    clock: ClockFacts
    agent_version: str
    notes: list[str] = Field(
        default_factory=list, description="what the site noticed, e.g. a segment left out"
    )
