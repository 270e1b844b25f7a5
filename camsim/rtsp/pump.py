"""Real-time pacing: one timer per stream, firing once per frame, feeding all its sessions.

The stream has its own clock, like a camera's sensor: frame n (in decode order) is due at
t0 + n/fps whether or not anyone watches, so its RTP timestamp is n * 90000/fps and its SEI frame
number is n. The timer only runs while at least one session plays. Every frame gets an SEI with
the true wall-clock time it is sent (the capture time tests measure against); RTCP sender reports
pair the frame's RTP timestamp with the camera's (possibly skewed) clock.

With B-frames the RTP timestamp is the presentation time, (n + pts_offset) * 90000/fps, and the
capture time is what a real camera's would be: a picture is sent `reorder_delay` frames after it
was captured at the earliest, so the SEI says send time - (reorder_delay - pts_offset)/fps, which
runs evenly in presentation order (without B-frames both are 0: the send time).
"""

from __future__ import annotations

import asyncio
import math
import time

import structlog

from camsim.faults import Faults
from camsim.media import EncodedStream
from camsim.sei import build_sei_nal

from .rtp import RTP_CLOCK, build_run, packetize_stream
from .session import RtspSession

log = structlog.get_logger(__name__)

# Later than this behind schedule (a stalled event loop), frames are skipped rather than burst,
# so timestamps keep tracking the wall clock; clients then resume at the next keyframe.
MAX_LATE = 0.5


class StreamPump:
    def __init__(
        self, stream: EncodedStream, *, faults: Faults | None, clock_offset: float
    ) -> None:
        self._packets = packetize_stream(stream)
        self._frame_us = 1_000_000 // stream.spec.fps
        self._codec = stream.spec.codec
        self._fps = stream.spec.fps
        self._gop = stream.spec.gop
        self._loop_length = len(stream.frames)
        self._faults = faults
        self._clock_offset = clock_offset
        self._sessions: list[RtspSession] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._next = 0
        self._handle: asyncio.TimerHandle | None = None

    @property
    def playing(self) -> int:
        return len(self._sessions)

    def play(self, session: RtspSession) -> int:
        """Add a session; it starts at the next keyframe, whose RTP ticks are returned."""
        if self._handle is None:
            self._start()
        if session not in self._sessions:
            self._sessions.append(session)
        session.need_keyframe = True
        first = -(-self._next // self._gop) * self._gop
        return first * RTP_CLOCK // self._fps

    def stop(self, session: RtspSession) -> None:
        if session in self._sessions:
            self._sessions.remove(session)
        if not self._sessions and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        self._sessions.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._loop is None:
            self._loop = loop
            # On a grid of the loop clock: streams with the same rate tick in one wake-up.
            self._t0 = math.ceil(now * self._fps) / self._fps
            self._next = 0
        else:
            # The sensor kept running while nobody watched.
            self._next = max(self._next, math.ceil((now - self._t0) * self._fps))
        self._schedule()

    def _schedule(self) -> None:
        assert self._loop is not None
        self._handle = self._loop.call_at(self._t0 + self._next / self._fps, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        n = self._next
        if now - (self._t0 + n / self._fps) > MAX_LATE:
            n = int((now - self._t0) * self._fps)
            for session in self._sessions:
                session.need_keyframe = True
            log.debug("rtsp_pump_skipped", frames=n - self._next)
        index = n % self._loop_length
        keyframe = self._packets.keyframes[index]
        if self._faults is not None and self._faults.stalled:
            for session in self._sessions:
                session.need_keyframe = True
        else:
            offset = self._packets.pts_offsets[index]
            capture_us = time.time_ns() // 1000
            capture_us -= (self._packets.reorder_delay - offset) * self._frame_us
            sei = build_run([build_sei_nal(capture_us, n, self._codec)], marker_last=False)
            frame = self._packets.frames[index]
            run = self._packets.parameter_sets + sei + frame if keyframe else sei + frame
            ticks = (n + offset) * RTP_CLOCK // self._fps
            wallclock = capture_us / 1_000_000 + self._clock_offset
            for session in tuple(self._sessions):
                try:
                    session.deliver(
                        run, keyframe=keyframe, ticks=ticks, wallclock=wallclock, now=now
                    )
                except Exception:  # one broken session must not stop the others
                    log.exception("rtsp_deliver_failed", session=session.id)
                    self.stop(session)
                    session.close()
        self._next = n + 1
        if self._sessions:
            self._schedule()
        else:
            self._handle = None
