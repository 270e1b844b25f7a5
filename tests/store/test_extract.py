"""Extraction: exact windows (checked with the SEI stamps and ffprobe), gaps, edges, live."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.store import ClipResult, ClipStore, InvalidWindow, NoFootage
from agent.store.files import hash_file
from agent.store.model import from_us
from camsim.sei import FrameStamp, stamps_in_file
from tests.store.conftest import Record, SpecAt
from tests.support.ffprobe import ffprobe, video_stream
from tests.support.media import MediaSpec, encode_stamped, feed, stamped_source

LATENCY_US = 20_000


def _pts(path: Path) -> list[float]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [float(x) for x in out]


def check_clip(
    result: ClipResult, spec: MediaSpec, start: datetime, end: datetime
) -> list[FrameStamp]:
    """The clip file is what the result says, and covers [start, end] as the contract says."""
    info = ffprobe(result.path, count_frames=True)
    video = video_stream(info)
    assert int(video["nb_read_frames"]) == result.frames
    assert (video["codec_name"], video["width"], video["height"]) == (
        result.codec,
        result.width,
        result.height,
    )
    assert abs(float(info["format"]["duration"]) - result.duration) <= 1 / spec.fps
    assert info["format"]["tags"]["creation_time"].startswith(
        result.first_frame.strftime("%Y-%m-%dT%H:%M:%S")
    )
    assert hash_file(result.path) == (result.sha256, result.bytes)
    stamps = stamps_in_file(str(result.path))
    assert len(stamps) == result.frames
    return stamps


@pytest.fixture
def recorded(store: ClipStore, record: Record, spec_at: SpecAt) -> MediaSpec:
    """90 s of one camera, keyframes every 2 s, segments of 10 s."""
    spec = spec_at(0, seconds=90, gop=30)
    record(store, "cam1", spec, latency_us=LATENCY_US, jitter_us=8_000)
    return spec


@pytest.mark.parametrize(
    ("offset", "length"),
    [(5.5, 7.0), (0.5, 30.0), (9.95, 0.2), (19.0, 1.0), (33.3, 41.7), (80.0, 9.9), (44.0, 0.01)],
)
def test_windows_are_cut_exactly(
    store: ClipStore, recorded: MediaSpec, tmp_path: Path, offset: float, length: float
) -> None:
    spec = recorded
    start = from_us(spec.start_us + round(offset * 1e6))
    end = start + timedelta(seconds=length)
    fractions: list[float] = []
    result = store.extract("cam1", start, end, tmp_path / "clip.mp4", progress=fractions.append)
    stamps = check_clip(result, spec, start, end)
    first, last = stamps[0].capture_us, stamps[-1].capture_us
    keyframe_us = spec.gop * 1_000_000 // spec.fps
    frame_us = 1_000_000 // spec.fps
    # The store's clock is the agent's receipt time, LATENCY_US (+ < 8 ms jitter) behind the
    # capture times in the stamps; the window is on the agent's clock.
    slack = LATENCY_US + 8_000
    assert first <= _us(start), "the clip starts at the keyframe at or before start"
    assert _us(start) - first <= keyframe_us + slack, "... and within one keyframe interval of it"
    assert last >= _us(end) - frame_us - slack, "the clip reaches end (minus one frame interval)"
    assert last <= _us(end) + frame_us, "... and stops at the first frame at or after it"
    assert result.first_frame <= start and result.last_frame >= end  # exact on the agent clock
    numbers = [s.frame_number for s in stamps]
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), "no frame missing inside"
    assert result.gaps == ()
    # Agent-clock times are the capture times plus the receipt latency (20 ms + jitter < 8 ms).
    assert LATENCY_US <= _us(result.first_frame) - first < LATENCY_US + 8_000
    assert LATENCY_US <= _us(result.last_frame) - last < LATENCY_US + 8_000
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    indexed = {r.path.rsplit("/", 1)[1]: r for r in store.segments("cam1")}
    for ref in result.segments:
        row = indexed[ref.name]
        assert (ref.sha256, ref.bytes, ref.complete) == (row.sha256, row.bytes, True)


def _us(value: datetime) -> int:
    return round(value.timestamp() * 1_000_000)


def test_a_hole_between_two_recording_runs_is_a_gap(
    store: ClipStore, record: Record, spec_at: SpecAt, tmp_path: Path
) -> None:
    before = spec_at(0, seconds=30)
    after = spec_at(50, seconds=30, first_frame=10_000)  # 20 s with the camera unplugged
    record(store, "cam1", before)
    record(store, "cam1", after)
    start, end = from_us(before.start_us + 22_000_000), from_us(after.start_us + 8_000_000)
    result = store.extract("cam1", start, end, tmp_path / "gap.mp4")
    stamps = check_clip(result, before, start, end)
    [gap] = result.gaps
    # The gap runs from the end of the last frame before it to the first frame after it.
    assert _us(gap.start) == before.end_us + LATENCY_US
    assert _us(gap.end) == after.start_us + LATENCY_US
    assert store.coverage("cam1", start, end).gaps == result.gaps
    # Gaps stay gaps in the timeline: the clip's clock jumps by the 20 s hole.
    pts = _pts(result.path)
    split = next(i for i, s in enumerate(stamps) if s.frame_number >= 10_000)
    assert pts[split] - pts[split - 1] == pytest.approx(20.0 + 1 / 15, abs=0.002)
    # From the keyframe 1 s before start to the end of the first frame at or after end.
    assert result.duration == pytest.approx((end - start).total_seconds() + 1 + 1 / 15, abs=0.01)


def test_window_at_the_edge_of_retention(
    store: ClipStore, record: Record, spec_at: SpecAt, tmp_path: Path
) -> None:
    spec = spec_at(0, seconds=60, gop=30)
    record(store, "cam1", spec)
    rows = store.segments("cam1")
    store.config = store.config.model_copy(update={"max_bytes": sum(r.bytes for r in rows[2:])})
    report = store.enforce_retention()
    assert [e.name for e in report.expired] == [r.path for r in rows[:2]]
    oldest = store.segments("cam1")[0]
    # A window straddling the oldest footage kept: a leading gap up to its first frame.
    start, end = from_us(spec.start_us + 15_000_000), from_us(spec.start_us + 25_000_000)
    result = store.extract("cam1", start, end, tmp_path / "edge.mp4")
    stamps = check_clip(result, spec, start, end)
    assert stamps[0].frame_number == 20 * 15
    assert result.gaps[0].start == start and result.gaps[0].end == from_us(oldest.start_us)
    assert [s.name for s in result.segments] == [oldest.path.rsplit("/", 1)[1]]
    # Starting exactly at the oldest frame kept: no gap at all.
    result = store.extract("cam1", from_us(oldest.start_us), end, tmp_path / "edge2.mp4")
    assert result.gaps == () and result.first_frame == from_us(oldest.start_us)
    # Entirely in what retention removed: nothing, and no file.
    with pytest.raises(NoFootage):
        store.extract("cam1", from_us(spec.start_us), start, tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()


def test_export_while_the_segment_is_being_written(
    store: ClipStore, media_dir: Path, spec_at: SpecAt, tmp_path: Path
) -> None:
    spec = spec_at(0, seconds=40)
    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam1", source.stream) as writer,
    ):
        feed(writer, source, until=lambda p: p.stamp.frame_number == 15 * 34)  # 34 s fed
        start, end = from_us(spec.start_us + 25_000_000), from_us(spec.start_us + 32_000_000)
        result = store.extract("cam1", start, end, tmp_path / "live.mp4")
        stamps = check_clip(result, spec, start, end)
        assert result.gaps == ()
        assert stamps[-1].capture_us >= _us(end) - 1_000_000 // 15 - LATENCY_US
        open_ref = result.segments[-1]
        assert not open_ref.complete
        # Up to "now": the fragment still being assembled is missing, and reported as a gap.
        now = from_us(spec.start_us + 34_000_000)
        tail = store.extract("cam1", start, now, tmp_path / "tail.mp4")
        assert len(tail.gaps) == 1 and tail.gaps[0].end == now
        assert (now - tail.gaps[0].start).total_seconds() <= 1.1
        feed(writer, source)
    # The open segment's prefix hash is a prefix of the finished file.
    row = next(r for r in store.segments("cam1") if r.path.endswith(open_ref.name))
    assert hash_file(store.layout.segment(row.path), limit=open_ref.bytes)[0] == open_ref.sha256
    assert row.bytes > open_ref.bytes


def test_no_footage_and_bad_windows_write_nothing(
    store: ClipStore, recorded: MediaSpec, tmp_path: Path
) -> None:
    dest = tmp_path / "out.mp4"
    dest.write_bytes(b"keep me")
    later = from_us(recorded.end_us + 3_600_000_000)
    with pytest.raises(NoFootage):
        store.extract("cam1", later, later + timedelta(minutes=5), dest)
    with pytest.raises(NoFootage):
        store.extract("cam9", from_us(recorded.start_us), later, dest)
    with pytest.raises(InvalidWindow):
        store.extract("cam1", later, later - timedelta(seconds=1), dest)
    with pytest.raises(InvalidWindow):
        store.extract("cam1", datetime(2026, 1, 1), datetime(2026, 1, 2), dest)  # naive
    with pytest.raises(ValueError, match="camera id"):
        store.extract("../cam1", later, later + timedelta(seconds=1), dest)
    assert dest.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "store"]
    assert store.holds() == []  # extraction's own hold is gone


def test_an_altered_source_segment_is_left_out(
    store: ClipStore, recorded: MediaSpec, tmp_path: Path
) -> None:
    rows = store.segments("cam1")
    victim = store.layout.segment(rows[3].path)
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0xFF
    victim.write_bytes(bytes(data))
    start, end = from_us(rows[2].start_us + 5_000_000), from_us(rows[4].start_us + 5_000_000)
    result = store.extract("cam1", start, end, tmp_path / "clip.mp4")
    check_clip(result, recorded, start, end)
    assert [(g.start, g.end) for g in result.gaps] == [
        (from_us(rows[3].start_us), from_us(rows[4].start_us))
    ]
    assert any("altered" in note and rows[3].path in note for note in result.notes)
    assert rows[3].path.rsplit("/", 1)[1] not in [s.name for s in result.segments]


def test_hevc_clip(store: ClipStore, record: Record, spec_at: SpecAt, tmp_path: Path) -> None:
    spec = spec_at(0, seconds=22, codec="hevc")
    record(store, "cam2", spec)
    start, end = from_us(spec.start_us + 8_500_000), from_us(spec.start_us + 13_000_000)
    result = store.extract("cam2", start, end, tmp_path / "hevc.mp4")
    assert result.codec == "hevc"
    stamps = check_clip(result, spec, start, end)
    assert stamps[0].frame_number == 8 * 15


def test_b_frames(store: ClipStore, record: Record, spec_at: SpecAt, tmp_path: Path) -> None:
    """A camera that uses B-frames: decode order differs from display order."""
    spec = spec_at(0, seconds=25, gop=30, bframes=2)
    record(store, "cam1", spec)
    start, end = from_us(spec.start_us + 5_500_000), from_us(spec.start_us + 14_000_000)
    result = store.extract("cam1", start, end, tmp_path / "b.mp4")
    stamps = check_clip(result, spec, start, end)
    numbers = sorted(s.frame_number for s in stamps)
    assert numbers == list(range(60, 211))  # keyframe at 4 s ... first frame at or after 14 s
    assert result.gaps == ()


def test_a_stall_inside_a_session_is_a_gap(
    store: ClipStore, media_dir: Path, spec_at: SpecAt, tmp_path: Path
) -> None:
    """The camera sends nothing for 3 s but keeps its session (and its clock) going."""
    spec = spec_at(0, seconds=20)
    with (
        stamped_source(encode_stamped(media_dir, spec)) as source,
        store.open_writer("cam1", source.stream) as writer,
    ):
        for item in source.packets():
            if not 150 <= item.stamp.frame_number < 195:
                writer.write(item.packet, item.stamp.capture_us + LATENCY_US)
    assert len({r.session for r in store.segments("cam1")}) == 1
    start, end = from_us(spec.start_us + 8_500_000), from_us(spec.start_us + 16_000_000)
    result = store.extract("cam1", start, end, tmp_path / "stall.mp4")
    stamps = check_clip(result, spec, start, end)
    assert [s.frame_number for s in stamps] == [*range(120, 150), *range(195, 241)]
    [gap] = result.gaps
    assert _us(gap.start) == spec.capture_us(150) + LATENCY_US
    assert _us(gap.end) == spec.capture_us(195) + LATENCY_US
