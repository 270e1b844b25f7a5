"""Clip delivery: the request's window cut from the store into one MP4, then uploaded.

* Nothing of the window held at all → `failed` / `out_of_retention` (the footage aged out, or
  was never recorded). A window only partly held → the clip of what is held, every hole listed
  as a gap in the manifest (also the part before the oldest footage).
* The clip is cut into the temporary directory (`upload.temp_dir`) under a name of our own.
  Before cutting, the free space there is compared with the size of the source segments; if it
  does not fit, or the disk fills up while cutting, the request ends `failed` / `internal` with
  a sentence that says so, and no partial file is left behind (the store writes the clip under a
  temporary name and renames it only once complete).
"""

from __future__ import annotations

import asyncio
import errno
import uuid
from datetime import datetime

from agent.camera_info import read_camera_facts
from agent.clock import clock_sync
from agent.delivery.errors import DeliveryFailed
from agent.delivery.jobs import JobRow
from agent.delivery.manifest import clip_manifest, manifest_camera, sign_manifest
from agent.delivery.runner import DeliveryService, Prepared
from agent.link.job import Job
from agent.link.ports import FootageRequest
from agent.log import get_logger
from agent.store import ClipResult, ClipStore, NoFootage, StoreError
from agent.store.model import to_us
from agent.wire import RejectCode
from agent.wire.manifest import ClockFacts
from agent.wire.requests import ClipRequest

log = get_logger(__name__)

CONTENT_TYPE = "video/mp4"
_SPACE_MARGIN = 1.05  # the clip is the segments' bytes, give or take the moov box
_SPACE_SLACK = 1024 * 1024
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_GOP_US = 10_000_000  # a generous keyframe interval


def _window_text(start: datetime, end: datetime) -> str:
    return f"{start.isoformat()} to {end.isoformat()}"


def estimate_clip_bytes(store: ClipStore, camera: str, start: datetime, end: datetime) -> int:
    """Bytes the clip of [start, end] will take: each overlapping segment's share of the window,
    plus a whole keyframe interval's worth at the start (the clip begins at a keyframe). 0 when
    nothing overlaps."""
    start_us, end_us = to_us(start), to_us(end)
    rows = store.segments(camera, start, end)
    total = 0.0
    for row in rows:
        length = max(1, row.end_us - row.start_us)
        overlap = min(end_us, row.end_us) - max(start_us, row.start_us)
        total += row.bytes * max(0, overlap) / length
    if rows:
        first = rows[0]
        total += first.bytes * min(1.0, _GOP_US / max(1, first.end_us - first.start_us))
    return int(total)


class ClipDelivery:
    """The `clip` handler of the request service (`agent.link.ports.DeliveryHandler`)."""

    content_type = CONTENT_TYPE

    def __init__(self, service: DeliveryService) -> None:
        self.service = service

    async def start(self, request: FootageRequest, job: Job) -> None:
        if not isinstance(request, ClipRequest):
            raise TypeError(f"the clip handler got a {request.cmd} request")
        self.service.launch("clip", request, job, self)

    async def cancel(self, request_id: str) -> None:
        await self.service.cancel(request_id)

    async def prepare(self, request: ClipRequest, row: JobRow) -> Prepared:
        service = self.service
        camera = service.config.camera(request.camera)
        if camera is None:
            raise DeliveryFailed(RejectCode.UNKNOWN_CAMERA, f"no camera {request.camera!r}")
        window = _window_text(request.start, request.end)
        needed = await service.store.run(
            lambda store: estimate_clip_bytes(store, request.camera, request.start, request.end)
        )
        if needed == 0:
            raise DeliveryFailed(
                RejectCode.OUT_OF_RETENTION,
                f"no footage of camera {request.camera} is held for {window}",
            )
        free = await asyncio.to_thread(service.free_bytes)
        if needed * _SPACE_MARGIN + _SPACE_SLACK > free:
            raise DeliveryFailed(
                RejectCode.INTERNAL,
                f"not enough space to cut the clip: the temporary directory has {free:,} bytes "
                f"free and the clip needs about {needed:,}",
            )
        name = f"clip-{uuid.uuid4().hex}.mp4"
        dest = service.temp_path(name)

        def cut(store: ClipStore) -> ClipResult:
            return store.extract(request.camera, request.start, request.end, dest)

        cutting = asyncio.ensure_future(service.store.run(cut))
        try:
            clip = await asyncio.shield(cutting)
        except asyncio.CancelledError:
            # The cut goes on in the store's thread; its file must not outlive the job.
            cutting.add_done_callback(lambda _f: dest.unlink(missing_ok=True))
            raise
        except NoFootage as exc:
            raise DeliveryFailed(
                RejectCode.OUT_OF_RETENTION,
                f"no footage of camera {request.camera} is held for {window}",
            ) from exc
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise DeliveryFailed(
                    RejectCode.INTERNAL,
                    "the temporary directory filled up while the clip was cut; no clip was kept",
                ) from exc
            raise DeliveryFailed(
                RejectCode.INTERNAL, f"the clip could not be cut: {exc.strerror or exc}"
            ) from exc
        except StoreError as exc:
            raise DeliveryFailed(RejectCode.INTERNAL, f"the clip could not be cut: {exc}") from exc
        facts = await asyncio.to_thread(read_camera_facts, service.config.state_dir, camera.id)
        synchronized = (await asyncio.to_thread(clock_sync)).synchronized
        manifest = clip_manifest(
            site=service.config.site.id,
            request_id=request.jti,
            case=request.case,
            camera=manifest_camera(camera, facts),
            requested=(request.start, request.end),
            clip=clip,
            clock=ClockFacts(
                ntp_synchronized=synchronized,
                camera_offset_s=facts.clock_offset_s,
                camera_offset_measured=facts.clock_measured,
            ),
            issued=int(service.clock()),
        )
        log.info(
            "clip_prepared",
            request=request.jti,
            bytes=clip.bytes,
            frames=clip.frames,
            gaps=len(clip.gaps),
            first_frame=clip.first_frame.isoformat(),
            last_frame=clip.last_frame.isoformat(),
        )
        return Prepared(name, clip.sha256, clip.bytes, sign_manifest(service.device_key, manifest))
