"""Extraction: a window of one camera's footage becomes one MP4, by stream copy.

Choices, so that a clip is both playable everywhere and faithful:

* **Start at the keyframe at or before `start`.** (The alternative, zero-duration pre-roll so that
  playback begins exactly at `start`, relies on edit lists that many players and tools ignore or
  mishandle.) A clip therefore begins at most one keyframe interval before `start`, and every
  frame in it decodes in any player. The actual first frame's time is reported.
* **End at the first frame at or after `end`** (inclusive), so the window is fully covered.
* **Wall-clock timeline.** Within one recording session the camera's own timestamps are kept;
  a later session (after a reconnect or an agent restart) is placed at its wall-clock offset
  from the clip's first frame, so a hole stays a hole in the clip's timeline, and every hole
  longer than 1.5 frame intervals is reported as a gap with its agent-clock times. A camera
  that stalls inside a session (a frame lasting over a second and three usual intervals) is
  reported the same way.
* The clip's `creation_time` is its first frame's wall-clock time; `+faststart` puts the index
  first. The file is written under a temporary name next to `dest` and renamed only once it is
  complete and hashed; nothing at all is written when there is no footage (`NoFootage`).
* Each complete source segment is re-hashed before it is used; one that no longer matches the
  hash recorded when it was written is left out, and its span is reported as a gap and a note.
  A segment still being written is read up to its last indexed fragment, and the hash of that
  prefix is what the clip's segment list carries.
* Retention cannot delete a source segment meanwhile: extraction holds the window while it runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from agent.fsutil import fsync_dir
from agent.log import get_logger
from agent.store.errors import NoFootage
from agent.store.files import hash_file
from agent.store.index import LIVE_STATES, Index, SegmentRow, SegmentState
from agent.store.layout import Layout, segment_name
from agent.store.model import ClipResult, Gap, SegmentRef, from_us

log = get_logger(__name__)

Progress = Callable[[float], None]
#: A frame lasting longer than this (and 3 usual frame intervals) is a stall: a gap after it.
STALL_US = 1_000_000
_IO_BUFFER = 256 * 1024


class _Bounded(io.RawIOBase):
    """A read-only view of the first `limit` bytes of a file (an open segment's complete part)."""

    def __init__(self, path: Path, limit: int) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._limit = min(limit, os.fstat(self._fd).st_size)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        remaining = max(0, self._limit - self._pos)
        count = remaining if size is None or size < 0 else min(size, remaining)
        data = os.pread(self._fd, count, self._pos) if count else b""
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._limit}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class _Unusable(Exception):
    """A source segment that cannot go into a clip (reason in the message)."""


@dataclass
class _Source:
    row: SegmentRow
    ref: SegmentRef
    container: Any  # av.container.InputContainer
    stream: Any  # its video stream
    reader: _Bounded

    def close(self) -> None:
        try:
            self.container.close()
        finally:
            self.reader.close()


@dataclass
class _Pending:
    packet: av.Packet[Any]
    source: _Source
    wall_us: int


