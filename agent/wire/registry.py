"""Registry and status claims (site → RTCC, retained, DESIGN §4.7)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteInfo(_Model):
    id: str
    name: str
    address: str = ""
    contact: str = ""


class Location(_Model):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    heading: float | None = None
    fov: float | None = None
    description: str = ""


Verdict = Literal["pass", "warn", "fail", "unknown"]


class CameraListing(_Model):
    id: str
    name: str
    location: Location | None = None
    sharing: Literal["registry", "integrated"]
    live: bool
    verdict: Verdict = "unknown"
    online: bool
    footage_hours: float = Field(ge=0, description="hours of footage actually held")
    # What the last compatibility check read from the camera, so the RTCC can see firmware
    # with a published vulnerability across its fleet. None when never checked.
    vendor: str | None = Field(None, max_length=128)
    model: str | None = Field(None, max_length=128)
    firmware: str | None = Field(None, max_length=128)


class RegistryClaims(_Model):
    iss: str
    iat: int
    site: SiteInfo
    cameras: list[CameraListing]


class StoreUsage(_Model):
    bytes_used: int
    bytes_budget: int
    disk_free: int


class ClockInfo(_Model):
    synchronized: bool | None = Field(description="NTP synchronised, None if unknown")
    source: str = ""


class StatusClaims(_Model):
    iss: str
    iat: int
    online: bool
    version: str
    uptime_s: float = 0
    cameras_online: int = 0
    cameras_total: int = 0
    store: StoreUsage | None = None
    clock: ClockInfo | None = None
    paused_until: int | None = None
    ledger_seq: int | None = Field(None, description="latest ledger entry, witnessed by the RTCC")
    ledger_hash: str | None = None
