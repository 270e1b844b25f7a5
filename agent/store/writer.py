"""The segment writer: demuxed packets in, hashed fragmented-MP4 segments and index rows out.

One writer records one camera, in the recorder's worker process. Contract (see the package
docstring for the caller's view):

* `write(packet, received_us)` takes packets exactly as PyAV's demuxer gives them (video stream
  of the template only) with the agent's wall-clock receipt time. Nothing is transcoded.
* One FFmpeg mp4 muxer per *session* (a run of packets with continuous timestamps) writes into an
  in-memory sink: `frag_keyframe+empty_moov+default_base_moof` with fragments of at most
  `fragment_seconds`; `frag_discont` with `avoid_negative_ts=make_non_negative` keeps the
  camera's own timestamps, so presentation times never restart at 0 per file. The sink is not
  seekable and FFmpeg never needs it to be: a fragment is written in one go after the muxer's
  per-packet flush, and every fragment is re-parsed (sizes, sample table) before it is trusted.
* The byte stream is split at box boundaries: the init segment (`ftyp`+`moov`) starts every
  segment file, then whole `moof`+`mdat` fragments are appended with `os.write` (so a `kill -9`
  loses only the fragment being assembled, at most `fragment_seconds`), hashed as they are
  written, and the index row is updated (`recording`, current end time) after each one.
* Durability (a power cut, not just a kill): after each fragment the writer's syncer thread
  `fdatasync`s the segment file (and, once per segment, its directories), off the thread that
  reads the camera; syncs requested while one runs are merged into the next. So a power cut
  loses at most the fragment being assembled plus the one being synced, about two fragments.
  The segment's index row is inserted, and marked complete, in `durable` transactions
  (`synchronous = FULL` for that commit), so a power cut can lose neither the row of a segment
  whose file survived nor the hash that closed it; the per-fragment progress updates stay
  `NORMAL` (start-up recovery re-reads the file anyway).
* A new segment starts at the first fragment that begins with a keyframe once the open one
  holds `segment_seconds` of media (or sooner if the clock drifted too far). Its row links to the
  previous segment's SHA-256, forming a chain per camera.
* Each packet is held back until the next one arrives so that its duration is exact (the mp4
  muxer otherwise guesses the last sample of each fragment).
* Wall clock: each segment stores an anchor (`anchor_pts` ↔ `anchor_us`) so that any
  presentation time maps exactly to agent time. The anchor of a session comes from the earliest
  receipt implied by the first fragment; afterwards the camera's drift (receipt minus mapped
  time, the minimum over recent fragments so that network delay does not count) is tracked, a
  new segment is re-anchored when it exceeds `drift_reanchor`, and the segment is cut early when
  it exceeds `drift_cut`. A timestamp jump or a step backwards ends the session; recording picks
  up again at the next keyframe in a new session.
* Errors: an `OSError` while writing truncates the file back to its last complete fragment,
  closes and indexes the segment as complete (or removes it if it holds no frame), releases the
  camera and raises `StoreWriteError` (`DiskFullError` for ENOSPC). If the index itself cannot be
  written the row stays `recording` and start-up recovery (or the next writer) settles it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NoReturn

import av

from agent.fsutil import fsync_dir
from agent.log import get_logger
from agent.media import fmp4
from agent.store.errors import (
    IndexUnavailable,
    StoreWriteError,
    WriterClosed,
    write_error,
)
from agent.store.index import Index, SegmentRow, SegmentState, now_us
from agent.store.layout import Layout, segment_relpath
from agent.store.lock import CameraLock

log = get_logger(__name__)

#: Re-anchor a new segment when the camera's clock has drifted this far from the agent's.
DRIFT_REANCHOR_US = 40_000
#: Cut the open segment at the next keyframe when drift exceeds this.
DRIFT_CUT_US = 1_000_000
#: A forward timestamp jump this much larger than the wall time elapsed ends the session.
MAX_TIMESTAMP_JUMP_US = 10_000_000
#: How many recent fragments the drift estimate takes its minimum over. Network delay only ever
#: adds to a receipt time, so the minimum ignores delay spikes shorter than the window; a real
#: clock step is seen once it has lasted that long.
DRIFT_WINDOW = 5
_SINK_BUFFER = 256 * 1024


def muxer_options(fragment_us: int, *, in_band_only: bool = False) -> dict[str, str]:
    """FFmpeg mp4 muxer options for our segments (see the module docstring)."""
    flags = "frag_keyframe+empty_moov+default_base_moof+skip_trailer+frag_discont"
    if in_band_only:
        # Parameter sets only in-band: let the muxer take them from the first keyframe.
        flags += "+delay_moov"
    return {
        "movflags": flags,
        "frag_duration": str(fragment_us),
        "avoid_negative_ts": "make_non_negative",
        "use_editlist": "0",
        "flush_packets": "1",
    }


@dataclass(frozen=True)
class MediaChunk:
    """Muxed bytes as they were written to the store, for live fan-out.

    `init` chunks start every session (send one before any fragment of that session);
    `fragment` chunks are one `moof`+`mdat` each. A late viewer starts with the session's init
    and the next fragment whose `keyframe` is true.
    """

    kind: Literal["init", "fragment"]
    data: bytes
    session: str
    keyframe: bool
    wall_us: int  # agent wall-clock time of the chunk's first frame
    duration_us: int  # 0 for init
    segment: str  # relative path of the segment file the bytes went into (init: "")


ChunkCallback = Callable[[MediaChunk], None]
SegmentCallback = Callable[[SegmentRow], None]


class _Sink:
    """Where the muxer writes: an append-only buffer. Declared non-seekable on purpose."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.discard = False

    def write(self, data: bytes) -> int:
        if not self.discard:
            self.buffer += data
        return len(data)

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


