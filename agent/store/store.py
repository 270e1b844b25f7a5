"""`ClipStore`: what the rest of the agent uses to record, keep, cut and check footage."""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, StoreConfig
from agent.store import holds as _holds
from agent.store.errors import StoreNotFound
from agent.store.extract import Progress, extract
from agent.store.index import LIVE_STATES, Index, SegmentRow, SegmentState
from agent.store.layout import Layout, check_camera_id
from agent.store.lock import CameraLock
from agent.store.model import (
    CameraStatus,
    ClipResult,
    Coverage,
    Gap,
    Hold,
    ReconcileReport,
    RetentionReport,
    Span,
    VerifyReport,
    from_us,
    to_us,
)
from agent.store.readopt import Adoptable, find_adoptable, readopt
from agent.store.reconcile import reconcile, recover_camera
from agent.store.retention import can_make_room, enforce, sweep_expired
from agent.store.verify import VerifyProgress, verify
from agent.store.writer import ChunkCallback, SegmentWriter

#: How long `open_writer` waits for a camera's lock (a `status` may hold it for a moment).
WRITER_LOCK_WAIT = 2.0
#: Set to "1" to skip the per-fragment fdatasync (benchmarks compare the cost and the loss on a
#: power cut; see bench/crash_loss.py --no-sync). Never set it on a real site.
NO_SYNC_ENV = "RTCC_EDGE_NO_FRAGMENT_SYNC"