def extract(
    index: Index,
    layout: Layout,
    camera: str,
    start_us: int,
    end_us: int,
    dest: Path,
    *,
    progress: Progress | None = None,
) -> ClipResult:
    """Cut [start_us, end_us] of `camera` into `dest` (see the module docstring)."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.partial")
    job = _Extraction(index, layout, camera, start_us, end_us, tmp, progress)
    try:
        job.run()
        sha256, size = job.finish()
        tmp.replace(dest)
    except BaseException:
        job.abort()
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        fsync_dir(dest.parent)  # the clip's name survives a power cut too
    if progress is not None:
        progress(1.0)
    result = job.result(dest, sha256, size)
    log.info(
        "clip_extracted",
        camera=camera,
        file=str(dest),
        bytes=size,
        frames=result.frames,
        gaps=len(result.gaps),
        segments=len(result.segments),
    )
    return result


class _Extraction:
    def __init__(
        self,
        index: Index,
        layout: Layout,
        camera: str,
        start_us: int,
        end_us: int,
        tmp: Path,
        progress: Progress | None,
    ) -> None:
        self.index = index
        self.layout = layout
        self.camera = camera
        self.start_us = start_us
        self.end_us = end_us
        self.tmp = tmp
        self.progress = progress
        self.output: Any = None
        self.ostream: Any = None
        self.template: Any = None
        self.out_tb = Fraction(1, 90_000)
        self.started = False
        self.done = False
        self.gop: list[_Pending] = []
        self.sources: list[_Source] = []
        self.run_session: str | None = None
        self.offset = 0  # output ticks added to the current run's (rescaled) timestamps
        self.last_dts: int | None = None
        self.next_dts = 0  # decode time the next frame of the same session should have
        self.stop_pts: int | None = None  # set by the first frame at or after `end`
        self.first_out = 0
        self.end_out = 0  # presentation end of the last frame, output ticks
        self.covered_until = 0  # wall-clock end of the last frame written
        self.first_wall = 0
        self.last_wall = 0
        self.frames = 0
        self.frame_us = 0  # the last frame interval seen
        self.gaps: list[tuple[int, int]] = []
        self.used: dict[int, SegmentRef] = {}
        self.notes: list[str] = []
        self.reported = -1.0

    # -- driving --------------------------------------------------------------------------

    def run(self) -> None:
        seen: set[int] = set()
        try:
            while not self.done:
                # Re-query until nothing new: a segment may open while we copy the last one.
                rows = [
                    r
                    for r in self.index.segments(
                        camera=self.camera,
                        states=list(LIVE_STATES),
                        start_us=self.start_us,
                        end_us=self.end_us + 1,
                    )
                    if r.id not in seen
                ]
                if not rows:
                    break
                for row in rows:
                    seen.add(row.id)
                    if self._segment(row):
                        break
            if not self.done and (self.started or self.gop):
                # The first frame at or after `end` may open the next segment, if that segment
                # continues the footage.
                after = self.index.first_segment_after(self.camera, self.end_us)
                if after is not None and after.id not in seen and self._continues(after):
                    self._segment(after)
            if not self.started and self.gop:
                # Footage ends before `start`: the clip is the GOP showing at `start`.
                self._start()
            if self.output is not None:
                self._gap(self.covered_until, self.end_us, self.frame_us)
        finally:
            for source in self.sources:
                source.close()
            self.sources = []

    def _segment(self, listed: SegmentRow) -> bool:
        """Copy what the window needs from one segment; True once the window is complete."""
        if self.stop_pts is not None:
            self.done = True  # the frame at or after `end` is in; what follows is not needed
            return True
        row = self.index.segment(listed.id) or listed  # an open segment has grown since
        if row.state not in LIVE_STATES:
            return False  # expired or quarantined since the query
        source = self._open(row)
        if source is None:
            return False
        self.sources.append(source)
        if self.template is not None and not _same_format(self.template, source.stream):
            self.notes.append(
                f"the camera's video format changed at {from_us(row.start_us).isoformat()}; "
                "the clip stops there"
            )
            self.done = True
            return True
        self._demux(source)
        # Inputs are kept open only while packets of theirs wait in the GOP before `start`.
        needed = {id(p.source) for p in self.gop}
        for other in [s for s in self.sources if id(s) not in needed]:
            other.close()
            self.sources.remove(other)
        return self.done

    def _continues(self, row: SegmentRow) -> bool:
        """`row` picks up where the footage copied so far (or waiting in the GOP) ends."""
        if self.run_session == row.session or any(
            p.source.row.session == row.session for p in self.gop
        ):
            return True
        end = self.covered_until or max((p.wall_us for p in self.gop), default=0) + self.frame_us
        return row.start_us - end <= self.frame_us * 3 // 2

    def _open(self, row: SegmentRow) -> _Source | None:
        """Check a segment's hash and open it; None (with a note) if it cannot be used."""
        try:
            path = self.layout.segment(row.path)
            complete = row.state is not SegmentState.RECORDING
            if complete:
                sha256, size = hash_file(path)
                if sha256 != row.sha256 or size != row.bytes:
                    raise _Unusable("altered since it was recorded (hash differs); left out")
            else:
                sha256, size = hash_file(path, limit=row.bytes)
                if size < row.bytes:
                    raise _Unusable("shorter than indexed; left out")
            reader = _Bounded(path, row.bytes)
            try:
                container = av.open(reader, "r", format="mp4", buffer_size=_IO_BUFFER)
                stream = container.streams.video[0]
            except (av.FFmpegError, IndexError) as exc:
                reader.close()
                raise _Unusable(f"cannot be read ({exc}); left out") from exc
        except (OSError, ValueError, _Unusable) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.notes.append(f"segment {row.path}: {reason}")
            log.error("clip_source_unusable", segment=row.path, reason=reason)
            return None
        ref = SegmentRef(
            segment_name(row.path),
            sha256,
            size,
            from_us(row.start_us),
            from_us(row.end_us),
            complete,
        )
        return _Source(row, ref, container, stream, reader)

    def _demux(self, source: _Source) -> None:
        row = source.row
        for packet in source.container.demux(source.stream):
            if not packet.size or packet.pts is None:
                continue
            wall = row.wall_us(packet.pts)
            if not self.started:
                if wall <= self.start_us:
                    if packet.is_keyframe:
                        self.gop = [_Pending(packet, source, wall)]
                    elif self.gop:
                        self.gop.append(_Pending(packet, source, wall))
                    continue
                if not self.gop and not packet.is_keyframe:
                    continue  # no footage at `start`: begin at the next keyframe
                self._start()
            if self.stop_pts is not None:
                # Past the first frame at or after `end`, only frames shown before it (B-frames
                # that follow it in decode order) still belong in the clip.
                if packet.pts >= self.stop_pts:
                    self.done = True
                    return
            elif wall >= self.end_us:
                self.stop_pts = packet.pts
            self._write(packet, source, wall)

    def _start(self) -> None:
        self.started = True
        gop, self.gop = self.gop, []
        for pending in gop:
            self._write(pending.packet, pending.source, pending.wall_us)

    # -- output ---------------------------------------------------------------------------

    def _open_output(self, source: _Source, wall: int) -> None:
        self.template = source.stream
        self.output = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
        self.output.metadata["creation_time"] = from_us(wall).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.ostream = self.output.add_stream_from_template(source.stream)
        self.out_tb = Fraction(source.stream.time_base)
        self.first_wall = wall
        self._gap(self.start_us, wall, 0)

    def _gap(self, start: int, end: int, frame_us: int) -> None:
        """Record [start, end) as a gap if it is longer than 1.5 frame intervals."""
        if end - start > frame_us * 3 // 2:
            self.gaps.append((start, end))

    def _write(self, packet: av.Packet[Any], source: _Source, wall: int) -> None:
        if self.output is None:
            self._open_output(source, wall)
        self.used.setdefault(source.row.id, source.ref)
        tb = Fraction(source.stream.time_base)
        out_tb = self.out_tb
        assert packet.pts is not None
        pts = _ticks(packet.pts, tb, out_tb)
        dts = _ticks(packet.dts if packet.dts is not None else packet.pts, tb, out_tb)
        duration = _ticks(packet.duration or 0, tb, out_tb)
        frame_end = source.row.wall_us(packet.pts + (packet.duration or 0))
        frame_us = frame_end - wall
        session = source.row.session
        if self.run_session is None:
            self.offset = -pts
            self.first_out = 0
        elif session != self.run_session:
            # A new recording session: place it at its wall-clock distance from the first frame.
            self.offset = round(Fraction(wall - self.first_wall, 1_000_000) / out_tb) - pts
            self._gap(self.covered_until, wall, max(frame_us, self.frame_us))
        else:
            # Frames lost inside a session show as a jump in decode time.
            hole = dts + self.offset - self.next_dts
            if hole * out_tb * 1_000_000 > max(frame_us, self.frame_us) * 3 // 2:
                self.gaps.append((self.covered_until, wall))
        self.run_session = session
        if self.last_dts is not None and dts + self.offset <= self.last_dts:
            self.offset = self.last_dts + 1 - dts  # never let decode times go backwards
        packet.stream = self.ostream
        packet.time_base = out_tb
        packet.pts, packet.dts, packet.duration = pts + self.offset, dts + self.offset, duration
        self.output.mux(packet)
        self.frames += 1
        self.last_dts = dts + self.offset
        self.next_dts = self.last_dts + duration
        self.end_out = max(self.end_out, pts + self.offset + duration)
        nominal = self.frame_us or frame_us
        if nominal and frame_us > max(STALL_US, 3 * nominal):
            # The camera stalled inside a session: this frame stays on screen until the next
            # one, but only its first frame interval is footage; the rest is a gap.
            self.gaps.append((wall + nominal, frame_end))
            frame_end = wall + nominal
        elif frame_us:
            self.frame_us = frame_us
        self.covered_until = max(self.covered_until, frame_end)
        self.last_wall = max(self.last_wall, wall)
        if self.progress is not None:
            span = max(1, self.end_us - self.start_us)
            fraction = min(1.0, max(0.0, (wall - self.start_us) / span))
            if fraction - self.reported >= 0.005:
                self.reported = fraction
                self.progress(fraction)

    def finish(self) -> tuple[str, int]:
        if self.output is None:
            raise NoFootage(self.camera, from_us(self.start_us), from_us(self.end_us))
        output, self.output = self.output, None
        output.close()
        fd = os.open(self.tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return hash_file(self.tmp)

    def abort(self) -> None:
        for source in self.sources:
            source.close()
        self.sources = []
        output, self.output = self.output, None
        if output is not None:
            try:
                output.close()
            except av.FFmpegError as exc:
                log.warning("clip_output_close_failed", error=str(exc))

    def result(self, dest: Path, sha256: str, size: int) -> ClipResult:
        video = self.template.codec_context
        return ClipResult(
            path=dest,
            camera=self.camera,
            requested_start=from_us(self.start_us),
            requested_end=from_us(self.end_us),
            sha256=sha256,
            bytes=size,
            codec=video.name,
            width=video.width,
            height=video.height,
            duration=float((self.end_out - self.first_out) * self.out_tb),
            frames=self.frames,
            first_frame=from_us(self.first_wall),
            last_frame=from_us(self.last_wall),
            gaps=tuple(Gap(from_us(a), from_us(b)) for a, b in self.gaps),
            segments=tuple(self.used.values()),
            notes=tuple(self.notes),
        )


def _ticks(value: int, tb: Fraction, out_tb: Fraction) -> int:
    return value if tb == out_tb else round(value * tb / out_tb)


def _same_format(template: Any, stream: Any) -> bool:
    a, b = template.codec_context, stream.codec_context
    return bool(
        a.name == b.name
        and a.width == b.width
        and a.height == b.height
        and bytes(a.extradata or b"") == bytes(b.extradata or b"")
    )
