"""Snapshot delivery: the frame nearest the requested moment, as a JPEG, uploaded with its
manifest (`kind: snapshot`).

Where the frame comes from:

* `at` within the recorded footage: the store cuts the keyframe interval around `at` (the same
  extraction a clip uses, so the source segments are hash-checked and listed in the manifest),
  the frames are decoded and the one nearest `at` is kept.
* `at` absent ("now"; the job's first start is the moment, so a resumed job aims at the same
  one) or newer than the last fragment on disk: the recorder's live fan-out gives the next
  keyframe fragment, whose frame nearest `at` is taken. If the live feed gives nothing within
  `LIVE_WAIT`, the newest recorded frame is used instead; if there is none either, the request
  fails `camera_offline`.
* Nothing recorded at a past `at` → `out_of_retention`.

The JPEG is encoded from the decoded frame with FFmpeg's MJPEG encoder (full-range YUV 4:2:0).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from agent.camera_info import read_camera_facts
from agent.clock import clock_sync
from agent.delivery.errors import DeliveryFailed
from agent.delivery.jobs import JobRow
from agent.delivery.manifest import manifest_camera, sign_manifest, snapshot_manifest
from agent.delivery.runner import DeliveryService, Prepared
from agent.link.job import Job
from agent.link.ports import FootageRequest
from agent.log import get_logger
from agent.recorder import UnknownCamera
from agent.store import ClipResult, ClipStore, NoFootage, SegmentRef, StoreError
from agent.store.model import from_us
from agent.wire import RejectCode
from agent.wire.manifest import ClockFacts
from agent.wire.requests import SnapshotRequest

log = get_logger(__name__)

CONTENT_TYPE = "image/jpeg"
LIVE_WAIT = 10.0  # seconds to wait for a keyframe from the live feed
JPEG_QUALITY = ("2", "4")  # MJPEG qmin / qmax: visually lossless for evidence
_AROUND = timedelta(microseconds=1)
# Without a live picture, the newest recorded frame stands in for "now" only if it is this fresh.
STALE_LIMIT = timedelta(seconds=5)


@dataclass(frozen=True)
class Still:
    """A decoded and encoded frame."""

    jpeg: bytes
    time: datetime  # agent wall clock of the frame
    width: int
    height: int
    segments: tuple[SegmentRef, ...] = ()
    notes: tuple[str, ...] = ()


def encode_jpeg(frame: Any) -> bytes:
    """One decoded `av.VideoFrame` as a baseline JPEG."""
    context = av.CodecContext.create("mjpeg", "w")
    context.width = frame.width
    context.height = frame.height
    context.pix_fmt = "yuvj420p"
    context.time_base = Fraction(1, 25)
    context.options = {"qmin": JPEG_QUALITY[0], "qmax": JPEG_QUALITY[1]}
    image = frame.reformat(format="yuvj420p")
    image.pts = 0
    packets = [*context.encode(image), *context.encode(None)]
    data = b"".join(bytes(packet) for packet in packets)
    if not data:
        raise ValueError("the JPEG encoder produced nothing")
    return data


def nearest_still(source: Path | bytes, first_wall: datetime, at: datetime) -> Still:
    """Decode the MP4 `source` (a file or the bytes of an init segment plus fragments) whose
    first frame was shown at `first_wall`, and encode the frame nearest `at`."""
    opened = av.open(str(source) if isinstance(source, Path) else io.BytesIO(source), "r")
    with opened as container:
        stream = container.streams.video[0]
        if stream.time_base is None:
            raise ValueError("the video has no time base")
        time_base = Fraction(stream.time_base)
        origin: int | None = None
        best: tuple[float, Any, datetime] | None = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            if origin is None:
                origin = frame.pts
            wall = first_wall + timedelta(seconds=float((frame.pts - origin) * time_base))
            distance = abs((wall - at).total_seconds())
            if best is None or distance < best[0]:
                best = (distance, frame, wall)
            elif wall > at:
                break  # frames only get further from `at` from here on
        if best is None:
            raise ValueError("no frame could be decoded")
        _, frame, wall = best
        return Still(encode_jpeg(frame), wall, frame.width, frame.height)


def newest_footage(store: ClipStore, camera: str, before: datetime) -> datetime | None:
    """End of the newest footage of `camera` recorded up to `before` (None if none in the
    hour before it)."""
    rows = store.segments(camera, before - timedelta(hours=1), before + timedelta(minutes=1))
    return max((from_us(row.end_us) for row in rows), default=None)


class SnapshotDelivery:
    """The `snapshot` handler of the request service (`agent.link.ports.DeliveryHandler`)."""

    content_type = CONTENT_TYPE

    def __init__(self, service: DeliveryService) -> None:
        self.service = service

    async def start(self, request: FootageRequest, job: Job) -> None:
        if not isinstance(request, SnapshotRequest):
            raise TypeError(f"the snapshot handler got a {request.cmd} request")
        self.service.launch("snapshot", request, job, self)

    async def cancel(self, request_id: str) -> None:
        await self.service.cancel(request_id)

    async def prepare(self, request: SnapshotRequest, row: JobRow) -> Prepared:
        service = self.service
        camera = service.config.camera(request.camera)
        if camera is None:
            raise DeliveryFailed(RejectCode.UNKNOWN_CAMERA, f"no camera {request.camera!r}")
        at = service.requested_moment(request, row)
        newest = await service.store.run(lambda store: newest_footage(store, camera.id, at))
        still: Still | None = None
        if newest is None or at > newest:
            still = await self._live(camera.id, at)
        if still is None:
            if newest is None or at - newest > STALE_LIMIT:
                raise self._nothing(request, camera.id, at, newest)
            try:
                still = await self._recorded(camera.id, at, newest)
            except NoFootage as exc:
                raise self._nothing(request, camera.id, at, newest) from exc
        name = f"snapshot-{uuid.uuid4().hex}.jpg"
        path = service.temp_path(name)
        try:
            await asyncio.to_thread(path.write_bytes, still.jpeg)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise DeliveryFailed(
                RejectCode.INTERNAL,
                f"the snapshot could not be written to the temporary directory: {exc.strerror}",
            ) from exc
        sha256 = hashlib.sha256(still.jpeg).hexdigest()
        facts = await asyncio.to_thread(read_camera_facts, service.config.state_dir, camera.id)
        synchronized = (await asyncio.to_thread(clock_sync)).synchronized
        manifest = snapshot_manifest(
            site=service.config.site.id,
            request_id=request.jti,
            case=request.case,
            camera=manifest_camera(camera, facts),
            requested_at=at,
            frame_time=still.time,
            sha256=sha256,
            size=len(still.jpeg),
            width=still.width,
            height=still.height,
            segments=still.segments,
            clock=ClockFacts(
                ntp_synchronized=synchronized,
                camera_offset_s=facts.clock_offset_s,
                camera_offset_measured=facts.clock_measured,
            ),
            issued=int(service.clock()),
            notes=still.notes,
        )
        log.info(
            "snapshot_prepared",
            request=request.jti,
            bytes=len(still.jpeg),
            frame=still.time.isoformat(),
            live=not still.segments,
        )
        return Prepared(name, sha256, len(still.jpeg), sign_manifest(service.device_key, manifest))

    async def _live(self, camera: str, at: datetime) -> Still | None:
        """The frame nearest `at` in the next keyframe fragment of the live feed, or None."""
        live = self.service.live
        if live is None:
            return None
        try:
            feed = live.subscribe(camera)
        except UnknownCamera:
            return None
        init: bytes | None = None
        try:
            async with feed, asyncio.timeout(LIVE_WAIT):
                async for chunk in feed:
                    if chunk.kind == "init":
                        init = chunk.data
                    elif init is not None and chunk.keyframe and chunk.wall_time is not None:
                        data, first = init + chunk.data, chunk.wall_time
                        return await asyncio.to_thread(nearest_still, data, first, at)
        except TimeoutError:
            log.warning("snapshot_live_timeout", camera=camera, seconds=LIVE_WAIT)
        except (av.FFmpegError, ValueError) as exc:
            log.warning("snapshot_live_undecodable", camera=camera, error=str(exc))
        return None

    @staticmethod
    def _nothing(
        request: SnapshotRequest, camera: str, at: datetime, newest: datetime | None
    ) -> DeliveryFailed:
        if request.at is None:
            since = f" since {newest.isoformat()}" if newest is not None else ""
            return DeliveryFailed(
                RejectCode.CAMERA_OFFLINE,
                f"camera {camera} gives no live picture and has recorded nothing{since}",
            )
        return DeliveryFailed(
            RejectCode.OUT_OF_RETENTION,
            f"no footage of camera {camera} is held at {at.isoformat()}",
        )

    async def _recorded(self, camera: str, at: datetime, newest: datetime) -> Still:
        """The recorded frame nearest `at` (the newest one if `at` is after the footage).

        NoFootage if the store has nothing there after all."""
        service = self.service
        at_recorded = min(at, newest - _AROUND)
        name = f"snapshot-{uuid.uuid4().hex}.mp4"
        cut_path = service.temp_path(name)

        def cut(store: ClipStore) -> ClipResult:
            return store.extract(camera, at_recorded, at_recorded + _AROUND, cut_path)

        cutting = asyncio.ensure_future(service.store.run(cut))
        try:
            clip = await asyncio.shield(cutting)
            still = await asyncio.to_thread(nearest_still, cut_path, clip.first_frame, at)
        except asyncio.CancelledError:
            cutting.add_done_callback(lambda _f: cut_path.unlink(missing_ok=True))
            raise
        except (OSError, StoreError, av.FFmpegError, ValueError) as exc:
            raise DeliveryFailed(
                RejectCode.INTERNAL, f"the snapshot could not be made: {exc}"
            ) from exc
        finally:
            await asyncio.to_thread(cut_path.unlink, missing_ok=True)
        return Still(
            still.jpeg,
            still.time,
            still.width,
            still.height,
            segments=clip.segments,
            notes=clip.notes,
        )
