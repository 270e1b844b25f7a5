"""The segment writer: cuts, fragments, hashes, chain, timing, live chunks, misuse."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import av
import pytest

from agent.media import fmp4
from agent.store import ClipStore, MediaChunk, SegmentState, WriterBusy, WriterClosed
from agent.store.model import from_us
from agent.store.writer import DRIFT_REANCHOR_US, DRIFT_WINDOW, muxer_options
from camsim.sei import read_stamps, stamps_in_file
from tests.store.conftest import Record, SpecAt, check_segment
from tests.support.media import PacketWriter, encode_stamped, feed, stamped_source


def _scan(store: ClipStore, rel: str) -> fmp4.FileScan:
    with store.layout.segment(rel).open("rb") as handle:
        return fmp4.scan_file(handle)


def _dts(packet: av.Packet[Any]) -> int:
    assert packet.dts is not None, "an encoded packet has a decoding time"
    return packet.dts


def test_segments_cut_at_first_keyframe_after_length(
    store: ClipStore, record: Record, spec_at: SpecAt
) -> None:
    spec = spec_at(0, seconds=40, gop=45)  # a keyframe every 3 s: cuts land at 12, 24, 36 s
    last = record(store, "cam1", spec)
    assert last.frame_number == spec.frames - 1
    rows = store.segments("cam1")
    assert [r.state for r in rows] == [SegmentState.COMPLETE] * 4
    assert [r.frames for r in rows] == [180, 180, 180, 60]
    seen: list[int] = []
    previous = None
    for row in rows:
        stamps = check_segment(store, row)
        seen += [s.frame_number for s in stamps]
        scan = _scan(store, row.path)
        assert scan.problem is None and scan.fragments[0].keyframe
        assert scan.track is not None
        for fragment in scan.fragments:
            span = fragment.end_dts - fragment.samples[0].dts
            assert span <= scan.track.timescale * 1.0  # fragments of at most 1 s
        assert [f.keyframe for f in scan.fragments].count(True) == -(-row.frames // 45)
        if previous is not None:
            assert row.prev_sha256 == previous.sha256  # the chain
            assert row.first_pts == previous.end_pts  # timestamps continue across files
            assert row.session == previous.session
            assert row.start_us == previous.end_us
        else:
            assert row.prev_sha256 is None
        previous = row
    assert seen == list(range(spec.frames))  # every frame exactly once, in order
    assert rows[1].first_pts == 12 * 90_000  # never reset to 0 per file


def test_live_chunks_are_exactly_the_bytes_written(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    chunks: list[MediaChunk] = []
    spec = spec_at(0, seconds=25)
    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam1", source.stream, on_chunk=chunks.append) as writer,
    ):
        feed(writer, source)
        assert writer.init_segment == chunks[0].data
    assert chunks[0].kind == "init" and chunks[0].keyframe
    assert all(c.kind == "fragment" for c in chunks[1:])
    for row in store.segments("cam1"):
        data = store.layout.segment(row.path).read_bytes()
        mine = [c for c in chunks if c.segment == row.path]
        assert chunks[0].data + b"".join(c.data for c in mine) == data
        assert mine[0].keyframe
    walls = [c.wall_us for c in chunks[1:]]
    assert walls == sorted(walls)
    assert all(0 < c.duration_us <= 1_000_000 for c in chunks[1:])
    # Wall-clock time of a fragment = capture time of its first frame + the 20 ms latency.
    assert abs(chunks[1].wall_us - (spec.start_us + 20_000)) < 1_000


def test_hevc(store: ClipStore, record: Record, spec_at: SpecAt) -> None:
    record(store, "cam2", spec_at(0, seconds=12, codec="hevc"))
    rows = store.segments("cam2")
    assert len(rows) == 2
    for row in rows:
        assert row.codec == "hevc"
        check_segment(store, row)


def test_wall_clock_anchor_and_open_segment_visible(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    spec = spec_at(0, seconds=15)
    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam1", source.stream) as writer,
    ):
        feed(
            writer,
            source,
            latency_us=30_000,
            jitter_us=20_000,
            until=lambda p: p.stamp.frame_number == 60,
        )
        [row] = store.segments("cam1")
        assert row.state is SegmentState.RECORDING
        # Fragments written so far (the 4th is still being assembled in the muxer).
        assert row.frames == 45
        assert row.end_us == row.wall_us(row.end_pts)
        assert abs(row.end_us - (spec.capture_us(45) + 30_000)) < 20_000
        data = store.layout.segment(row.path).read_bytes()
        assert fmp4.scan_file(io.BytesIO(data)).complete_size == row.bytes == len(data)
    first = store.segments("cam1")[0]
    # The anchor is the earliest receipt the first fragment implies: latency plus at most jitter.
    assert 30_000 <= first.start_us - spec.start_us < 50_000


def test_drift_reanchors_and_a_clock_step_cuts_early(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    spec = spec_at(0, seconds=45)

    class Drifting:
        """Receipts drift 5 ms per second (a slow camera clock); +3 s jump at 33 s."""

        def __init__(self, writer: PacketWriter) -> None:
            self.writer = writer

        def write(self, packet: av.Packet[Any], received_us: int) -> None:
            elapsed = received_us - spec.start_us
            received_us += elapsed // 200
            if elapsed >= 33_000_000:
                received_us += 3_000_000
            self.writer.write(packet, received_us)

    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam1", source.stream) as writer,
    ):
        feed(Drifting(writer), source)
    rows = store.segments("cam1")
    for row in rows:
        stamps = check_segment(store, row)
        since_start = stamps[0].capture_us - spec.start_us
        truth = stamps[0].capture_us + 20_000 + since_start // 200
        if since_start >= 33_000_000:
            truth += 3_000_000
        if 33_000_000 <= since_start < 33_000_000 + (DRIFT_WINDOW + 2) * 1_000_000:
            continue  # a step is believed once it outlasts the drift window (delay spikes don't)
        # Re-anchored whenever the drift passes the threshold: a segment's start is never
        # further off than the threshold plus one segment's worth (50 ms) of drift.
        assert abs(row.start_us - truth) < DRIFT_REANCHOR_US + 50_000 + 1_000, row.path
    assert len({r.session for r in rows}) == 1
    starts = [(r.start_us - spec.start_us) // 1_000_000 for r in rows]
    assert any(s % 10 != 0 for s in starts)  # the step cut a segment early


def test_restarted_source_starts_a_new_session(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    first = spec_at(0, seconds=6)
    second = spec_at(20, seconds=6, first_frame=1000)  # its timestamps restart at 0
    with (
        stamped_source(encode_stamped(media_dir, first)) as one,
        stamped_source(encode_stamped(media_dir, second)) as two,
        store.open_writer("cam1", one.stream) as writer,
    ):
        feed(writer, one)
        feed(writer, two)
        assert writer.sessions == 2
    rows = store.segments("cam1")
    assert len(rows) == 2 and rows[0].session != rows[1].session
    assert rows[1].prev_sha256 == rows[0].sha256
    assert [check_segment(store, r)[0].frame_number for r in rows] == [0, 1000]
    coverage = store.coverage("cam1", from_us(rows[0].start_us), from_us(rows[1].end_us))
    assert [(g.start, g.end) for g in coverage.gaps] == [
        (from_us(rows[0].end_us), from_us(rows[1].start_us))
    ]
    assert rows[1].start_us - rows[0].end_us == 14_000_000


def test_packets_before_the_first_keyframe_are_dropped(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    spec = spec_at(0, seconds=5)
    with stamped_source(encode_stamped(media_dir, spec)) as source:
        packets = source.packets()
        for _ in range(5):
            next(packets)
        with store.open_writer("cam1", source.stream) as writer:
            for item in packets:
                writer.write(item.packet, item.stamp.capture_us + 10_000)
            assert writer.dropped == 10
    [row] = store.segments("cam1")
    stamps = check_segment(store, row)
    assert stamps[0].frame_number == 15


def test_one_writer_per_camera_and_misuse(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    spec = spec_at(0, seconds=2)
    with stamped_source(encode_stamped(media_dir, spec)) as source:
        writer = store.open_writer("cam1", source.stream)
        with pytest.raises(WriterBusy):
            store.open_writer("cam1", source.stream)
        other = store.open_writer("cam2", source.stream)  # other cameras are independent
        other.close()
        item = next(source.packets())
        writer.close()
        with pytest.raises(WriterClosed):
            writer.write(item.packet, item.stamp.capture_us)
        with pytest.raises(ValueError, match="camera id"):
            store.open_writer("../etc", source.stream)
        store.open_writer("cam1", source.stream).close()  # released on close


def test_a_failing_live_consumer_does_not_stop_recording(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    spec = spec_at(0, seconds=12)

    def broken(chunk: MediaChunk) -> None:
        raise RuntimeError("viewer went away")

    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam1", source.stream, on_chunk=broken) as writer,
    ):
        feed(writer, source)
    rows = store.segments("cam1")
    assert sum(r.frames for r in rows) == spec.frames
    assert len(stamps_in_file(str(store.layout.segment(rows[0].path)))) == rows[0].frames


class _SeekCounter:
    """A seekable file object that counts the muxer's seeks."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w+b")
        self.seeks = 0

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.seeks += 1
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()