@dataclass(slots=True)
class _Held:
    """A packet waiting for the next one, which tells its duration."""

    packet: av.Packet[Any]
    pts: int
    dts: int
    duration: int
    keyframe: bool
    received_us: int
    # The timestamps were made up here (the packet had none): write them into the packet.
    retimed: bool = False


@dataclass
class _Session:
    id: str
    container: Any  # av.container.OutputContainer
    stream: Any  # av.video.stream.VideoStream
    sink: _Sink
    init: bytes | None = None
    track: fmp4.TrackInfo | None = None
    receipts: deque[int] = field(default_factory=deque)
    anchor_pts: int | None = None
    anchor_us: int = 0
    drift: deque[int] = field(default_factory=lambda: deque(maxlen=DRIFT_WINDOW))
    cut_requested: bool = False

    def wall_us(self, pts: int) -> int:
        assert self.track is not None and self.anchor_pts is not None
        return self.anchor_us + (pts - self.anchor_pts) * 1_000_000 // self.track.timescale

    @property
    def drift_us(self) -> int:
        return min(self.drift) if self.drift else 0


@dataclass
class _OpenSegment:
    id: int
    rel: str
    fd: int
    first_pts: int
    end_pts: int
    anchor_pts: int
    anchor_us: int
    hasher: Any = field(default_factory=hashlib.sha256)
    committed: int = 0
    frames: int = 0
    # fsynced once, with the first sync: the file's entry, and the day directory's (new daily)
    directories: tuple[Path, ...] = ()
    # Held by the syncer around each fdatasync; closing the fd takes it, so the syncer never
    # touches a closed (or reused) descriptor.
    sync_lock: threading.Lock = field(default_factory=threading.Lock)
    fd_closed: bool = False
    dir_synced: bool = False


