"""Verification: re-hash every segment and walk each camera's hash chain.

Each segment row records the SHA-256 of its file (computed while it was written) and the hash of
the camera's previous segment. Walking a camera's rows in the order they were created:

* `missing`      a complete/recovered segment's file is gone (not by retention);
* `altered`      the file's hash or size differs from the one recorded;
* `out_of_order` a segment links to a hash that exists in the chain, but not its predecessor's;
* `chain_broken` a segment links to a hash found nowhere (a segment removed from the index);
* `unindexed`    a file under `segments/` that the index does not know;
* `needs_recovery` a segment left open (`recording`) by a recorder that is gone (killed, or the
                 power cut): its last fragment may be torn, and the next daemon start cuts it
                 back to its last complete fragment; the detail says what that will keep;
* `lost_by_index` an intact segment of ours in quarantine because the index had lost its row
                 (see `readopt`): `rtcc-edge store verify --repair` puts it back.

Segments re-adopted that way are re-hashed like any other but stand outside the chain (their
link was in the lost rows): the walk steps over them.

Retention tombstones (`expired`) keep their hash, so the chain runs through them and a deleted
file behind a tombstone is not a problem. Segments still being written by a live recorder (its
camera lock is held) are checked for presence only and listed in `open_segments`; quarantined
rows are listed as notes (they were reported when they were quarantined).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from agent.media import fmp4
from agent.store.files import hash_file, walk_files
from agent.store.index import Index, SegmentRow, SegmentState
from agent.store.layout import Layout
from agent.store.lock import CameraLock
from agent.store.model import VerifyProblem, VerifyReport
from agent.store.readopt import READOPTED_NOTE, find_adoptable

VerifyProgress = Callable[[int, int], None]  # (bytes done, bytes to do)


def verify(
    index: Index,
    layout: Layout,
    camera: str | None = None,
    *,
    progress: VerifyProgress | None = None,
) -> VerifyReport:
    rows = index.segments(camera=camera, order="id")
    total = sum(r.bytes for r in rows if r.state in (SegmentState.COMPLETE, SegmentState.RECOVERED))
    problems: list[VerifyProblem] = []
    notes: list[str] = []
    open_segments: list[str] = []
    done = checked = tombstones = recording = 0
    by_camera: dict[str, list[SegmentRow]] = {}
    for row in rows:
        by_camera.setdefault(row.camera, []).append(row)
    for cam, chain in sorted(by_camera.items()):
        hashes = {r.sha256 for r in chain if r.sha256}
        previous: str | None = None
        for row in chain:
            if row.state is SegmentState.QUARANTINED:
                notes.append(f"{row.path}: quarantined ({row.note})")
                if row.sha256 is None:
                    continue
            if row.note.startswith(READOPTED_NOTE):
                notes.append(f"{row.path}: {row.note}")
            else:
                link_problem = _link(row, previous, hashes)
                if link_problem is not None:
                    problems.append(link_problem)
                if row.sha256 is not None:
                    previous = row.sha256
            try:
                path = layout.segment(row.path)
            except ValueError:
                problems.append(VerifyProblem("altered", cam, row.path, "not a segment path"))
                continue
            present = os.path.lexists(path)
            if row.state is SegmentState.EXPIRED:
                tombstones += 1
                if present:
                    notes.append(f"{row.path}: expired by retention but still on disk")
                continue
            if row.state is SegmentState.RECORDING:
                recording += 1
                if not present:
                    problems.append(VerifyProblem("missing", cam, row.path, "open segment gone"))
                elif _writer_alive(layout, cam):
                    open_segments.append(row.path)
                else:
                    detail = _recovery_detail(path)
                    problems.append(VerifyProblem("needs_recovery", cam, row.path, detail))
                continue
            if row.state is SegmentState.QUARANTINED:
                continue
            if not present:
                problems.append(VerifyProblem("missing", cam, row.path, "file is gone"))
                continue
            try:
                sha256, size = hash_file(path)
            except OSError as exc:
                problems.append(
                    VerifyProblem("missing", cam, row.path, f"cannot read: {exc.strerror}")
                )
                continue
            checked += 1
            done += row.bytes
            if progress is not None:
                progress(done, total)
            if sha256 != row.sha256:
                problems.append(
                    VerifyProblem(
                        "altered",
                        cam,
                        row.path,
                        f"sha256 {sha256[:16]}… recorded {str(row.sha256)[:16]}…"
                        + (f"; {size} bytes, recorded {row.bytes}" if size != row.bytes else ""),
                    )
                )
    for item in find_adoptable(index, camera):
        problems.append(
            VerifyProblem(
                "lost_by_index",
                item.camera,
                item.rel,
                f"intact segment ({item.seconds:.1f} s, {item.frames} frames) in quarantine at "
                f"{item.moved_to.name}: the index had lost it; `rtcc-edge store verify "
                "--repair` puts it back",
            )
        )
    known = index.known_paths()
    for path in walk_files(layout.segments):
        rel = path.relative_to(layout.segments).as_posix()
        if rel in known:
            continue
        owner = rel.split("/", 1)[0]
        if camera is not None and owner != camera:
            continue
        problems.append(VerifyProblem("unindexed", owner, rel, "file not in the index"))
    return VerifyReport(
        problems=tuple(problems),
        checked=checked,
        bytes=done,
        tombstones=tombstones,
        recording=recording,
        notes=tuple(notes),
        open_segments=tuple(open_segments),
    )


def _writer_alive(layout: Layout, camera: str) -> bool:
    """Whether a recorder holds the camera now (its lock cannot be taken)."""
    lock = CameraLock(layout.lock_file(camera))
    try:
        alive = not lock.try_acquire()
    except OSError:
        return False
    lock.release()
    return alive


def _recovery_detail(path: Path) -> str:
    """What recovering an open segment without a writer will keep and cut (read only)."""
    lead = "left open by a recorder that is gone; the next daemon start recovers it"
    try:
        with path.open("rb") as handle:
            scan = fmp4.scan_file(handle)
    except OSError as exc:
        return f"{lead}, but it cannot be read now: {exc.strerror}"
    if scan.track is None or not scan.fragments:
        return f"{lead}: no complete fragment, it will be quarantined"
    seconds = scan.seconds
    torn = scan.file_size - scan.complete_size
    return f"{lead}: {len(scan.fragments)} complete fragment(s), {seconds:.2f} s kept; " + (
        f"{torn} bytes of a torn fragment cut off" if torn else "no torn fragment"
    )


def _link(row: SegmentRow, previous: str | None, hashes: set[str]) -> VerifyProblem | None:
    if row.prev_sha256 == previous:
        return None
    if previous is None:
        detail = "links to a segment that is not in the index (the chain's start was removed)"
        return VerifyProblem("chain_broken", row.camera, row.path, detail)
    if row.prev_sha256 in hashes:
        return VerifyProblem(
            "out_of_order",
            row.camera,
            row.path,
            "links to another segment of the chain than the one before it",
        )
    return VerifyProblem(
        "chain_broken",
        row.camera,
        row.path,
        "links to a hash found nowhere: a segment before it was removed from the index",
    )