def test_the_muxer_never_seeks(
    store: ClipStore, record: Record, spec_at: SpecAt, media_dir: Path, tmp_path: Path
) -> None:
    """Our sink is not seekable, so the hash can be taken as bytes go by. Given a seekable file
    with the same options, FFmpeg does not seek either, and writes the very same bytes."""
    spec = spec_at(0, seconds=8)
    record(store, "cam1", spec)
    [row] = store.segments("cam1")
    target = _SeekCounter(tmp_path / "reference.mp4")
    with stamped_source(encode_stamped(media_dir, spec)) as source:
        packets = [p.packet for p in source.packets()]
        out = av.open(target, "w", format="mp4", options=muxer_options(1_000_000))
        stream = out.add_stream_from_template(source.stream)
        for packet, following in zip(packets, [*packets[1:], None], strict=True):
            packet.duration = _dts(following) - _dts(packet) if following is not None else 6000
            packet.stream = stream
            out.mux(packet)
        out.close()
    target.file.close()
    assert target.seeks == 0
    assert (tmp_path / "reference.mp4").read_bytes() == store.layout.segment(row.path).read_bytes()


def test_packets_without_timestamps_are_timed_by_receipt(
    store: ClipStore, media_dir: Path, spec_at: SpecAt, tmp_path: Path
) -> None:
    """A raw Annex B stream has no timestamps at all: receipt times become the timeline."""
    spec = spec_at(0, seconds=12)
    raw = tmp_path / "raw.h264"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(encode_stamped(media_dir, spec)),
            "-c",
            "copy",
            "-f",
            "h264",
            str(raw),
        ],
        check=True,
    )
    with av.open(str(raw)) as container:
        stream = container.streams.video[0]
        with store.open_writer("cam1", stream) as writer:
            for packet in container.demux(stream):
                if packet.size:
                    assert packet.pts is None and packet.dts is None
                    stamp = read_stamps(bytes(packet), "h264", length_prefixed=False)[0]
                    writer.write(packet, stamp.capture_us + 20_000)
    rows = store.segments("cam1")
    assert [r.frames for r in rows] == [150, 30]
    for row in rows:
        stamps = check_segment(store, row)
        assert row.start_us == stamps[0].capture_us + 20_000
    assert rows[1].start_us - rows[0].start_us == 10_000_000


