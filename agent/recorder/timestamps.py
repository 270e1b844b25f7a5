"""Timestamps libav leaves out, put back before the segment writer sees the packet.

FFmpeg's RTSP demuxer hands over the first access unit of every connection, and the first one
after a read timed out (a stalled camera), without pts or dts: its H.264/H.265 parser has just
been reset and has no RTP timestamp to attach to the frame it assembled. The segment writer
would then time that keyframe by its receipt time, on a different timeline from the packets that
follow, and the keyframe came out seconds away from its neighbours: a frame placed late and a
gap that was not real after every stall (issue 11).

With B-frames it is worse: RTP carries presentation times only, libav derives decode times from
a few frames of history, so the first frames of a connection come with a pts but no dts (the
first keyframe with neither). Taking dts = pts for them, as the writer does for a lone packet,
makes the decode times of a normal stream start go backwards, and the writer cut the session
there: about 2 s lost at every (re)connect (issue 11).

So packets without a dts are held until one with a dts arrives, and placed before it, one frame
interval apart in decode order; a keyframe without a pts is presented one frame before the
earliest presentation time that follows it (a closed GOP shows its keyframe first). Decode
times may come out negative at a stream's start, as an encoder's own do; the writer's muxer
shifts them (`avoid_negative_ts`).

A stream that has no timestamps at all (a raw elementary stream) is passed through untouched:
the writer times it by receipt.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

WriteFn = Callable[[Any, int], None]

# Packets held waiting for a decode time; libav has one after the stream's reorder depth (three
# frames with two B-frames). Beyond this the stream has no decode times: dts = pts, as is.
MAX_PENDING = 16


def frame_ticks(stream: Any, *, default_fps: int = 15) -> int:
    """One frame interval in the stream's time base (from its frame rate, else `default_fps`)."""
    rate = stream.average_rate or stream.guessed_rate or default_fps
    time_base = Fraction(stream.time_base or Fraction(1, 90000))
    return max(1, round(1 / (Fraction(rate) * time_base)))


class TimestampRepair:
    """Passes packets on to `write(packet, received_us)`, holding those that came without a
    decode time until the next packet that has one says where they belong."""

    def __init__(self, write: WriteFn, *, frame_ticks: int) -> None:
        self._write = write
        self._frame_ticks = frame_ticks
        self._pending: list[tuple[Any, int]] = []
        self._untimed_stream = False  # two packets in a row with no timestamp at all
        self._last_dts: int | None = None
        self.repaired = 0

    def push(self, packet: Any, received_us: int) -> None:
        if self._untimed_stream:
            self._write(packet, received_us)
            return
        if packet.dts is None:
            self._pending.append((packet, received_us))
            if all(p.pts is None for p, _ in self._pending[-2:]) and len(self._pending) > 1:
                self._untimed_stream = True
                self._release(fill=False)
            elif len(self._pending) > MAX_PENDING:
                self._release(fill=True)
            return
        if self._pending:
            self._place_before(packet)
        self._last_dts = packet.dts
        self._write(packet, received_us)

    def flush(self) -> None:
        """Write the packets still waiting (the stream ended or stalled right after them)."""
        self._release(fill=True)

    def _place_before(self, packet: Any) -> None:
        pending, self._pending = self._pending, []
        count = len(pending)
        shown = [p.pts for p, _ in pending if p.pts is not None]
        shown.append(packet.pts if packet.pts is not None else packet.dts)
        for index, (held, received_us) in enumerate(pending):
            held.dts = packet.dts - (count - index) * self._frame_ticks
            if held.pts is None:
                held.pts = min(shown) - self._frame_ticks if index == 0 else held.dts
            held.pts = max(held.pts, held.dts)
            self.repaired += 1
            self._write(held, received_us)

    def _release(self, *, fill: bool) -> None:
        """Write what is pending without a packet to place it before: after the last decode
        time seen (or at its own pts) with `fill`, else as it came."""
        pending, self._pending = self._pending, []
        for held, received_us in pending:
            if fill and held.dts is None:
                if self._last_dts is not None:
                    held.dts = self._last_dts + self._frame_ticks
                elif held.pts is not None:
                    held.dts = held.pts
                if held.dts is not None:
                    held.pts = held.dts if held.pts is None else max(held.pts, held.dts)
                    self.repaired += 1
            if held.dts is not None:
                self._last_dts = held.dts
            self._write(held, received_us)
