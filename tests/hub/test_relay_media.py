"""The relay's check of what a publisher sends: real fMP4 passes with the right keyframe flags;
anything else, random or a mutation of the real thing, is a MediaError and nothing worse."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.media.fmp4 import TrackInfo
from camsim.sei import Codec
from hub.relay_media import InitInfo, MediaError, fragment_keyframe, parse_init
from tests.support.media import MediaSpec, encode_stamped
from tests.support.relay import Fmp4Stream, fmp4_stream

SPEC = MediaSpec(width=160, height=120, fps=10, gop=5, seconds=3)


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Fmp4Stream:
    media = tmp_path_factory.mktemp("relay-media-check")
    return fmp4_stream(encode_stamped(media, SPEC), media, fragment_seconds=0.2)


def test_real_fmp4_passes_with_its_keyframes(stream: Fmp4Stream) -> None:
    info = parse_init(stream.init)
    assert (info.codec_name, info.track.width, info.track.height) == ("h264", 160, 120)
    flags = [fragment_keyframe(data, info) for data, _ in stream.fragments]
    assert flags == [keyframe for _, keyframe in stream.fragments]
    assert flags[0] and not all(flags), "expected both keyframe and other fragments"


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_codec_string_matches_ffprobe(
    tmp_path_factory: pytest.TempPathFactory, codec: Codec
) -> None:
    """The RFC 6381 string a browser is asked about, against ffprobe's reading of the same
    stream (profile and level), both H.264 and H.265."""
    media = tmp_path_factory.mktemp(f"codecs-{codec}")
    spec = MediaSpec(codec=codec, width=160, height=120, fps=10, gop=5, seconds=1)
    made = fmp4_stream(encode_stamped(media, spec), media)
    codecs = parse_init(made.init).codecs
    path = next(media.glob("*-frag.mp4"))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_tag_string,profile,level", "-of", "json", str(path)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    [facts] = json.loads(probe.stdout)["streams"]
    parts = codecs.split(".")
    assert parts[0] == facts["codec_tag_string"]
    if codec == "h264":
        assert len(parts) == 2 and int(parts[1][4:], 16) == facts["level"]
    else:
        # hvc1.<profile>.<compat>.L<level>[.<constraints>]: Main profile (1), its level.
        assert parts[1] == "1" and parts[3] == f"L{facts['level']}", codecs


def test_init_and_fragment_are_not_interchangeable(stream: Fmp4Stream) -> None:
    info = parse_init(stream.init)
    with pytest.raises(MediaError):
        parse_init(stream.fragments[0][0])
    with pytest.raises(MediaError):
        fragment_keyframe(stream.init, info)
    with pytest.raises(MediaError):
        fragment_keyframe(stream.fragments[0][0] + stream.fragments[1][0], info)


def _check(data: bytes, info: InitInfo | None) -> None:
    try:
        if info is None:
            parse_init(data)
        else:
            fragment_keyframe(data, info)
    except MediaError:
        pass


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096), st.booleans())
def test_random_bytes_are_refused_cleanly(data: bytes, as_init: bool) -> None:
    _check(data, None if as_init else InitInfo(TrackInfo(1, 90000, "avc1", 160, 120)))


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.data(),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    st.booleans(),
)
def test_mutated_fmp4_is_refused_or_read_cleanly(
    stream: Fmp4Stream,
    data: st.DataObject,
    edits: list[tuple[int, int]],
    mutate_init: bool,
) -> None:
    index = data.draw(st.integers(0, len(stream.fragments) - 1))
    target = bytearray(stream.init if mutate_init else stream.fragments[index][0])
    for position, value in edits:
        target[position % len(target)] = value
    cut = data.draw(st.integers(0, len(target)))
    mutated = bytes(target[:cut])
    _check(mutated, None if mutate_init else parse_init(stream.init))


def test_size_limits(stream: Fmp4Stream) -> None:
    info = parse_init(stream.init)
    huge = b"\x00\x00\x00\x08free" * (3 * 1024 * 1024)
    with pytest.raises(MediaError, match="limit"):
        parse_init(huge)
    with pytest.raises(MediaError, match="limit"):
        fragment_keyframe(huge, info)
    # A box that claims more than the message holds.
    with pytest.raises(MediaError, match="truncated"):
        parse_init(b"\x00\x00\x10\x00moov" + bytes(16))
    # A 64-bit size smaller than its header.
    with pytest.raises(MediaError):
        parse_init(b"\x00\x00\x00\x01moov" + (4).to_bytes(8, "big"))
