"""The body of one camera's recorder process.

This module is preloaded by the fork server (see `supervisor.worker_context`): what it imports
at module level — PyAV and the clip store above all — is loaded once and shared by every
worker, so each worker costs only its own few MB.

A worker pulls RTSP over TCP with PyAV, stamps each video packet with the agent's wall clock at
receipt and hands it to the store's segment writer; it reports its phase to the supervisor over
the IPC socket (at least once a second while it can: that is the watchdog's heartbeat), forwards
the writer's init segment and fragments while live video is wanted, and on `stop` (or SIGTERM,
or when the daemon is gone) closes its segment at the last complete fragment and exits.

Camera faults are the worker's own business, never a reason to exit (the supervisor's restart
budget is for crashes): a camera that refuses, drops or cannot be reached is retried forever with
jittered backoff capped at `reconnect_cap`, and asked cheaply in between whether it is back
(`probe.py`); a camera whose connection stays up but sends no video for `read_timeout` (libav's
socket timeout, at open and while streaming) is *stalled*: its segment is closed at the last
frame that came, and the worker keeps listening on the same connection for as long as the
backoff would have waited, then reconnects. So recording resumes within a keyframe interval or
so of the camera coming back, however long it was gone.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import random
import signal
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import av.error

from agent.config import StoreConfig
from agent.log import configure_logging, get_logger
from agent.media import open as media_open
from agent.media.source import StreamSource
from agent.recorder.ipc import (
    ChannelClosed,
    ControlMessage,
    InitSegment,
    LiveRequest,
    MediaFragment,
    StatusReport,
    StopRequest,
    WorkerChannel,
    WorkerPhase,
)
from agent.recorder.live import GopCache
from agent.recorder.probe import rtsp_answers
from agent.recorder.timestamps import TimestampRepair, frame_ticks
from agent.store import ClipStore, DiskFullError, MediaChunk, SegmentWriter, StoreError
from agent.store.retention import NOTHING_DELETABLE

log = get_logger(__name__)

# Seconds a worker told to stop by SIGTERM (or orphaned) gets before SIGALRM ends it, even if
# it is stuck inside libav.
TERM_DEADLINE = 5
# How often the recording loop looks for control messages (stop, live on/off). Polling the
# socket on every packet was a measurable share of a worker's CPU; a fifth of a second is
# quick enough for a stop or a live viewer.
CONTROL_POLL_INTERVAL = 0.2
# A read that waited this long means the socket had nothing queued: the worker has caught up.
CAUGHT_UP_WAIT = 0.005
# A nap ends this long before the fragment being assembled is due, and shorter ones are skipped.
NAP_MARGIN = 0.05
MIN_NAP = 0.02
# How long past a nap's length a stopping worker keeps reading what had queued up.
DRAIN_GRACE = 0.25
# While backing off from a camera it could not reach, the worker asks it this often whether it
# is back (one TCP connection and an OPTIONS request), and waits this long for the answer.
PROBE_INTERVAL = 0.5
PROBE_TIMEOUT = 1.0
# A camera that refuses our credentials is retried no more often than this: many cameras lock
# out an address after a few failed logins (and nothing changes until the owner fixes them).
AUTH_RETRY = 30.0
_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSpec:
    camera: str
    source: StreamSource
    store_root: Path
    store: StoreConfig
    lock_path: Path
    open_timeout: float
    read_timeout: float  # no video for this long: the camera is stalled
    reconnect_initial: float
    reconnect_cap: float
    status_interval: float = 1.0
    read_batch: float = 0.0  # see Recorder._nap
    log_level: str = "info"
    log_format: str = "auto"
    extra_options: dict[str, str] = field(default_factory=dict)


def rtsp_options(spec: WorkerSpec) -> dict[str, str]:
    """libav options for the worker's RTSP open (`agent.media.open`): video only, reads bounded
    by `read_timeout` (how long a worker listens before its camera counts as stalled)."""
    return media_open.rtsp_options(read_timeout=spec.read_timeout, extra=spec.extra_options)


class Stop(Exception):
    """Leave the recording loop: the supervisor said stop, or SIGTERM arrived."""


class CameraStalled(Exception):
    """The camera's connection is up but no video came for as long as the worker listened."""