class _Syncer:
    """Makes appended fragments durable without holding up the thread that reads the camera.

    `request(segment)` returns at once; a thread `fdatasync`s the segment's file (and, the
    first time, its directories). Requests made while a sync runs collapse into one more sync,
    so a slow disk costs fewer syncs, never a backlog. `os.fdatasync` releases the GIL.
    """

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.syncs = 0
        self.seconds = 0.0  # wall time spent syncing (for the benchmarks)
        self._wanted: _OpenSegment | None = None
        self._stopping = False
        self._cond = threading.Condition()
        self._failed = False
        self._thread = threading.Thread(target=self._run, name=f"sync-{camera}", daemon=True)
        self._thread.start()

    def request(self, segment: _OpenSegment) -> None:
        with self._cond:
            self._wanted = segment
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._wanted is None and not self._stopping:
                    self._cond.wait()
                segment, self._wanted = self._wanted, None
                if segment is None:
                    return
            self._sync(segment)

    def _sync(self, segment: _OpenSegment) -> None:
        started = _monotonic()
        with segment.sync_lock:
            if segment.fd_closed:
                return  # closed meanwhile: the close fsynced it
            try:
                os.fdatasync(segment.fd)
                if not segment.dir_synced:
                    for directory in segment.directories:
                        fsync_dir(directory)
                    segment.dir_synced = True
            except OSError as exc:
                # The write itself succeeded and was hashed; only its durability is in doubt.
                # The next write or the close reports a failing disk.
                if not self._failed:
                    log.error(
                        "fragment_sync_failed",
                        camera=self.camera,
                        segment=segment.rel,
                        error=str(exc),
                    )
                self._failed = True
                return
        self._failed = False
        self.syncs += 1
        self.seconds += _monotonic() - started


def _monotonic() -> float:
    return time.monotonic()