class ClipStore:
    """The clip store under `root`. Safe to open in several processes at once; create one per
    process (a writer's worker opens its own)."""

    def __init__(
        self,
        root: Path,
        *,
        config: StoreConfig | None = None,
        create: bool = True,
    ) -> None:
        self.root = Path(root)
        self.config = config if config is not None else StoreConfig()
        self.layout = Layout(self.root)
        if create:
            self.layout.make_dirs()
        elif not self.layout.index.is_file():
            raise StoreNotFound(f"no clip store at {self.root}")
        self.index = Index(self.layout.index)

    @classmethod
    def from_config(cls, config: AgentConfig, *, create: bool = True) -> ClipStore:
        return cls(config.store_path, config=config.store, create=create)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> ClipStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- recording ------------------------------------------------------------------------

    def open_writer(
        self,
        camera: str,
        template: Any,
        *,
        on_chunk: ChunkCallback | None = None,
        retention: bool = True,
    ) -> SegmentWriter:
        """A writer for `camera` fed from the demuxer stream `template`.

        Takes the camera's lock (WriterBusy if another live writer has it), first settles any
        segment a crashed writer of this camera left open, and — with `retention` — runs a
        retention pass each time a segment closes, which keeps the byte budget within one open
        segment per camera.
        """
        check_camera_id(camera)
        lock = CameraLock(self.layout.lock_file(camera))
        lock.acquire(timeout=WRITER_LOCK_WAIT)
        try:
            recover_camera(self.index, self.layout, camera)
            return SegmentWriter(
                index=self.index,
                layout=self.layout,
                camera=camera,
                template=template,
                lock=lock,
                segment_seconds=self.config.segment_seconds,
                fragment_seconds=self.config.fragment_seconds,
                sync_fragments=os.environ.get(NO_SYNC_ENV) != "1",
                on_chunk=on_chunk,
                on_segment_closed=self._after_segment if retention else None,
            )
        except BaseException:
            lock.release()
            raise

    def _after_segment(self, _row: SegmentRow) -> None:
        self.enforce_retention()

    def reconcile(self) -> ReconcileReport:
        """Start-up recovery (see `agent.store.reconcile`); run before starting the writers."""
        report = reconcile(self.index, self.layout)
        sweep_expired(self.index, self.layout)
        return report

    # -- retention and holds --------------------------------------------------------------

    def enforce_retention(self, *, now: datetime | None = None) -> RetentionReport:
        return enforce(
            self.index,
            self.layout,
            self.config,
            now=None if now is None else to_us(now),
        )

    def can_make_room(self) -> bool:
        """Whether retention could still free space (see `agent.store.retention`)."""
        return can_make_room(self.index, self.config)

    def place_hold(
        self, hold_id: str, camera: str, start: datetime, end: datetime, *, reason: str = ""
    ) -> None:
        """Keep [start, end) of `camera` from retention until released (idempotent per id)."""
        _holds.place_hold(self.index, hold_id, camera, start, end, reason=reason)

    def release_hold(self, hold_id: str) -> bool:
        """Release a hold; True if it existed."""
        return _holds.release_hold(self.index, hold_id)

    def holds(self, camera: str | None = None) -> list[Hold]:
        return [_holds.to_hold(row) for row in self.index.holds(camera)]

    # -- reading --------------------------------------------------------------------------

    def extract(
        self,
        camera: str,
        start: datetime,
        end: datetime,
        dest: Path,
        *,
        progress: Progress | None = None,
    ) -> ClipResult:
        """Cut [start, end] of `camera` into the MP4 `dest` (see `agent.store.extract`).

        Raises NoFootage (and writes nothing) when no footage overlaps the window,
        InvalidWindow for a naive, empty or reversed window.
        """
        check_camera_id(camera)
        start_us, end_us = _holds.window_us(start, end)
        hold_id = f"extract:{secrets.token_hex(8)}"
        _holds.place_hold(
            self.index, hold_id, camera, start, end, reason="extraction running", quiet=True
        )
        try:
            return extract(
                self.index, self.layout, camera, start_us, end_us, Path(dest), progress=progress
            )
        finally:
            _holds.release_hold(self.index, hold_id, quiet=True)

    def verify(
        self, camera: str | None = None, *, progress: VerifyProgress | None = None
    ) -> VerifyReport:
        if camera is not None:
            check_camera_id(camera)
        return verify(self.index, self.layout, camera, progress=progress)

    def adoptable(self, camera: str | None = None) -> list[Adoptable]:
        """Intact segments in quarantine that the index had lost (see `agent.store.readopt`)."""
        if camera is not None:
            check_camera_id(camera)
        return find_adoptable(self.index, camera)

    def readopt(self, camera: str | None = None) -> list[tuple[Adoptable, str | None]]:
        """Put every adoptable segment back; each with None, or why it was left where it is."""
        return [(item, readopt(self.index, self.layout, item)) for item in self.adoptable(camera)]

    def cameras(self) -> list[str]:
        return sorted(self.index.cameras())

    def segments(
        self,
        camera: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        states: list[SegmentState] | None = None,
    ) -> list[SegmentRow]:
        """Index rows overlapping [start, end) (live segments unless `states` says otherwise)."""
        return self.index.segments(
            camera=camera,
            states=states if states is not None else list(LIVE_STATES),
            start_us=None if start is None else to_us(start),
            end_us=None if end is None else to_us(end),
        )

    def coverage(self, camera: str, start: datetime, end: datetime) -> Coverage:
        """Continuous spans of recorded footage and the gaps between them, from the index.

        Only the index is read, so a camera that stalled without dropping its session (one long
        frame inside a segment) shows here as covered; an export of the window reports it.
        """
        check_camera_id(camera)
        start_us, end_us = _holds.window_us(start, end)
        rows = self.index.segments(
            camera=camera, states=list(LIVE_STATES), start_us=start_us, end_us=end_us
        )
        spans: list[list[int]] = []  # [start, end, segments, bytes]
        previous: SegmentRow | None = None
        for row in rows:
            if previous is not None and spans and _continues(previous, row):
                span = spans[-1]
                span[1] = max(span[1], row.end_us)
                span[2] += 1
                span[3] += row.bytes
            else:
                spans.append([row.start_us, row.end_us, 1, row.bytes])
            previous = row
        gaps: list[Gap] = []
        cursor = start_us
        for span_start, span_end, _, _ in spans:
            if span_start > cursor:
                gaps.append(Gap(from_us(cursor), from_us(min(span_start, end_us))))
            cursor = max(cursor, span_end)
        if cursor < end_us:
            gaps.append(Gap(from_us(cursor), from_us(end_us)))
        return Coverage(
            camera,
            from_us(start_us),
            from_us(end_us),
            tuple(Span(from_us(a), from_us(b), n, size) for a, b, n, size in spans),
            tuple(gaps),
        )

    def status(self) -> list[CameraStatus]:
        """Per camera, what the index knows (and whether a writer holds the camera now)."""
        holds: dict[str, int] = {}
        for hold in self.index.holds():
            holds[hold.camera] = holds.get(hold.camera, 0) + 1
        result: list[CameraStatus] = []
        for row in self.index.query(_STATUS):
            camera = str(row["camera"])
            lock = CameraLock(self.layout.lock_file(camera))
            alive = not lock.try_acquire()
            lock.release()
            result.append(
                CameraStatus(
                    camera=camera,
                    segments=int(row["segments"]),
                    bytes=int(row["bytes"]),
                    seconds=int(row["micros"]) / 1_000_000,
                    oldest=from_us(row["oldest"]) if row["oldest"] is not None else None,
                    newest=from_us(row["newest"]) if row["newest"] is not None else None,
                    recording=bool(row["recording"]),
                    writer_alive=alive,
                    expired=int(row["expired"]),
                    quarantined=int(row["quarantined"]),
                    holds=holds.get(camera, 0),
                )
            )
        return result


_LIVE = "state IN ('recording', 'complete', 'recovered')"
_STATUS = f"""
SELECT camera,
       SUM({_LIVE}) AS segments,
       COALESCE(SUM(CASE WHEN {_LIVE} THEN bytes END), 0) AS bytes,
       COALESCE(SUM(CASE WHEN {_LIVE} THEN end_us - start_us END), 0) AS micros,
       MIN(CASE WHEN {_LIVE} THEN start_us END) AS oldest,
       MAX(CASE WHEN {_LIVE} THEN end_us END) AS newest,
       SUM(state = 'recording') AS recording,
       SUM(state = 'expired') AS expired,
       SUM(state = 'quarantined') AS quarantined
FROM segments GROUP BY camera ORDER BY camera
"""  # noqa: S608 (constants only)


def _continues(previous: SegmentRow, row: SegmentRow) -> bool:
    """No footage is missing between two consecutive segments."""
    if row.session == previous.session:
        # Same muxer session: media time is continuous unless frames were lost.
        frame = (previous.end_pts - previous.first_pts) // max(1, previous.frames)
        return row.first_pts - previous.end_pts <= frame * 3 // 2
    frame_us = (previous.end_us - previous.start_us) // max(1, previous.frames)
    return row.start_us - previous.end_us <= frame_us * 3 // 2
