"""The manifest of a delivered clip or snapshot (DESIGN §4.5), signed with the device key.

It states what was asked (request id, case, camera, requested window), what the site actually
had (first and last frame on the agent's clock, the gaps), the file (SHA-256, bytes, container,
codec, size, duration, frames), the source segments with the SHA-256 each had when it was
written, and the clock facts (NTP sync, the camera's offset when known). Facts the agent does
not know are null, never guessed. `rtcc-hub verify CLIP MANIFEST` checks it.

The JWS header carries `typ: rtcc-manifest+jwt`, so a manifest can never be mistaken for an
event (or the reverse), though the same key signs both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from agent import __version__
from agent.camera_info import CameraFacts
from agent.config import CameraConfig
from agent.identity import DeviceKey
from agent.store import ClipResult, Gap, SegmentRef
from agent.wire import Manifest
from agent.wire.manifest import (
    MANIFEST_TYP,
    ClockFacts,
    ManifestCamera,
    ManifestFile,
    SourceSegment,
    Window,
)
from agent.wire.registry import Location


def manifest_camera(camera: CameraConfig, facts: CameraFacts) -> ManifestCamera:
    where = camera.location
    location = (
        None
        if where is None
        else Location(
            lat=where.lat,
            lon=where.lon,
            heading=where.heading,
            fov=where.fov,
            description=where.description,
        )
    )
    return ManifestCamera(
        id=camera.id,
        name=camera.name,
        vendor=facts.vendor,
        model=facts.model,
        firmware=facts.firmware,
        location=location,
    )


def source_segments(refs: Iterable[SegmentRef]) -> list[SourceSegment]:
    return [
        SourceSegment(
            name=ref.name,
            sha256=ref.sha256,
            bytes=ref.bytes,
            start=ref.start,
            end=ref.end,
            complete=ref.complete,
        )
        for ref in refs
    ]


def _windows(gaps: Iterable[Gap]) -> list[Window]:
    return [Window(start=gap.start, end=gap.end) for gap in gaps]


def clip_manifest(
    *,
    site: str,
    request_id: str,
    case: str,
    camera: ManifestCamera,
    requested: tuple[datetime, datetime],
    clip: ClipResult,
    clock: ClockFacts,
    issued: int,
) -> Manifest:
    return Manifest(
        iss=site,
        iat=issued,
        kind="clip",
        req=request_id,
        case=case,
        site=site,
        camera=camera,
        requested=Window(start=requested[0], end=requested[1]),
        actual=Window(start=clip.first_frame, end=clip.last_frame),
        gaps=_windows(clip.gaps),
        file=ManifestFile(
            sha256=clip.sha256,
            bytes=clip.bytes,
            container="mp4",
            codec=clip.codec,
            width=clip.width,
            height=clip.height,
            duration=round(clip.duration, 6),
            frames=clip.frames,
        ),
        segments=source_segments(clip.segments),
        clock=clock,
        agent_version=__version__,
        notes=list(clip.notes),
    )


def snapshot_manifest(
    *,
    site: str,
    request_id: str,
    case: str,
    camera: ManifestCamera,
    requested_at: datetime,
    frame_time: datetime,
    sha256: str,
    size: int,
    width: int,
    height: int,
    segments: Iterable[SegmentRef],
    clock: ClockFacts,
    issued: int,
    notes: Iterable[str] = (),
    codec: Literal["mjpeg"] = "mjpeg",
) -> Manifest:
    return Manifest(
        iss=site,
        iat=issued,
        kind="snapshot",
        req=request_id,
        case=case,
        site=site,
        camera=camera,
        requested=Window(start=requested_at, end=requested_at),
        actual=Window(start=frame_time, end=frame_time),
        file=ManifestFile(
            sha256=sha256,
            bytes=size,
            container="jpeg",
            codec=codec,
            width=width,
            height=height,
            duration=None,
            frames=1,
        ),
        segments=source_segments(segments),
        clock=clock,
        agent_version=__version__,
        notes=list(notes),
    )


def sign_manifest(key: DeviceKey, manifest: Manifest) -> str:
    """The manifest as a compact EdDSA JWS by the device key."""
    return key.sign(manifest.model_dump(mode="json"), typ=MANIFEST_TYP)
