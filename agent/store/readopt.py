"""Intact segments the index lost, found in quarantine, and put back (`store verify --repair`).

If the index loses its last transactions (its write-ahead log gone with a power cut on a store
written before segment rows were made durable, or a disk that lies about flushes), start-up
reconciliation finds segment files it does not know and moves them to `quarantine/` as
`not in the index`. Such a file is self-describing: its name gives the camera and the wall-clock
start, its boxes the codec, the frames and their timing. It is **adoptable** when it sits in
quarantine under that reason, its original name is one of our segment names not used again,
and it is whole: an init segment then complete fragments to the last byte, the first one a
keyframe, and PyAV reads as many frames as the boxes list.

Re-adoption moves the file back to its original place and indexes it `recovered`, noted
`re-adopted`, with its SHA-256 computed now. The hash that linked it into the camera's chain was
in the lost rows, so it stays outside the chain: `prev_sha256` is empty, verification does not
walk through it, and the next segment never links to it (see `Index.chain_head`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import av

from agent.log import get_logger
from agent.media import fmp4
from agent.store.files import hash_file
from agent.store.index import Index, SegmentState, now_us
from agent.store.layout import Layout, is_segment_relpath
from agent.store.reconcile import pyav_frames

log = get_logger(__name__)

READOPTED_NOTE = "re-adopted from quarantine"
LOST_BY_INDEX = "not in the index"
_NAME = re.compile(r"^(?P<camera>[^/]+)/[^/]+/[^/]+-(?P<start>\d+)(?:-\d+)?\.mp4$")


@dataclass(frozen=True)
class Adoptable:
    quarantine_id: int
    camera: str
    rel: str  # its original place under segments/
    moved_to: Path
    start_us: int
    bytes: int
    frames: int
    seconds: float


def _scan(path: Path) -> fmp4.FileScan | None:
    try:
        with path.open("rb") as handle:
            return fmp4.scan_file(handle)
    except OSError:
        return None


def find_adoptable(index: Index, camera: str | None = None) -> list[Adoptable]:
    """Quarantined files that are intact segments of ours the index lost (read only)."""
    found: list[Adoptable] = []
    for item in index.quarantined():
        if item.reason != LOST_BY_INDEX or not item.original.startswith("segments/"):
            continue
        rel = item.original.removeprefix("segments/")
        match = _NAME.match(rel)
        if not is_segment_relpath(rel) or match is None:
            continue
        if camera is not None and match["camera"] != camera:
            continue
        moved = Path(item.moved_to)
        if moved.is_symlink() or not moved.is_file() or index.has_path(rel):
            continue
        scan = _scan(moved)
        if (
            scan is None
            or scan.track is None
            or not scan.fragments
            or scan.complete_size != scan.file_size
            or not scan.fragments[0].keyframe
        ):
            continue
        found.append(
            Adoptable(
                quarantine_id=item.id,
                camera=match["camera"],
                rel=rel,
                moved_to=moved,
                start_us=int(match["start"]),
                bytes=scan.file_size,
                frames=scan.frames,
                seconds=scan.seconds,
            )
        )
    return found


def readopt(index: Index, layout: Layout, item: Adoptable) -> str | None:
    """Put one adoptable file back and index it; None when done, else why it was not."""
    scan = _scan(item.moved_to)
    if scan is None or scan.track is None or not scan.fragments:
        return "it can no longer be read"
    try:
        frames = pyav_frames(item.moved_to)
    except av.FFmpegError as exc:
        return f"PyAV cannot read it: {exc}"
    if frames != scan.frames:
        return f"PyAV reads {frames} frames, the boxes say {scan.frames}"
    target = layout.segment(item.rel)
    if os.path.lexists(target) or index.has_path(item.rel):
        return "its original place is taken"
    target.parent.mkdir(parents=True, exist_ok=True)
    item.moved_to.rename(target)
    sha256, size = hash_file(target)
    track = scan.track
    first, end = scan.start_pts, scan.end_pts
    now = now_us()
    with index.transaction(durable=True) as db:
        index.insert_segment(
            db,
            camera=item.camera,
            path=item.rel,
            session=f"readopted-{item.quarantine_id}",
            state=SegmentState.RECOVERED,
            start_us=item.start_us,
            end_us=item.start_us + (end - first) * 1_000_000 // track.timescale,
            timescale=track.timescale,
            first_pts=first,
            end_pts=end,
            anchor_pts=first,
            anchor_us=item.start_us,
            codec=track.codec_name,
            width=track.width,
            height=track.height,
            frames=scan.frames,
            bytes=size,
            init_bytes=scan.init_size,
            sha256=sha256,
            prev_sha256=None,
            created_us=now,
            closed_us=now,
            note=f"{READOPTED_NOTE} (the index had lost it); outside the hash chain",
        )
        db.execute("DELETE FROM quarantine WHERE id = ?", (item.quarantine_id,))
    log.warning("segment_readopted", segment=item.rel, frames=scan.frames, bytes=size)
    return None