def test_flush_due_counts_down_to_each_fragment(
    store: ClipStore, media_dir: Path, spec_at: SpecAt
) -> None:
    """`flush_due_in_us` tells the recorder how long it may leave packets unread: it must reach
    zero just as the muxer closes a fragment, never promise time the fragment does not have."""
    spec = spec_at(0, seconds=8, gop=45)  # keyframes 3 s apart: fragments close on duration
    frame_us = 1_000_000 // spec.fps
    chunks: list[MediaChunk] = []
    seen: list[tuple[int | None, bool]] = []  # (due before the write, a fragment came out)
    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam1", source.stream, on_chunk=chunks.append) as writer,
    ):
        assert writer.flush_due_in_us is None  # nothing written yet
        for item in source.packets():
            due, before = writer.flush_due_in_us, len(chunks)
            writer.write(item.packet, item.stamp.capture_us + 20_000)
            seen.append((due, any(c.kind == "fragment" for c in chunks[before:])))
    closing = [due for due, emitted in seen if emitted]
    assert len(closing) >= 6
    for due in closing:
        # The write that closes a fragment is the one after the packet that completes it.
        assert due is not None and -2 * frame_us <= due <= frame_us, due
    dues = [due for due, _ in seen if due is not None]
    assert max(dues) <= 1_000_000 and min(dues) >= -2 * frame_us