class Reopen(Exception):
    """Video flows on a connection opened before it did: open again to learn its parameters.

    libav learns a stream's picture size from its first frames while opening; a camera stalled
    at that moment gives a stream without one, which the MP4 muxer refuses.
    """


class Backoff:
    """Equal-jitter exponential backoff: the n-th delay is uniform in [d/2, d]."""

    def __init__(self, initial: float, cap: float) -> None:
        self.initial, self.cap, self.attempt = initial, cap, 0

    def next(self) -> float:
        ceiling = min(self.cap, self.initial * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not crypto)

    def reset(self) -> None:
        self.attempt = 0


_terminating = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Only a flag: raising here could abort the writer in the middle of a fragment. The loop
    # stops at the next packet; if libav keeps it from getting there, SIGALRM (default action:
    # terminate) ends the process anyway.
    global _terminating
    _terminating = True
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(TERM_DEADLINE)


class Recorder:
    """One camera's recording loop, run by `run()` in the worker process."""

    def __init__(self, spec: WorkerSpec, channel: WorkerChannel) -> None:
        self.spec = spec
        self.channel = channel
        self.store: ClipStore | None = None
        self.source = spec.source
        self.stop_requested = False
        self.live = False
        # The fragments since the last keyframe of this session, so that a live viewer asking
        # now gets a picture at once instead of waiting for the camera's next keyframe.
        self.gop: GopCache[MediaFragment] = GopCache()
        self.phase: WorkerPhase = "connecting"
        self.error: str | None = None
        self.epoch = 0  # bumped with each writer session (timestamps may restart there)
        self.init: bytes | None = None
        self.segment: str | None = None
        self.bytes_written = 0
        self.packets = 0
        self.last_frame_us: int | None = None
        self.codec: str | None = None
        self.width: int | None = None
        self.height: int | None = None
        self._session: str | None = None
        self._next_status = 0.0
        self._backoff = Backoff(spec.reconnect_initial, spec.reconnect_cap)
        self._writer: SegmentWriter | None = None
        self._reopened = False  # the last connection was closed to learn the parameters

    # -- talking to the supervisor ----------------------------------------------------------

    def report(self, phase: WorkerPhase | None = None, *, error: str | None = None) -> None:
        if phase is not None:
            self.phase = phase
        if error is not None:
            self.error = error
        self.channel.send(
            StatusReport(
                phase=self.phase,
                error=self.error,
                segment=self.segment,
                bytes_written=self.bytes_written,
                packets=self.packets,
                last_frame_us=self.last_frame_us,
                codec=self.codec,
                width=self.width,
                height=self.height,
            )
        )
        self._next_status = time.monotonic() + self.spec.status_interval

    def handle_control(self, timeout: float = 0.0) -> None:
        """Apply what the supervisor sent; raise Stop when it is time to go."""
        for message in self.channel.poll(timeout):
            self._apply(message)
        if self.stop_requested or _terminating:
            raise Stop

    def _apply(self, message: ControlMessage) -> None:
        if isinstance(message, StopRequest):
            self.stop_requested = True
        elif isinstance(message, LiveRequest):
            self.live = message.wanted
            if self.live and self.init is not None:
                self.channel.send(InitSegment(epoch=self.epoch, data=self.init))
                for fragment in self.gop.items():
                    self.channel.send(fragment)

    def wait(self, seconds: float, *, probe: bool = False) -> None:
        """Sleep, heartbeating and obeying control messages. With `probe`, ask the camera every
        PROBE_INTERVAL whether it answers, and return early once it answers after not having
        answered (it came back); a camera that answered all along gets the whole wait."""
        deadline = time.monotonic() + seconds
        step = PROBE_INTERVAL if probe else self.spec.status_interval
        # Asked at once: a camera that comes back before the first probe must not look as if
        # it had answered all along (it would get the whole wait).
        unreachable = probe and not rtsp_answers(self.source.url, timeout=PROBE_TIMEOUT)
        while (left := deadline - time.monotonic()) > 0:
            self.handle_control(min(left, step))
            if time.monotonic() >= self._next_status:
                self.report()
            if probe and deadline - time.monotonic() > PROBE_INTERVAL:
                if not rtsp_answers(self.source.url, timeout=PROBE_TIMEOUT):
                    unreachable = True
                elif unreachable:
                    log.info("camera_answers_again", camera=self.spec.camera)
                    return

    # -- the writer's output ----------------------------------------------------------------

    def on_chunk(self, chunk: MediaChunk) -> None:
        """Called by the writer with the very bytes it wrote (see agent.store)."""
        if chunk.session != self._session:
            self._session = chunk.session
            self.epoch += 1
            self.gop.clear()
        if chunk.kind == "init":
            if chunk.data != self.init:
                self.gop.clear()  # fragments of other parameters cannot follow this init
            self.init = chunk.data
            if self.live:
                self.channel.send(InitSegment(epoch=self.epoch, data=chunk.data))
            return
        if chunk.segment != self.segment:
            self.segment = chunk.segment
            self.bytes_written += len(self.init or b"")  # each segment file starts with it
        self.bytes_written += len(chunk.data)
        fragment = MediaFragment(
            epoch=self.epoch,
            keyframe=chunk.keyframe,
            wall_us=chunk.wall_us,
            duration_us=chunk.duration_us,
            data=chunk.data,
        )
        self.gop.add(fragment)
        if self.live:
            self.channel.send(fragment)

    # -- recording --------------------------------------------------------------------------

    def run(self) -> None:
        """Record until told to stop; returns after reporting `stopping`."""
        try:
            while True:
                self.handle_control()
                if self.phase != "disk_full":  # that lasts until recording works again
                    self.report("connecting")
                try:
                    store = self._open_store()
                except (StoreError, OSError) as exc:
                    self._store_failed(exc)
                    continue
                try:
                    # PyAV's timeout bounds only the open (see `open_rtsp`): libav's socket
                    # timeout and the watchdog cover reads.
                    container = media_open.open_rtsp(
                        self.source, rtsp_options(self.spec), open_timeout=self.spec.open_timeout
                    )
                except (av.error.FFmpegError, OSError, RuntimeError) as exc:
                    self._lost(exc)
                    continue
                self.report()  # the open may have taken a while: a heartbeat before reading
                store_error: StoreError | None = None
                camera_error: Exception | None = None
                try:
                    self._record(container, store)
                except Reopen:
                    log.info("reopening_for_parameters", camera=self.spec.camera)
                    self._reopened = True
                    continue  # at once: the camera is sending
                except StoreError as exc:
                    store_error = exc
                except CameraStalled as exc:
                    camera_error = exc
                except (av.error.FFmpegError, OSError, RuntimeError, ValueError) as exc:
                    camera_error = exc
                finally:
                    container.close()
                if store_error is not None:
                    self._store_failed(store_error)
                else:
                    # A stalled camera was listened to for as long as the backoff says already.
                    self._lost(camera_error, wait=not isinstance(camera_error, CameraStalled))
        except Stop:
            self.report("stopping")

    def _lost(self, exc: BaseException | None, *, wait: bool = True) -> None:
        """The camera refused, dropped, ended or stalled the stream: report, back off, retry."""
        message = self.source.redact(str(exc)) if exc is not None else "the stream ended"
        log.info("camera_lost", camera=self.spec.camera, error=message)
        self.report("reconnecting", error=message)
        if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
            self.wait(max(self._backoff.next(), AUTH_RETRY))
        elif wait:
            self.wait(self._backoff.next(), probe=True)

    def _open_store(self) -> ClipStore:
        if self.store is None:
            self.store = ClipStore(self.spec.store_root, config=self.spec.store)
        return self.store

    def _store_failed(self, exc: Exception) -> None:
        full = is_disk_full(exc)
        log.warning("store_refused", camera=self.spec.camera, error=str(exc), disk_full=full)
        self.report("disk_full" if full else "store_error", error=str(exc))
        self.wait(self._backoff.next())
        if full:
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Do not keep re-opening the camera only to fail again: make room (a retention pass
        of our own, as the daemon's may be minutes away) and wait until `store.min_free` is
        free — the very number retention frees down to, so this wait ends when retention has
        done its job. When nothing more may be deleted, say so, and wait for the owner."""
        while self._free_bytes() < self.spec.store.min_free:
            if self.store is not None:
                try:
                    self.store.enforce_retention()
                    if self._free_bytes() >= self.spec.store.min_free:
                        break
                    if not self.store.can_make_room():
                        self.report(error=NOTHING_DELETABLE)
                except (StoreError, OSError) as exc:
                    log.warning("retention_failed", camera=self.spec.camera, error=str(exc))
            self.wait(self.spec.status_interval)

    def _free_bytes(self) -> int:
        try:
            stats = os.statvfs(self.spec.store_root)
        except OSError:
            return self.spec.store.min_free  # cannot tell: let the next attempt find out
        return stats.f_bavail * stats.f_frsize

    def _record(self, container: Any, store: ClipStore) -> None:
        if not container.streams.video:
            raise ValueError("the camera's stream has no video")
        stream = container.streams.video[0]
        codec = stream.codec_context
        self.codec, self.width, self.height = codec.name, codec.width or None, codec.height or None
        # Once in a row: a stream that never says its size is recorded as it is.
        reopen = not codec.width and not self._reopened
        self._reopened = False
        repair = TimestampRepair(
            lambda packet, received_us: self._write(store, stream, packet, received_us),
            frame_ticks=frame_ticks(stream),
        )
        try:
            self._pump(container, stream, repair, reopen=reopen)
            repair.flush()
        finally:
            self._close_writer()

    def _write(self, store: ClipStore, stream: Any, packet: Any, received_us: int) -> None:
        if self._writer is None:  # opened at the first packet, again after a stall
            self._writer = store.open_writer(self.spec.camera, stream, on_chunk=self.on_chunk)
        self._writer.write(packet, received_us)

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()  # writes what is buffered; a no-op after a write error

    def _pump(
        self, container: Any, stream: Any, repair: TimestampRepair, *, reopen: bool = False
    ) -> None:
        """Record until the stream ends (returns), fails (libav's error) or stays stalled for
        the listening window (CameraStalled); with `reopen`, raise Reopen at the first packet
        instead of recording it."""
        first = True  # the next packet is the first of this connection or since a stall
        next_control = 0.0
        handled = time.monotonic()  # when the previous packet had been dealt with
        last_packet = handled  # (or when the connection opened)
        give_up_at: float | None = None  # stalled: when to stop listening and reconnect
        drain_until: float | None = None  # told to stop: read what is queued until then
        while True:
            try:
                for packet in container.demux(stream):
                    received_us = time.time_ns() // 1000
                    now = time.monotonic()
                    # The read had to wait for this packet: nothing else is queued in the socket.
                    caught_up = now - handled >= CAUGHT_UP_WAIT
                    if packet.size == 0:
                        continue  # the demuxer's end-of-stream flush packet
                    if reopen:
                        raise Reopen
                    repair.push(packet, received_us)
                    self.packets += 1
                    self.last_frame_us = received_us
                    last_packet = now
                    if drain_until is not None:
                        if caught_up or now >= drain_until:
                            raise Stop
                        handled = time.monotonic()
                        continue
                    if first:
                        first, give_up_at = False, None
                        self._backoff.reset()
                        self.report("recording")
                    try:
                        if now >= next_control:
                            next_control = now + CONTROL_POLL_INTERVAL
                            self.handle_control()
                        if now >= self._next_status:
                            self.report()
                        if caught_up and self.spec.read_batch > 0:
                            self._nap()
                    except Stop:
                        # A nap may have left packets in the socket: record them before
                        # stopping, so a clean stop loses nothing that had already arrived.
                        drain_until = time.monotonic() + self.spec.read_batch + DRAIN_GRACE
                    handled = time.monotonic()
                return
            except av.error.TimeoutError:
                if drain_until is not None:
                    raise Stop from None
                # Nothing for `read_timeout`: the footage so far goes to disk now, and the next
                # frame (if any comes) starts a new session, anchored afresh.
                repair.flush()
                self._close_writer()
                now = time.monotonic()
                message = f"the camera sends no video (nothing for {now - last_packet:.0f} s)"
                if give_up_at is None:
                    # Listen as long as the backoff would wait: a camera that recovers on this
                    # connection is recorded at once, one that needs a new session gets one.
                    window = max(self._backoff.next(), self.spec.read_timeout)
                    give_up_at = last_packet + window
                    log.warning("camera_stalled", camera=self.spec.camera, listen=round(window, 1))
                # (Reads end every read_timeout: one ending just short of the window ends it.)
                if now >= give_up_at - PROBE_INTERVAL:
                    raise CameraStalled(message) from None
                if not rtsp_answers(self.source.url, timeout=PROBE_TIMEOUT):
                    # Not a stall: the camera is gone (unplugged without a word, so the old
                    # connection just went quiet). Back off probing, to notice its return.
                    raise ConnectionError(f"{message}, and it does not answer") from None
                self.report("reconnecting", error=message)
                self.handle_control()
                first = True

    def _nap(self) -> None:
        """Let packets gather in the socket for a moment, then read them in one go.

        Waking for every frame (15-30 times a second per camera) costs more than the work
        each wake-up does: reading in batches of `read_batch` seconds took a third off a
        worker's CPU. The nap never reaches past the moment the fragment being assembled is
        due, so fragments (what a crash can lose, what a live viewer waits for) are written as
        promptly as without it. Receipt times of the packets read late are late too; the
        writer anchors on the earliest receipt implied by each fragment, which is that of the
        packet that ended the nap's batch, so its wall clock stays exact.
        """
        due_us = self._writer.flush_due_in_us if self._writer is not None else None
        if due_us is None:
            return
        nap = min(self.spec.read_batch, due_us / 1_000_000 - NAP_MARGIN)
        if nap >= MIN_NAP:
            self.handle_control(nap)  # a stop request ends the nap at once


def is_disk_full(exc: BaseException) -> bool:
    """Whether a store error comes down to a full disk: ENOSPC/EDQUOT from a segment write, or
    SQLITE_FULL from the index, however deep in the exception's causes."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, DiskFullError):
            return True
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        pending += [error.__cause__, error.__context__]
    return False


def _hold_recorders_lock(path: Path) -> int:
    """Hold the recorders lock shared for this process's life (see wait_for_old_workers)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _prepare_process(spec: WorkerSpec) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the daemon's to handle
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Our parent is the fork server, which exits when the daemon does: SIGTERM us then.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # Forked, not exec'd: without this, `ps`/`top` show every worker as the fork server.
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(f"rec {spec.camera}".encode()[:15]))
    configure_logging(spec.log_level, fmt=spec.log_format)  # type: ignore[arg-type]


def worker_main(spec: WorkerSpec, sock: socket.socket) -> None:
    """Process entry point (the supervisor's `Process(target=...)`)."""
    _prepare_process(spec)
    lock_fd = _hold_recorders_lock(spec.lock_path)
    channel = WorkerChannel(sock)
    recorder = Recorder(spec, channel)
    try:
        recorder.run()
    except ChannelClosed:
        log.info("recorder_orphaned", camera=spec.camera)
    finally:
        if recorder.store is not None:
            recorder.store.close()
        channel.close()
        os.close(lock_fd)
