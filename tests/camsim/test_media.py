"""camsim.media: real encodes checked by ffprobe, the GOP/B-frame contract, and the disk cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camsim.media import (
    EncodedStream,
    StreamCache,
    VideoSpec,
    _spec_ident,
    encode_stream,
    gop_count,
    snapshot_jpeg,
)
from tests.support.ffprobe import ffprobe, video_stream

SPEC = VideoSpec(codec="h264", width=320, height=240, fps=15, gop=15, bitrate=300_000)
SPEC_HEVC = VideoSpec(codec="hevc", width=320, height=240, fps=15, gop=15, bitrate=300_000)
SPEC_B = VideoSpec(codec="h264", width=320, height=240, fps=15, gop=15, bitrate=300_000, bframes=2)


def _nal_type(nal: bytes, codec: str) -> int:
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


def _check_with_ffprobe(stream: EncodedStream, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / f"loop.{stream.spec.codec}"
    path.write_bytes(stream.annexb())
    info = video_stream(ffprobe(path, count_frames=True))
    assert info["codec_name"] == stream.spec.codec
    assert (info["width"], info["height"]) == (stream.spec.width, stream.spec.height)
    assert int(info["nb_read_frames"]) == len(stream.frames)
    assert (info["has_b_frames"] > 0) == (stream.spec.bframes > 0)
    return info


@pytest.mark.parametrize("spec", [SPEC, SPEC_HEVC], ids=["h264", "hevc"])
def test_encoded_loop_is_whole_fixed_gops_without_b_frames(spec: VideoSpec, tmp_path: Path) -> None:
    stream = StreamCache(tmp_path / "cache").get(spec, gop_count(spec, 2))
    assert len(stream.frames) == 2 * spec.gop
    assert [i for i, f in enumerate(stream.frames) if f.keyframe] == [0, spec.gop]
    _check_with_ffprobe(stream, tmp_path)
    # Parameter sets, SEI and AUDs are the server's to add; frames hold picture data only.
    stripped = {6, 7, 8, 9} if spec.codec == "h264" else {32, 33, 34, 35, 39, 40}
    for frame in stream.frames:
        assert frame.nal_units
        assert not {_nal_type(n, spec.codec) for n in frame.nal_units} & stripped
    expected = 2 if spec.codec == "h264" else 3
    assert len(stream.parameter_sets.nal_units()) == expected


def test_b_frame_loop_is_in_decode_order_with_presentation_offsets(tmp_path: Path) -> None:
    cache = StreamCache(tmp_path / "cache")
    gops = gop_count(SPEC_B, 2)
    stream = cache.get(SPEC_B, gops)
    _check_with_ffprobe(stream, tmp_path)
    assert [i for i, f in enumerate(stream.frames) if f.keyframe] == [0, SPEC_B.gop]
    offsets = [f.pts_offset for f in stream.frames]
    # Each GOP is closed: presented in its own span, keyframe first; references go out ahead
    # of the B-frames that use them (positive offsets), the B-frames follow (negative ones).
    assert sorted(i + o for i, o in enumerate(offsets)) == list(range(len(offsets)))
    assert all(offsets[i] == 0 for i in range(0, len(offsets), SPEC_B.gop))
    assert max(offsets) == stream.reorder_delay > 0 and min(offsets) < 0
    again = cache.load(SPEC_B, gops)
    assert again is not None and again.frames == stream.frames
    # Streams without B-frames keep the cache files they had before B-frames existed.
    assert "bframes" not in json.dumps(_spec_ident(SPEC))
    assert StreamCache(tmp_path).get(SPEC, gops).reorder_delay == 0


def test_bitrate_is_near_target(tmp_path: Path) -> None:
    spec = VideoSpec(width=640, height=360, fps=15, gop=30, bitrate=1_000_000)
    stream = StreamCache(tmp_path).get(spec, gop_count(spec, 4))
    # Noise in the picture makes the encoder spend its budget, as a real camera's sensor does.
    assert 0.7 * spec.bitrate < stream.actual_bitrate < 1.3 * spec.bitrate


def test_disk_cache_round_trip_and_atomic_files(tmp_path: Path) -> None:
    cache = StreamCache(tmp_path)
    gops = gop_count(SPEC, 2)
    first = cache.get(SPEC, gops)
    path = cache.path_for(SPEC, gops)
    assert path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    again = cache.load(SPEC, gops)
    assert again is not None
    assert again.frames == first.frames
    assert again.parameter_sets == first.parameter_sets
    # Another spec or another length is another file.
    assert cache.path_for(SPEC, gops + 1) != path
    other = VideoSpec(codec="h264", width=320, height=240, fps=15, gop=15, bitrate=310_000)
    assert cache.path_for(other, gops) != path


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]),  # one flipped byte in the frames
        lambda data: b"garbage" + data,
        lambda data: b"",
        lambda data: data[:8] + b"\xff\xff\xff\xff" + data[12:],  # absurd header length
    ],
    ids=["truncated", "flipped", "prefixed", "empty", "header-length"],
)
def test_damaged_cache_file_is_re_encoded(tmp_path: Path, damage: object) -> None:
    cache = StreamCache(tmp_path)
    gops = gop_count(SPEC, 2)
    good = cache.get(SPEC, gops)
    path = cache.path_for(SPEC, gops)
    assert callable(damage)
    path.write_bytes(damage(path.read_bytes()))
    assert cache.load(SPEC, gops) is None
    fresh = cache.get(SPEC, gops)
    assert len(fresh.frames) == len(good.frames)
    assert cache.load(SPEC, gops) is not None  # rewritten whole


def test_cache_file_for_another_spec_is_refused(tmp_path: Path) -> None:
    cache = StreamCache(tmp_path)
    gops = gop_count(SPEC, 2)
    cache.get(SPEC, gops)
    other = VideoSpec(codec="h264", width=320, height=240, fps=15, gop=15, bitrate=310_000)
    cache.path_for(SPEC, gops).rename(cache.path_for(other, gops))
    assert cache.load(other, gops) is None


def test_unwritable_cache_directory_still_encodes(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    stream = StreamCache(blocker / "camsim").get(SPEC, gop_count(SPEC, 2))
    assert len(stream.frames) == 2 * SPEC.gop


def test_encode_stream_is_cached_in_process(tmp_path: Path) -> None:
    first = encode_stream(SPEC, seconds=2, cache_dir=tmp_path)
    assert encode_stream(SPEC, seconds=2, cache_dir=tmp_path) is first
    assert encode_stream(SPEC, seconds=1.5, cache_dir=tmp_path) is first  # same whole GOPs


def test_gop_count_rounds_up_to_at_least_two_gops() -> None:
    assert gop_count(VideoSpec(), 6) == 3
    assert gop_count(VideoSpec(), 0.1) == 2
    assert gop_count(VideoSpec(fps=15, gop=15), 10.5) == 11
    for bad in (0, -1, float("nan"), float("inf"), 10_000):
        with pytest.raises(ValueError):
            gop_count(VideoSpec(), bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"codec": "mjpeg"},
        {"width": 321},
        {"width": 0},
        {"height": 100_000},
        {"fps": 0},
        {"gop": 0},
        {"bitrate": 10},
        {"fps": 15.5},
        {"width": True},
    ],
)
def test_video_spec_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        VideoSpec(**kwargs)  # type: ignore[arg-type]


def test_snapshot_is_a_jpeg_at_stream_resolution(tmp_path: Path) -> None:
    data = snapshot_jpeg(SPEC)
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    path = tmp_path / "snapshot.jpg"
    path.write_bytes(data)
    info = video_stream(ffprobe(path))
    assert info["codec_name"] == "mjpeg"
    assert (info["width"], info["height"]) == (SPEC.width, SPEC.height)
