"""The PyAV stream probe against real camsim RTSP streams (and things that are not streams).
Every snapshot it makes is checked by ffprobe."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.compat.probe import ProbeError, ProbeOptions, probe_stream
from agent.media.source import StreamSource, rtsp_source
from agent.neterrors import describe_network_error
from camsim.persona import StreamName
from tests.onvif.servers import closed_port, silent_server
from tests.support.camsim import CamsimRun, camera, run_cameras
from tests.support.ffprobe import ffprobe, video_stream

QUICK = ProbeOptions(open_timeout=3.0, read_timeout=3.0, max_seconds=4.0)


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    small = {"width": 640, "height": 360, "bitrate": 400_000}
    with run_cameras(
        camera("hikvision", id="hik"),
        camera("reolink", id="hevc"),
        camera("generic", id="long-gop", main={**small, "gop": 90}),  # a keyframe every 6 s
        camera("generic", id="stalled", main=small),
    ) as run:
        yield run


def source(
    cams: CamsimRun, name: str, stream: StreamName = "main", *, password: str | None = None
) -> StreamSource:
    cam = cams[name]
    return rtsp_source(
        cam.rtsp_url(stream),
        username=cam.username,
        password=password if password is not None else cam.password,
    )


def test_an_h264_stream_is_measured_and_snapshotted(cams: CamsimRun, tmp_path: Path) -> None:
    result = probe_stream(source(cams, "hik"), QUICK)
    assert (result.codec, result.profile, result.width, result.height) == (
        "h264",
        "High",
        1920,
        1080,
    )
    assert result.fps is not None and 14 < result.fps < 16
    assert result.keyframe_interval is not None and 1.8 < result.keyframe_interval < 2.2
    assert result.bitrate is not None and 3_000_000 < result.bitrate < 5_500_000
    assert result.keyframes == 2 and result.frames >= 29
    assert result.audio_codec is None
    assert result.url == cams["hik"].rtsp_url("main")  # no credentials in it
    assert result.snapshot is not None
    jpeg = tmp_path / "snapshot.jpg"
    jpeg.write_bytes(result.snapshot)
    picture = video_stream(ffprobe(jpeg))
    assert (picture["codec_name"], picture["width"], picture["height"]) == ("mjpeg", 1920, 1080)


def test_an_h265_stream_is_seen_for_what_it_is(cams: CamsimRun, tmp_path: Path) -> None:
    result = probe_stream(source(cams, "hevc"), QUICK)
    assert result.codec == "hevc" and (result.width, result.height) == (1920, 1080)
    assert result.snapshot is not None
    jpeg = tmp_path / "hevc.jpg"
    jpeg.write_bytes(result.snapshot)
    assert video_stream(ffprobe(jpeg))["width"] == 1920


def test_the_sub_stream_on_its_first_picture(cams: CamsimRun) -> None:
    options = ProbeOptions(keyframes=1, snapshot=False)
    result = probe_stream(source(cams, "hik", "sub"), options)
    assert (result.width, result.height) == (640, 360)
    assert result.keyframes == 1 and result.keyframe_interval is None
    assert result.snapshot is None


def test_a_keyframe_interval_longer_than_the_reading_window(cams: CamsimRun) -> None:
    result = probe_stream(source(cams, "long-gop"), ProbeOptions(max_seconds=3.0))
    assert result.keyframe_interval is None
    assert result.keyframe_interval_at_least is not None
    assert result.keyframe_interval_at_least >= 2.5
    assert result.fps is not None and 14 < result.fps < 16
    assert result.bitrate is not None


def test_wrong_password_is_named_and_not_shown(cams: CamsimRun) -> None:
    with pytest.raises(ProbeError) as caught:
        probe_stream(source(cams, "hik", password="Wrong-Passw0rd"), QUICK)
    assert caught.value.kind == "auth"
    assert "Wrong-Passw0rd" not in str(caught.value)


def test_a_wrong_path(cams: CamsimRun) -> None:
    cam = cams["hik"]
    url = cam.rtsp_url("main").replace("101", "109")
    with pytest.raises(ProbeError) as caught:
        probe_stream(rtsp_source(url, username=cam.username, password=cam.password), QUICK)
    assert caught.value.kind == "not_found"


def test_a_closed_rtsp_port() -> None:
    url = f"rtsp://127.0.0.1:{closed_port()}/stream"
    with pytest.raises(ProbeError) as caught:
        probe_stream(rtsp_source(url, username="u", password="secret-pw"), QUICK)
    assert caught.value.kind == "refused"
    assert "secret-pw" not in str(caught.value)


def test_a_server_that_never_speaks() -> None:
    options = ProbeOptions(open_timeout=1.0, read_timeout=1.0, max_seconds=1.0)
    with silent_server() as port:
        url = f"rtsp://127.0.0.1:{port}/stream"
        with pytest.raises(ProbeError) as caught:
            probe_stream(rtsp_source(url, username="u", password="secret-pw"), options)
    assert caught.value.kind in ("timeout", "error")
    assert "secret-pw" not in str(caught.value)


def test_a_stalled_stream_times_out(cams: CamsimRun) -> None:
    cam = cams["stalled"]
    cam.faults.stall()
    try:
        with pytest.raises(ProbeError) as caught:
            probe_stream(
                source(cams, "stalled"),
                ProbeOptions(open_timeout=1.5, read_timeout=1.5, max_seconds=1.5),
            )
    finally:
        cam.faults.unstall()
    assert caught.value.kind == "timeout"


def test_a_stream_that_breaks_off_says_so_in_words(cams: CamsimRun) -> None:
    """Issue 13, item 8: a connection dropped in the middle of the probe reached the user as
    "[Errno 1] Operation not permitted" (FFmpeg's bare -1); it must say what happened."""
    cam = cams["stalled"]
    cam.faults.drop_after_frames = 5  # well before the second keyframe (30 frames)
    try:
        with pytest.raises(ProbeError) as caught:
            probe_stream(source(cams, "stalled"), QUICK)
    finally:
        cam.faults.drop_after_frames = 0
    error = caught.value
    assert error.kind == "dropped", error
    assert str(error).startswith("the stream broke off after")
    assert "Errno" not in str(error) and "not permitted" not in str(error)
    assert cam.password not in str(error)


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (errno.EPERM, "closed or blocked on the way"),
        (errno.ECONNRESET, "reset the connection"),
        (errno.EHOSTUNREACH, "no route"),
        (errno.ETIMEDOUT, "got no answer"),
        (errno.EACCES, "firewall"),
    ],
)
def test_network_errors_in_words(number: int, words: str) -> None:
    described = describe_network_error(OSError(number, os.strerror(number)))
    assert described is not None and words in described
    assert describe_network_error(ValueError("x")) is None


def test_an_unresolvable_host_is_said_in_words() -> None:
    """Issue 12, item 10: FFmpeg reports an unknown host as "[Errno 5] Input/output error"."""
    with pytest.raises(ProbeError) as caught:
        probe_stream(
            rtsp_source("rtsp://no-such-camera.invalid/stream", username=None, password=None),
            QUICK,
        )
    said = str(caught.value)
    assert "no-such-camera.invalid" in said and "cannot be resolved" in said, said
    assert "Errno" not in said
