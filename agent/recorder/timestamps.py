"""Timestamps libav leaves out, put back before the segment writer sees the packet.

FFmpeg's RTSP demuxer hands over the first access unit of every connection, and the first one
after a read timed out (a stalled camera), without pts or dts: its H.264/H.265 parser has just
been reset and has no RTP timestamp to attach to the frame it assembled. The segment writer
would then time that keyframe by its receipt time, on a different timeline from the packets that
follow, and the keyframe came out seconds away from its neighbours: a frame placed late and a
gap that was not real after every stall (issue 11). The next packet tells where the frame
belongs: one frame interval before it, in decode order.

A stream that has no timestamps at all (a raw elementary stream) is passed through untouched:
the writer times it by receipt.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

WriteFn = Callable[[Any, int], None]


def frame_ticks(stream: Any, *, default_fps: int = 15) -> int:
    """One frame interval in the stream's time base (from its frame rate, else `default_fps`)."""
    rate = stream.average_rate or stream.guessed_rate or default_fps
    time_base = Fraction(stream.time_base or Fraction(1, 90000))
    return max(1, round(1 / (Fraction(rate) * time_base)))


class TimestampRepair:
    """Passes packets on to `write(packet, received_us)`, holding one that came without
    timestamps until the next packet says where it belongs."""

    def __init__(self, write: WriteFn, *, frame_ticks: int) -> None:
        self._write = write
        self._frame_ticks = frame_ticks
        self._pending: tuple[Any, int] | None = None
        self._untimed_stream = False  # two untimed packets in a row: the stream has none
        self._last_dts: int | None = None
        self.repaired = 0

    def push(self, packet: Any, received_us: int) -> None:
        timed = packet.dts is not None or packet.pts is not None
        pending = self._pending
        if pending is not None:
            self._pending = None
            held, held_received = pending
            if timed:
                dts = packet.dts if packet.dts is not None else packet.pts
                held.dts = held.pts = dts - self._frame_ticks
                self._last_dts = held.dts
                self.repaired += 1
            else:
                self._untimed_stream = True
            self._write(held, held_received)
        if timed or self._untimed_stream:
            if timed:
                self._last_dts = packet.dts if packet.dts is not None else packet.pts
            self._write(packet, received_us)
        else:
            self._pending = (packet, received_us)

    def flush(self) -> None:
        """Write a packet still waiting (the stream ended or stalled right after it): one frame
        interval after the last one, if there was one."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        packet, received_us = pending
        if self._last_dts is not None:
            packet.dts = packet.pts = self._last_dts + self._frame_ticks
            self.repaired += 1
        self._write(packet, received_us)
