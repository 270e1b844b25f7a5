"""Start-up recovery: make the index and the files agree again after a crash.

* A segment left `recording` by a writer that is gone (its camera lock is free) is cut at its
  last complete fragment: the file is truncated there, re-hashed, checked with PyAV, and indexed
  as `recovered`, keeping its place in the camera's hash chain. If nothing complete is left it
  is quarantined.
* A file under `segments/` the index does not know (or that cannot be a segment of ours) is moved
  to `quarantine/` and reported; nothing is ever deleted here.
* An indexed segment whose file is gone, or whose size differs from the index, is reported
  (verification names it too); the row is left as it is for the owner to see.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

from agent.log import get_logger
from agent.media import fmp4
from agent.store.files import hash_file, walk_files
from agent.store.index import CLOSED_STATES, Index, SegmentRow, SegmentState, now_us
from agent.store.layout import Layout
from agent.store.lock import CameraLock
from agent.store.model import QuarantinedFile, ReconcileReport, from_us

log = get_logger(__name__)


def pyav_frames(path: Path) -> int:
    """How many video packets PyAV demuxes from the file; raises av.FFmpegError if it cannot."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def quarantine_file(index: Index, layout: Layout, path: Path, reason: str) -> QuarantinedFile:
    """Move a file (or symlink, never followed) aside into the quarantine directory."""
    layout.quarantine.mkdir(parents=True, exist_ok=True)
    target = layout.quarantine_target(path, from_us(now_us()))
    path.rename(target)
    original = (
        path.relative_to(layout.root).as_posix() if path.is_relative_to(layout.root) else str(path)
    )
    with index.transaction(durable=True) as db:
        index.add_quarantine(db, original, str(target), reason)
    log.warning("file_quarantined", file=original, moved_to=str(target), reason=reason)
    return QuarantinedFile(original, target, reason)


def recover_segment(
    index: Index, layout: Layout, row: SegmentRow
) -> tuple[str, QuarantinedFile | None, int]:
    """Settle one stale `recording` row. Returns (outcome, quarantined file, bytes cut off)."""
    try:
        path = layout.segment(row.path)
    except ValueError:
        _mark_quarantined(index, row, "index names a path that is not one of ours")
        return "quarantined", None, 0
    if not os.path.lexists(path):
        _mark_quarantined(index, row, "file missing while it was being recorded")
        return "missing", None, 0
    problem: str | None = None
    scan: fmp4.FileScan | None = None
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        problem = f"cannot open: {exc.strerror}"
    else:
        with os.fdopen(fd, "r+b") as handle:
            scan = fmp4.scan_file(handle)
            if scan.track is None or not scan.fragments:
                problem = f"no complete fragment ({scan.problem or 'empty'})"
            elif scan.complete_size < scan.file_size:
                handle.truncate(scan.complete_size)
                handle.flush()
                os.fsync(handle.fileno())
    if problem is None and scan is not None:
        try:
            frames = pyav_frames(path)
        except av.FFmpegError as exc:
            problem = f"PyAV cannot read it: {exc}"
        else:
            if frames != scan.frames:
                problem = f"PyAV reads {frames} frames, the boxes say {scan.frames}"
    if problem is not None or scan is None:
        moved = quarantine_file(index, layout, path, problem or "unreadable")
        _mark_quarantined(index, row, problem or "unreadable")
        return "quarantined", moved, 0
    sha256, size = hash_file(path)
    end_pts = scan.end_pts
    cut = scan.file_size - scan.complete_size
    with index.transaction(durable=True) as db:
        index.update_segment(
            db,
            row.id,
            state=SegmentState.RECOVERED,
            sha256=sha256,
            bytes=size,
            frames=scan.frames,
            first_pts=scan.start_pts,
            end_pts=end_pts,
            end_us=row.wall_us(end_pts),
            closed_us=now_us(),
            note=f"recovered after a crash; {cut} bytes of an incomplete fragment cut off",
        )
    log.warning("segment_recovered", segment=row.path, frames=scan.frames, cut_bytes=cut)
    return "recovered", None, cut


def _mark_quarantined(index: Index, row: SegmentRow, reason: str) -> None:
    with index.transaction() as db:
        index.update_segment(
            db, row.id, state=SegmentState.QUARANTINED, closed_us=now_us(), note=reason
        )
    log.warning("segment_quarantined", segment=row.path, reason=reason)


def recover_camera(index: Index, layout: Layout, camera: str) -> ReconcileReport:
    """Settle every `recording` row of a camera whose lock the caller holds."""
    recovered: list[str] = []
    quarantined: list[QuarantinedFile] = []
    missing: list[str] = []
    lost = 0
    for row in index.segments(camera=camera, states=[SegmentState.RECORDING], order="id"):
        outcome, moved, cut = recover_segment(index, layout, row)
        lost += cut
        if outcome == "recovered":
            recovered.append(row.path)
        elif outcome == "missing":
            missing.append(row.path)
        if moved is not None:
            quarantined.append(moved)
    return ReconcileReport(
        recovered=tuple(recovered),
        quarantined=tuple(quarantined),
        missing=tuple(missing),
        lost_bytes=lost,
    )


def reconcile(index: Index, layout: Layout) -> ReconcileReport:
    """Recover crashed segments, quarantine unknown files, report missing ones."""
    recovered: list[str] = []
    quarantined: list[QuarantinedFile] = []
    missing: list[str] = []
    mismatched: list[str] = []
    busy: list[str] = []
    lost = 0
    stale = {r.camera for r in index.segments(states=[SegmentState.RECORDING])}
    for camera in sorted(stale):
        lock = CameraLock(layout.lock_file(camera))
        if not lock.try_acquire():
            busy.append(camera)
            continue
        try:
            part = recover_camera(index, layout, camera)
        finally:
            lock.release()
        recovered.extend(part.recovered)
        quarantined.extend(part.quarantined)
        missing.extend(part.missing)
        lost += part.lost_bytes
    # Walk first, then read the index: a writer inserts its row before creating the file, so
    # every file seen by the walk that belongs to a writer is already known below.
    on_disk = walk_files(layout.segments)
    known = index.known_paths()
    for path in on_disk:
        rel = path.relative_to(layout.segments).as_posix()
        if rel in known:
            continue
        reason = "not in the index" if path.is_file() and not path.is_symlink() else "not a file"
        try:
            quarantined.append(quarantine_file(index, layout, path, reason))
        except OSError as exc:
            log.error("quarantine_failed", file=str(path), error=str(exc))
    for row in index.segments(states=list(CLOSED_STATES)):
        try:
            path = layout.segment(row.path)
            size = os.lstat(path).st_size
        except ValueError:
            mismatched.append(row.path)
            continue
        except FileNotFoundError:
            missing.append(row.path)
            log.error("segment_missing", segment=row.path)
            continue
        if size != row.bytes:
            mismatched.append(row.path)
            log.error("segment_size_mismatch", segment=row.path, indexed=row.bytes, found=size)
    report = ReconcileReport(
        recovered=tuple(recovered),
        quarantined=tuple(quarantined),
        missing=tuple(missing),
        mismatched=tuple(mismatched),
        busy=tuple(busy),
        lost_bytes=lost,
    )
    log.info(
        "store_reconciled",
        recovered=len(recovered),
        quarantined=len(quarantined),
        missing=len(missing),
        mismatched=len(mismatched),
        busy=len(busy),
    )
    return report
