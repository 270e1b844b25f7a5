"""The JSON that `discover --json`, `check --json` and `doctor --json` print (docs/compat-json.md).

Each report says what it is (`kind`) and which version of this layout it follows (`version`);
fields are only ever added within a version. Units are in the field names (`_s` seconds, `_bps`
bits per second, `_bytes`). Nothing in a report carries a password: URLs are without their
credentials. `python -m agent.compat.report` prints the JSON Schema of all three.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from agent.quirks import QuirkId

Status = Literal["pass", "warn", "fail", "skip"]
CheckId = Literal[
    # one camera
    "onvif",
    "streaming",
    "codec",
    "resolution",
    "frame_rate",
    "keyframe_interval",
    "bitrate",
    "clock",
    "firmware",
    "retention",
    "sub_stream",
    "snapshot",
    # the whole site (doctor)
    "config",
    "time_sync",
    "store",
    "store_integrity",
    "broker",
    "site_retention",
]
UrlSource = Literal["configured", "given", "onvif", "firmware_profile"]
FoundBy = Literal["multicast", "unicast", "port_sweep"]
_SEVERITY: dict[Status, int] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


def worst(statuses: list[Status]) -> Status:
    """The overall status: the worst of `statuses` (skips count as pass; none at all: pass)."""
    ranked = [s for s in statuses if s != "skip"] or ["pass"]
    return max(ranked, key=lambda s: _SEVERITY[s])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Check(_Model):
    """One verdict, with the reason and what to do about it in plain words."""

    id: CheckId = Field(title="Check")
    title: str = Field(title="What was checked")
    status: Status
    reason: str = Field(title="Why this status")
    remedy: str | None = Field(None, title="What to do (none when nothing needs doing)")


class ErrorInfo(_Model):
    kind: str = Field(
        title="Error kind",
        description="unreachable, timeout, not_onvif, malformed, auth, fault (ONVIF); "
        "auth, not_found, refused, timeout, dropped, no_video, error (stream)",
    )
    message: str


class Identity(_Model):
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    hardware_id: str | None = None


class Vendor(_Model):
    id: str = Field(title="Firmware profile id")
    name: str
    confidence: Literal["high", "medium", "low"]
    reasons: list[str]


class Clock(_Model):
    camera_utc: datetime | None = Field(None, title="The camera's UTC time when asked")
    offset_s: float | None = Field(
        None, title="Camera clock minus this host's clock (s)", description="None: unknown"
    )
    round_trip_s: float | None = None
    ntp: bool | None = Field(None, title="The camera says it sets its clock by NTP")
    compensated: bool = Field(
        False, title="The offset was compensated in WS-Security timestamps (|offset| >= 5 s)"
    )
    needs_auth: bool = Field(
        False, title="The camera tells its time only with credentials (asked again logged in)"
    )
    error: str | None = Field(None, title="Why the clock could not be read")


class Profile(_Model):
    token: str
    name: str | None = None
    role: Literal["main", "sub"] | None = Field(None, title="The stream this profile serves")
    encoding: str | None = Field(
        None, title="Encoding the camera claims (Media1 says H264 for H.265)"
    )
    width: int | None = None
    height: int | None = None
    fps_limit: float | None = None
    bitrate_kbps: int | None = None
    gov_length: int | None = None


class Onvif(_Model):
    device_url: str
    auth: Literal["password_digest", "password_text", "http_digest"] | None = Field(
        None, title="Authentication that worked"
    )
    services: dict[str, str] = Field(
        default_factory=dict, title="Service addresses used (after fixing what the camera sent)"
    )
    profiles: list[Profile] = Field(default_factory=list)
    snapshot_uri: str | None = Field(None, title="ONVIF snapshot URL (None: not offered)")
    error: ErrorInfo | None = None


class Stream(_Model):
    role: Literal["main", "sub"]
    url: str | None = Field(None, title="RTSP URL, without credentials")
    url_source: UrlSource | None = Field(
        None,
        title="Where the URL came from",
        description="configured (rtsp_url), given (on the command line), onvif (GetStreamUri), "
        "firmware_profile (a vendor's known path, because GetStreamUri failed)",
    )
    codec: str | None = Field(None, description="h264, hevc, … as decoded, not as claimed")
    profile: str | None = None
    width: int | None = None
    height: int | None = None
    megapixels: float | None = None
    fps: float | None = None
    keyframe_interval_s: float | None = None
    keyframe_interval_at_least_s: float | None = Field(
        None, title="Only one keyframe arrived in this long"
    )
    bitrate_bps: int | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    time_to_first_frame_s: float | None = None
    seconds_read: float | None = None
    frames: int | None = None
    error: ErrorInfo | None = None


class QuirkFound(_Model):
    id: str = Field(
        title="Quirk id",
        description="one of agent.quirks.QuirkId: " + ", ".join(q.value for q in QuirkId),
    )
    detail: str
    workaround: str | None = Field(None, title="What the agent does about it (None: nothing)")


class KnownQuirk(_Model):
    """A quirk the firmware profile lists for this vendor and model (not necessarily seen)."""

    id: str
    summary: str
    workaround: str
    source: str


class FirmwareFinding(_Model):
    kind: Literal["vulnerability", "onvif_defect"]
    id: str = Field(title="CVE id or defect id")
    status: Literal["affected", "unknown"]
    summary: str
    reason: str
    remedy: str
    severity: str | None = None
    known_exploited: bool = False
    source: str


class FirmwareCoverage(_Model):
    """Whether the firmware profile's published advisories speak about this model and firmware
    line at all: without that, finding no vulnerability is no data, never a pass."""

    covered: bool
    reason: str
    advisories_reviewed: date = Field(title="When the profile was last compared with advisories")


class ChannelInfo(_Model):
    """One channel (video source) of a recorder, as ONVIF describes it."""

    number: int = Field(title="Channel number (1 = the first video source)")
    source_token: str | None = Field(None, title="ONVIF video source token")
    width: int | None = Field(None, title="Video source width")
    height: int | None = Field(None, title="Video source height")
    main_profile: str | None = Field(None, title="Token of the profile recorded as main")
    main_encoding: str | None = None
    sub_profile: str | None = Field(None, title="Token of the profile used as sub stream")
    sub_encoding: str | None = None
    profiles: int = Field(0, title="Media profiles on this channel")


class RecorderInfo(_Model):
    """An NVR, DVR or encoder: one ONVIF device with several channels."""

    reason: str = Field(title="Why this device is taken for a recorder")
    channels: list[ChannelInfo] = Field(
        default_factory=list, title="Its channels (empty: not listed without credentials)"
    )


class Storage(_Model):
    """The store capacity a retention verdict was computed from."""

    budget_bytes: int = Field(title="store.max_bytes")
    free_bytes: int | None = Field(None, title="Free space on the store's disk")
    used_bytes: int = Field(0, title="Footage already in the store")
    reserve_bytes: int = Field(title="store.min_free")
    capacity_bytes: int = Field(title="What footage can use: min(budget, used + free - reserve)")
    cameras_sharing: int = Field(title="Cameras the capacity is shared by")
    max_age_s: float = Field(title="store.max_age")


class CameraReport(_Model):
    kind: Literal["camera_check"] = "camera_check"
    version: Literal[1] = 1
    checked_at: datetime
    duration_s: float
    target: str = Field(title="What was checked: a camera id or an address (no credentials)")
    camera_id: str | None = None
    channel: int | None = Field(None, title="The recorder channel checked (None: a camera)")
    status: Status = Field(title="The worst check status")
    identity: Identity | None = None
    vendor: Vendor | None = None
    onvif: Onvif | None = None
    clock: Clock | None = None
    stream: Stream | None = None
    sub_stream: Stream | None = None
    quirks: list[QuirkFound] = Field(default_factory=list, title="Quirks seen on this camera")
    known_quirks: list[KnownQuirk] = Field(default_factory=list)
    firmware: list[FirmwareFinding] = Field(default_factory=list)
    firmware_coverage: FirmwareCoverage | None = None
    recorder: RecorderInfo | None = Field(None, title="Set when the device has several channels")
    storage: Storage | None = None
    checks: list[Check]


class DiscoveredCamera(_Model):
    index: int = Field(title="Number to pass to `rtcc-edge cameras add`")
    host: str
    port: int
    device_url: str
    endpoint: str | None = Field(None, title="WS-Discovery EndpointReference")
    model: str | None = Field(None, title="From the hardware scope")
    name: str | None = Field(None, title="From the name scope")
    location: str | None = Field(None, title="From the location scope")
    scopes: list[str] = Field(default_factory=list)
    found_by: list[FoundBy]
    vendor: Vendor | None = None
    clock_offset_s: float | None = Field(None, title="From the port sweep's unauthenticated call")
    quirks: list[QuirkFound] = Field(default_factory=list)
    configured_as: str | None = Field(None, title="Camera id, if already in the configuration")
    identity: Identity | None = Field(None, title="GetDeviceInformation (with credentials only)")
    recorder: RecorderInfo | None = Field(None, title="Set when the device is an NVR/DVR")
    error: ErrorInfo | None = Field(
        None, title="Why the device could not be interrogated (with credentials only)"
    )


class InterfaceInfo(_Model):
    name: str
    address: str


class DiscoveryReport(_Model):
    kind: Literal["discovery"] = "discovery"
    version: Literal[1] = 1
    started_at: datetime
    duration_s: float
    interfaces: list[InterfaceInfo] = Field(title="Where multicast Probes went")
    scanned: list[str] = Field(title="--scan ranges (unicast Probes and port sweep)")
    hosts_scanned: int
    ws_port: int
    sweep_ports: list[int]
    cameras: list[DiscoveredCamera]


class RecorderReport(_Model):
    kind: Literal["recorder_check"] = "recorder_check"
    version: Literal[1] = 1
    checked_at: datetime
    duration_s: float
    target: str = Field(title="The recorder's address (no credentials)")
    status: Status = Field(title="The worst status of its channels")
    recorder: RecorderInfo
    channels: list[CameraReport] = Field(title="One camera_check per channel checked")


class DoctorReport(_Model):
    kind: Literal["doctor"] = "doctor"
    version: Literal[1] = 1
    checked_at: datetime
    duration_s: float
    status: Status
    config_path: str
    site_id: str | None = None
    checks: list[Check] = Field(title="Site checks: config, time_sync, store, broker, …")
    cameras: list[CameraReport]
    versions: dict[str, str]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every report, as documented in docs/compat-json.md."""
    models = (CameraReport, DiscoveryReport, DoctorReport, RecorderReport)
    refs, definitions = models_json_schema(
        [(model, "serialization") for model in models], title="rtcc-edge compatibility reports"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **definitions,
        "oneOf": [refs[(model, "serialization")] for model in models],
    }


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
