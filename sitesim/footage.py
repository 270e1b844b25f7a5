"""A small synthetic footage source for simulated sites: real H.264, tiny and cheap.

`Footage.make()` encodes one loop (160x120, 2 frames/s, a keyframe every 2 s, a scrolling
pattern) once per process; `record(store, camera, …)` writes it into a site's real clip store
through the store's own segment writer, with wall-clock times covering the last `history`
seconds, and `follow(…)` keeps writing in real time. The footage is real fragmented MP4 in a
real index, so the agent's delivery cuts, hashes, signs and uploads real clips from it, and
the hub's verification checks them like any other.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from agent.store import ClipStore

WIDTH, HEIGHT, FPS, GOP = 160, 120, 2, 4
LOOP_SECONDS = 60


@dataclass(frozen=True)
class Footage:
    packets: tuple[bytes, ...]  # one loop of Annex B access units, in order
    keyframes: tuple[bool, ...]
    template: bytes  # an MPEG-TS of the loop: its stream is the writer's template

    @classmethod
    def make(cls, seconds: int = LOOP_SECONDS) -> Footage:
        buffer = io.BytesIO()
        packets: list[bytes] = []
        keys: list[bool] = []
        with av.open(buffer, "w", format="mpegts") as out:
            stream = out.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            stream.codec_context.time_base = Fraction(1, FPS)
            stream.options = {
                "preset": "ultrafast", "tune": "zerolatency", "g": str(GOP),
                "keyint_min": str(GOP), "sc_threshold": "0", "bf": "0", "crf": "35",
            }  # fmt: skip
            for n in range(seconds * FPS):
                frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
                for plane_index, plane in enumerate(frame.planes):
                    width = plane.line_size
                    rows = plane.height
                    shade = (n * 9 + plane_index * 40) % 256
                    row = bytes((shade + x) % 256 for x in range(width))
                    plane.update(row * rows)
                frame.pts = n
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        buffer.seek(0)
        with av.open(buffer, "r", format="mpegts") as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.size:
                    packets.append(bytes(packet))
                    keys.append(bool(packet.is_keyframe))
        return cls(tuple(packets), tuple(keys), buffer.getvalue())

    def stream_packets(
        self, template: Any, start_us: int, count: int, first: int = 0
    ) -> Iterator[tuple[av.Packet[Any], int]]:
        """`count` packets from frame number `first` on (looping), each with its capture time."""
        for n in range(first, first + count):
            data = self.packets[n % len(self.packets)]
            packet = av.Packet(data)
            pts = n * (90_000 // FPS)
            packet.pts = packet.dts = pts
            packet.time_base = Fraction(1, 90_000)
            packet.is_keyframe = self.keyframes[n % len(self.packets)]
            packet.stream = template
            yield packet, start_us + n * 1_000_000 // FPS


class CameraRecording:
    """One simulated camera's writer into its site's store."""

    def __init__(self, footage: Footage, store: ClipStore, camera: str) -> None:
        self.footage = footage
        self._container = av.open(io.BytesIO(footage.template), "r", format="mpegts")
        self.template = self._container.streams.video[0]
        self.writer = store.open_writer(camera, self.template, retention=False)
        self.frame = 0
        self.start_us = 0

    def backfill(self, history_s: float, *, now_us: int | None = None) -> None:
        """Footage for the last `history_s` seconds, written at once."""
        now_us = now_us or int(time.time() * 1_000_000)
        frames = int(history_s * FPS)
        self.start_us = now_us - frames * 1_000_000 // FPS
        self._write_until(now_us)

    def _write_until(self, now_us: int) -> None:
        due = (now_us - self.start_us) * FPS // 1_000_000
        if due <= self.frame:
            return
        for packet, captured in self.footage.stream_packets(
            self.template, self.start_us, due - self.frame, self.frame
        ):
            self.writer.write(packet, captured + 20_000)
        self.frame = due

    def catch_up(self) -> None:
        """Write what real time has reached since the last call (a live camera's pace)."""
        self._write_until(int(time.time() * 1_000_000))

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self._container.close()