class SegmentWriter:
    """Records one camera. Use as a context manager or call `close()`; not thread-safe."""

    def __init__(
        self,
        *,
        index: Index,
        layout: Layout,
        camera: str,
        template: Any,
        lock: CameraLock,
        segment_seconds: float,
        fragment_seconds: float,
        on_chunk: ChunkCallback | None = None,
        on_segment_closed: SegmentCallback | None = None,
        drift_reanchor_us: int = DRIFT_REANCHOR_US,
        drift_cut_us: int = DRIFT_CUT_US,
        sync_fragments: bool = True,
    ) -> None:
        if template.type != "video":
            raise ValueError("the writer records a video stream")
        if not lock.held:
            raise ValueError("the camera lock must be held by the caller")
        self.camera = camera
        self._index = index
        self._layout = layout
        self._template = template
        self._lock = lock
        self._segment_seconds = Fraction(segment_seconds)
        self._fragment_us = round(fragment_seconds * 1_000_000)
        self._on_chunk = on_chunk
        self._on_segment_closed = on_segment_closed
        self._drift_reanchor_us = drift_reanchor_us
        self._drift_cut_us = drift_cut_us
        self._held: _Held | None = None
        self._session: _Session | None = None
        self._segment: _OpenSegment | None = None
        self._closed = False
        self._last_duration = 0
        time_base = Fraction(template.time_base or Fraction(1, 90000))
        self._time_base = time_base
        self._tb_num, self._tb_den = time_base.numerator, time_base.denominator
        self._one_second = max(1, round(1 / time_base))  # ticks per second
        # dts of the first packet of the fragment the muxer is assembling (None: none yet).
        self._fragment_start_dts: int | None = None
        self._untimed_origin_us: int | None = None
        self.dropped = 0  # packets dropped while waiting for a keyframe
        self.sessions = 0
        self._sync_fragments = sync_fragments
        self._syncer: _Syncer | None = None

    # -- public ---------------------------------------------------------------------------

    @property
    def init_segment(self) -> bytes | None:
        """The current session's init segment, for a live viewer joining late."""
        return self._session.init if self._session is not None else None

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, packet: av.Packet[Any], received_us: int) -> None:
        """Record one demuxed packet received at `received_us` (µs since the epoch)."""
        if self._closed:
            raise WriterClosed(f"the writer of camera {self.camera!r} is closed")
        if packet.size == 0:
            return
        if packet.stream_index != self._template.index:
            raise ValueError(
                f"packet of stream {packet.stream_index}; this writer records stream "
                f"{self._template.index}"
            )
        # This runs 15-30 times a second per camera: integer arithmetic only, and the time base
        # is the stream's (the demuxer gives every packet its stream's), because reading
        # `packet.time_base` builds a `Fraction` each time, which cost more than the muxing.
        pts, dts = packet.pts, packet.dts
        held = self._held
        retimed = pts is None or dts is None
        if dts is None and pts is None:
            # No timestamps at all (a raw stream): the receipt times are the timeline.
            if self._untimed_origin_us is None:
                self._untimed_origin_us = received_us
            since = received_us - self._untimed_origin_us
            pts = dts = since * self._tb_den // (self._tb_num * 1_000_000)
            if held is not None and dts <= held.dts:
                pts = dts = held.dts + 1
        elif dts is None:
            dts = pts
        elif pts is None:
            pts = dts
        assert pts is not None and dts is not None
        if held is not None and self._discontinuous(held, dts, received_us):
            self._flush_held()
            self._end_session("timestamp discontinuity")
            held = None
        if held is not None:
            held.duration = dts - held.dts
            stalled = self._last_duration and held.duration > max(
                3 * self._last_duration, self._one_second
            )
            if stalled:  # kept as a long frame; extraction reports the rest as a gap
                log.warning(
                    "stream_stalled",
                    camera=self.camera,
                    seconds=held.duration * self._tb_num / self._tb_den,
                )
            else:
                self._last_duration = held.duration
            self._held = None
            self._mux(held)
        duration = packet.duration or 0
        self._held = _Held(packet, pts, dts, duration, packet.is_keyframe, received_us, retimed)

    @property
    def flush_due_in_us(self) -> int | None:
        """Media time (µs) from the newest packet written until the muxer must close the
        fragment it is building: how long a caller may leave packets unread without delaying a
        fragment (and so widening what a crash would lose). None when nothing is pending."""
        if self._fragment_start_dts is None or self._held is None:
            return None
        elapsed = (self._held.dts - self._fragment_start_dts) * self._tb_num * 1_000_000
        return self._fragment_us - elapsed // self._tb_den

    def close(self) -> None:
        """Write everything buffered, close the open segment and release the camera."""
        if self._closed:
            return
        try:
            self._flush_held()
            self._end_session("writer closed")
        finally:
            self._closed = True
            self._stop_syncer()
            self._lock.release()

    @property
    def syncs(self) -> tuple[int, float]:
        """Fragment syncs done so far and the wall time they took (seconds)."""
        syncer = self._syncer
        return (syncer.syncs, syncer.seconds) if syncer is not None else (0, 0.0)

    def _stop_syncer(self) -> None:
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.stop()

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- packets --------------------------------------------------------------------------

    def _discontinuous(self, held: _Held, dts: int, received_us: int) -> bool:
        if dts <= held.dts:
            log.warning("timestamps_backwards", camera=self.camera, dts=dts, previous=held.dts)
            return True
        media_us = (dts - held.dts) * self._tb_num * 1_000_000 // self._tb_den
        if media_us - (received_us - held.received_us) > MAX_TIMESTAMP_JUMP_US:
            log.warning("timestamps_jump", camera=self.camera, jump_us=int(media_us))
            return True
        return False

    def _flush_held(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if held.duration <= 0:
            held.duration = self._last_duration or self._nominal_duration()
        self._mux(held)

    def _nominal_duration(self) -> int:
        rate = self._template.average_rate or self._template.guessed_rate or 15
        return max(1, round(1 / (Fraction(rate) * self._time_base)))

    def _mux(self, held: _Held) -> None:
        session = self._session
        if session is None:
            if not held.keyframe:
                self.dropped += 1
                return
            session = self._session = self._start_session()
            self._fragment_start_dts = held.dts
        packet = held.packet
        packet.stream = session.stream
        if held.retimed:  # otherwise the demuxer's own time base and timestamps stand
            packet.time_base = self._time_base
            packet.pts, packet.dts = held.pts, held.dts
        packet.duration = held.duration
        session.receipts.append(held.received_us)
        try:
            session.container.mux(packet)
        except av.FFmpegError as exc:
            log.error("mux_failed", camera=self.camera, error=str(exc))
            session.receipts.pop()
            self._end_session("muxer error")
            return
        if self._drain(session):
            # The muxer closes a fragment when the packet that starts the next one arrives.
            self._fragment_start_dts = held.dts

    # -- sessions -------------------------------------------------------------------------

    def _start_session(self) -> _Session:
        sink = _Sink()
        options = muxer_options(
            self._fragment_us, in_band_only=not self._template.codec_context.extradata
        )
        container = av.open(sink, "w", format="mp4", options=options, buffer_size=_SINK_BUFFER)
        stream = container.add_stream_from_template(self._template)
        self.sessions += 1
        session_id = f"{now_us():x}-{os.getpid():x}-{self.sessions}"
        log.info("session_started", camera=self.camera, session=session_id)
        return _Session(session_id, container, stream, sink)

    def _end_session(self, reason: str) -> None:
        session, self._session = self._session, None
        self._fragment_start_dts = None
        if session is None:
            return
        try:
            session.container.close()
        except av.FFmpegError as exc:
            log.error("mux_close_failed", camera=self.camera, error=str(exc))
        else:
            self._drain(session)
        finally:
            session.sink.discard = True
        if self._segment is not None:
            self._close_segment()
        log.info("session_ended", camera=self.camera, session=session.id, reason=reason)

    def _drain(self, session: _Session) -> int:
        """Store what the muxer has written; how many fragments that was."""
        buffer = session.sink.buffer
        if not buffer:
            return 0  # the muxer writes only at fragment boundaries: most packets leave nothing
        try:
            split = fmp4.split_stream(buffer, have_init=session.init is not None)
            if session.init is None and split.init_end:
                session.init = bytes(buffer[: split.init_end])
                moov = next(b for b in fmp4.iter_boxes(session.init) if b.type == "moov")
                session.track = fmp4.parse_moov(session.init, moov)
            fragments = [
                (fmp4.parse_fragment(buffer, moof, mdat, session.track), moof.offset, mdat.end)
                for moof, mdat in split.fragments
                if session.track is not None
            ]
        except fmp4.BoxError as exc:
            self._fail(self._segment, StoreWriteError(f"muxer output not understood: {exc}"))
        view = memoryview(buffer)
        try:
            for fragment, start, end in fragments:
                self._fragment(session, fragment, view[start:end].tobytes())  # one copy
        finally:
            view.release()  # the buffer cannot shrink while a view of it exists
        if split.consumed:
            del buffer[: split.consumed]
        return len(fragments)

    def _fragment(self, session: _Session, fragment: fmp4.Fragment, data: bytes) -> None:
        assert session.track is not None and session.init is not None
        samples = fragment.samples
        if len(session.receipts) < len(samples):
            self._fail(
                self._segment,
                StoreWriteError(
                    f"camera {self.camera}: the muxer emitted {len(samples)} samples for "
                    f"{len(session.receipts)} packets"
                ),
            )
        receipts = [session.receipts.popleft() for _ in samples]
        ts = session.track.timescale
        if session.anchor_pts is None:
            first = samples[0].pts
            session.anchor_pts = first
            session.anchor_us = min(
                r - (s.pts - first) * 1_000_000 // ts
                for s, r in zip(samples, receipts, strict=True)
            )
            if self._on_chunk is not None:
                self._emit(
                    MediaChunk("init", session.init, session.id, True, session.anchor_us, 0, "")
                )
        session.drift.append(
            min(r - session.wall_us(s.pts) for s, r in zip(samples, receipts, strict=True))
        )
        segment = self._segment
        if segment is not None and fragment.keyframe:
            held_for = Fraction(fragment.start_pts - segment.first_pts, ts)
            if held_for >= self._segment_seconds or session.cut_requested:
                self._close_segment()
                segment = None
        if segment is None:
            if not fragment.keyframe:
                self._fail(
                    None, StoreWriteError(f"camera {self.camera}: fragment without a keyframe")
                )
            segment = self._open_segment(session, fragment)
        self._append(session, segment, fragment, data)
        if abs(session.drift_us) > self._drift_cut_us and not session.cut_requested:
            log.warning("clock_drift", camera=self.camera, drift_us=session.drift_us)
            session.cut_requested = True

    def _emit(self, chunk: MediaChunk) -> None:
        assert self._on_chunk is not None
        try:
            self._on_chunk(chunk)
        except Exception as exc:  # noqa: BLE001 - a live viewer's failure must not stop recording
            log.error("chunk_callback_failed", camera=self.camera, error=repr(exc))

    # -- segments -------------------------------------------------------------------------

    def _open_segment(self, session: _Session, fragment: fmp4.Fragment) -> _OpenSegment:
        assert session.track is not None and session.init is not None
        if session.anchor_pts != fragment.samples[0].pts:
            # Continue the session's map, re-anchored when the camera's clock has wandered.
            drift = session.drift_us
            anchor_us = session.wall_us(fragment.samples[0].pts)
            if abs(drift) > self._drift_reanchor_us:
                anchor_us += drift
                log.info("clock_reanchored", camera=self.camera, drift_us=drift)
                session.drift.clear()
                session.cut_requested = False
            session.anchor_pts, session.anchor_us = fragment.samples[0].pts, anchor_us
        start_us = session.wall_us(fragment.start_pts)
        video = self._template.codec_context
        rel = segment_relpath(self.camera, start_us)
        try:
            attempt = 0
            while self._index.has_path(rel) or os.path.lexists(self._layout.segment(rel)):
                attempt += 1
                rel = segment_relpath(self.camera, start_us, attempt=attempt)
            with self._index.transaction(durable=True) as db:
                segment_id = self._index.insert_segment(
                    db,
                    camera=self.camera,
                    path=rel,
                    session=session.id,
                    state=SegmentState.RECORDING,
                    start_us=start_us,
                    end_us=start_us,
                    timescale=session.track.timescale,
                    first_pts=fragment.start_pts,
                    end_pts=fragment.start_pts,
                    anchor_pts=session.anchor_pts,
                    anchor_us=session.anchor_us,
                    drift_us=session.drift_us,
                    codec=session.track.codec_name,
                    width=video.width or session.track.width,
                    height=video.height or session.track.height,
                    init_bytes=len(session.init),
                    prev_sha256=self._index.chain_head(db, self.camera),
                    created_us=now_us(),
                )
        except IndexUnavailable as exc:
            self._fail(None, write_error(exc, f"indexing {rel}", segment=rel))
        path = self._layout.segment(rel)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                path,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o640,
            )
        except OSError as exc:
            self._forget_empty(segment_id, path)
            self._fail(None, write_error(exc, f"creating {rel}", segment=rel))
        anchor_pts = session.anchor_pts
        assert anchor_pts is not None
        segment = _OpenSegment(
            segment_id,
            rel,
            fd,
            fragment.start_pts,
            fragment.start_pts,
            anchor_pts,
            session.anchor_us,
            directories=(path.parent, path.parent.parent),
        )
        self._segment = segment
        self._write(segment, session.init)
        log.info("segment_opened", camera=self.camera, segment=rel, start_us=start_us)
        return segment

    def _append(
        self, session: _Session, segment: _OpenSegment, fragment: fmp4.Fragment, data: bytes
    ) -> None:
        self._write(segment, data)
        if self._sync_fragments:
            if self._syncer is None:
                self._syncer = _Syncer(self.camera)
            self._syncer.request(segment)
        segment.frames += len(fragment.samples)
        segment.end_pts = max(segment.end_pts, fragment.end_pts)
        end_us = session.wall_us(segment.end_pts)
        try:
            self._index.progress_segment(
                segment.id,
                bytes=segment.committed,
                frames=segment.frames,
                end_pts=segment.end_pts,
                end_us=end_us,
                drift_us=session.drift_us,
            )
        except IndexUnavailable as exc:
            self._abandon(segment)
            self._fail(None, write_error(exc, f"indexing {segment.rel}", segment=segment.rel))
        if self._on_chunk is not None:
            wall = session.wall_us(fragment.start_pts)
            self._emit(
                MediaChunk(
                    "fragment",
                    data,
                    session.id,
                    fragment.keyframe,
                    wall,
                    session.wall_us(fragment.end_pts) - wall,
                    segment.rel,
                )
            )

    def _write(self, segment: _OpenSegment, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(segment.fd, view)
                view = view[written:]
        except OSError as exc:
            self._fail(segment, write_error(exc, f"writing {segment.rel}", segment=segment.rel))
        segment.hasher.update(data)
        segment.committed += len(data)

    def _close_segment(self) -> None:
        segment, self._segment = self._segment, None
        assert segment is not None
        try:
            os.fsync(segment.fd)
        except OSError as exc:
            # The bytes were hashed as written; only their durability is in doubt.
            log.error(
                "segment_fsync_failed", camera=self.camera, segment=segment.rel, error=str(exc)
            )
        self._close_fd(segment)
        row = self._finish(segment)
        if row is not None and self._on_segment_closed is not None:
            try:
                self._on_segment_closed(row)
            except Exception as exc:  # noqa: BLE001 - retention trouble must not stop recording
                log.error("segment_closed_callback_failed", camera=self.camera, error=repr(exc))

    def _finish(self, segment: _OpenSegment) -> SegmentRow | None:
        """Mark a closed segment complete with its hash; None if the index refused."""
        try:
            with self._index.transaction(durable=True) as db:
                self._index.update_segment(
                    db,
                    segment.id,
                    state=SegmentState.COMPLETE,
                    sha256=segment.hasher.hexdigest(),
                    bytes=segment.committed,
                    frames=segment.frames,
                    closed_us=now_us(),
                )
        except IndexUnavailable as exc:
            log.error(
                "segment_close_not_indexed", camera=self.camera, segment=segment.rel, error=str(exc)
            )
            return None
        log.info(
            "segment_closed",
            camera=self.camera,
            segment=segment.rel,
            bytes=segment.committed,
            frames=segment.frames,
        )
        try:
            return self._index.segment(segment.id)
        except IndexUnavailable:
            return None

    # -- failure --------------------------------------------------------------------------

    def _fail(self, segment: _OpenSegment | None, error: StoreWriteError) -> NoReturn:
        """Settle the open segment, tear everything down and raise `error`."""
        if segment is not None and segment is self._segment:
            self._segment = None
            truncated = True
            try:
                os.ftruncate(segment.fd, segment.committed)
            except OSError as exc:
                truncated = False
                log.error("segment_truncate_failed", segment=segment.rel, error=str(exc))
            self._close_fd(segment)
            if truncated and segment.frames:
                self._finish(segment)
            elif truncated:
                self._forget_empty(segment.id, self._layout.segment(segment.rel))
            # Otherwise the row stays `recording`; recovery cuts it at its last fragment.
        elif self._segment is not None:
            self._abandon(self._segment)
        session, self._session = self._session, None
        if session is not None:
            session.sink.discard = True
            with contextlib.suppress(av.FFmpegError):
                session.container.close()
        self._held = None
        self._closed = True
        self._stop_syncer()
        self._lock.release()
        log.error("store_write_failed", camera=self.camera, error=str(error), errno=error.errno)
        raise error

    def _abandon(self, segment: _OpenSegment) -> None:
        """Close a segment's file without settling its row (recovery will)."""
        if segment is self._segment:
            self._segment = None
        with contextlib.suppress(OSError):
            self._close_fd(segment)

    @staticmethod
    def _close_fd(segment: _OpenSegment) -> None:
        with segment.sync_lock:
            segment.fd_closed = True
            os.close(segment.fd)

    def _forget_empty(self, segment_id: int, path: Any) -> None:
        """A segment that never received a frame: no footage, so no row and no file."""
        try:
            path.unlink(missing_ok=True)
            with self._index.transaction() as db:
                db.execute("DELETE FROM segments WHERE id = ? AND frames = 0", (segment_id,))
        except (OSError, IndexUnavailable) as exc:
            log.error("empty_segment_not_removed", camera=self.camera, error=str(exc))
