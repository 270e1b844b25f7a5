"""The box walker against real muxer output, and against anything at all (hypothesis)."""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.media import fmp4
from agent.store import ClipStore
from tests.store.conftest import Record, SpecAt
from tests.support.media import MediaSpec


def _segment_bytes(store: ClipStore) -> bytes:
    row = store.segments()[0]
    return store.layout.segment(row.path).read_bytes()


def test_scan_matches_ffprobe(store: ClipStore, record: Record, spec_at: SpecAt) -> None:
    record(store, "cam1", spec_at(0, seconds=12))
    row = store.segments()[0]
    path = store.layout.segment(row.path)
    with path.open("rb") as handle:
        scan = fmp4.scan_file(handle)
    assert scan.problem is None
    assert scan.track is not None and scan.track.codec_name == "h264"
    assert (scan.track.width, scan.track.height) == (320, 240)
    assert scan.complete_size == scan.file_size == row.bytes
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts,flags",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    samples = [s for f in scan.fragments for s in f.samples]
    assert [int(line.split(",")[0]) for line in probe] == [s.pts for s in samples]
    assert [line.split(",")[1].startswith("K") for line in probe] == [s.sync for s in samples]
    assert all(f.keyframe for f in scan.fragments[:1])
    # The span the store indexes, recovers and re-adopts segments with.
    assert (scan.start_pts, scan.end_pts) == (row.first_pts, row.end_pts)
    assert scan.seconds == (row.end_pts - row.first_pts) / scan.track.timescale


def test_truncated_file_stops_at_last_complete_fragment(
    store: ClipStore, record: Record, spec_at: SpecAt
) -> None:
    record(store, "cam1", spec_at(0, seconds=5))
    data = _segment_bytes(store)
    with io.BytesIO(data) as whole:
        full = fmp4.scan_file(whole)
    assert len(full.fragments) == 5
    for cut in (full.fragments[2].offset + 5, full.fragments[2].end - 1, full.init_size - 1):
        scan = fmp4.scan_file(io.BytesIO(data[:cut]))
        assert scan.problem is not None
        assert scan.complete_size <= cut
        expected = [f for f in full.fragments if f.end <= cut]
        assert [f.offset for f in scan.fragments] == [f.offset for f in expected]
        if not expected:
            assert scan.seconds == 0.0


def test_split_stream_needs_whole_units() -> None:
    ftyp = struct.pack(">I4s", 16, b"ftyp") + b"isom\x00\x00\x02\x00"
    partial_moov = struct.pack(">I4s", 100, b"moov") + b"\x00" * 10
    assert fmp4.split_stream(ftyp + partial_moov, have_init=False).consumed == 0
    # A fragment arriving before any moov is not something our muxer does.
    moof = struct.pack(">I4s", 8, b"moof")
    try:
        fmp4.split_stream(moof, have_init=False)
    except fmp4.BoxError:
        pass
    else:
        raise AssertionError("a moof before the moov must be refused")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_walker(data: bytes) -> None:
    scan = fmp4.scan_file(io.BytesIO(data))
    assert 0 <= scan.complete_size <= len(data)
    try:
        fmp4.split_stream(data, have_init=False)
        fmp4.split_stream(data, have_init=True)
    except fmp4.BoxError:
        pass


_BOX_TYPES = st.sampled_from(
    [
        b"ftyp",
        b"moov",
        b"trak",
        b"mdia",
        b"moof",
        b"traf",
        b"trun",
        b"tfhd",
        b"tfdt",
        b"mdat",
        b"mvex",
        b"trex",
        b"mdhd",
        b"hdlr",
        b"tkhd",
        b"stsd",
        b"mfhd",
        b"free",
    ]
)


@st.composite
def _boxes(draw: st.DrawFn, depth: int = 0) -> bytes:
    kind = draw(_BOX_TYPES)
    if depth < 3 and draw(st.booleans()):
        payload = b"".join(draw(st.lists(_boxes(depth + 1), max_size=3)))
    else:
        payload = draw(st.binary(max_size=64))
    size = len(payload) + 8
    if draw(st.integers(0, 9)) == 0:
        size = draw(st.integers(0, 2**32 - 1))  # lie about the size
    return struct.pack(">I4s", size, kind) + payload


@settings(max_examples=400, deadline=None)
@given(st.lists(_boxes(), max_size=6))
def test_structured_garbage_is_a_box_error_or_parses(boxes: list[bytes]) -> None:
    data = b"".join(boxes)
    scan = fmp4.scan_file(io.BytesIO(data))
    assert scan.complete_size <= len(data)
    try:
        split = fmp4.split_stream(data, have_init=False)
    except fmp4.BoxError:
        return
    assert split.consumed <= len(data)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(min_value=0), value=st.integers(0, 255))
def test_one_corrupted_byte_in_a_real_segment(tmp_path: Path, position: int, value: int) -> None:
    data = _real_segment(tmp_path)
    index = position % len(data)
    corrupt = data[:index] + bytes([value]) + data[index + 1 :]
    scan = fmp4.scan_file(io.BytesIO(corrupt))
    assert scan.complete_size <= len(corrupt)
    for fragment in scan.fragments:
        assert fragment.end <= len(corrupt)
        assert sum(s.size for s in fragment.samples) <= fragment.size


_REAL: dict[str, bytes] = {}


def _real_segment(tmp_path: Path) -> bytes:
    """One small real segment, made once per test session."""
    if "segment" not in _REAL:
        from tests.support.media import encode_stamped, feed, stamped_source

        media = encode_stamped(tmp_path / "media", MediaSpec(seconds=3))
        with ClipStore(tmp_path / "store") as store:
            with (
                stamped_source(media) as source,
                store.open_writer("cam1", source.stream, retention=False) as writer,
            ):
                feed(writer, source)
            _REAL["segment"] = _segment_bytes(store)
    return _REAL["segment"]
