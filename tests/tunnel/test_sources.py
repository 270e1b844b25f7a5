"""Which video a live session gets: the recorder's fan-out for the recorded stream, otherwise an
RTSP session of its own whose URL comes from the owner's configuration and the vendor's
documented paths — never from the request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.compat import load_profiles
from agent.config import CameraConfig
from agent.recorder import LiveHub
from agent.tunnel import LiveSources, SourceUnavailable, counterpart_path
from agent.tunnel.sources import Profile


@pytest.mark.parametrize(
    ("path", "have", "want", "expected"),
    [
        ("/Streaming/Channels/101", "main", "sub", "/Streaming/Channels/102"),
        ("/Streaming/Channels/102", "sub", "main", "/Streaming/Channels/101"),
        (
            "/cam/realmonitor?channel=1&subtype=0",
            "main",
            "sub",
            "/cam/realmonitor?channel=1&subtype=1",
        ),
        ("/stream1", "main", "sub", "/stream2"),
        ("/h264Preview_01_main", "main", "sub", "/h264Preview_01_sub"),
        ("/h265Preview_01_main", "main", "sub", None),  # listed without a sub counterpart
        ("/no/such/path", "main", "sub", None),
        # Recorder channels (issue 13): the same channel's other stream.
        ("/Streaming/Channels/501", "main", "sub", "/Streaming/Channels/502"),
        (
            "/cam/realmonitor?channel=7&subtype=0",
            "main",
            "sub",
            "/cam/realmonitor?channel=7&subtype=1",
        ),
        ("/unicast/c4/s1/live", "sub", "main", "/unicast/c4/s0/live"),
    ],
)
def test_counterpart_paths(path: str, have: Profile, want: Profile, expected: str | None) -> None:
    assert counterpart_path(path, have=have, want=want, profiles=load_profiles()) == expected


def _camera(**fields: Any) -> CameraConfig:
    base: dict[str, Any] = {"id": "front-door", "name": "Front door"}
    return CameraConfig(**{**base, **fields})


def _sources(camera: CameraConfig, tmp_path: Path) -> LiveSources:
    return LiveSources(LiveHub([camera.id]), [camera], state_dir=tmp_path)


async def test_the_recorded_stream_comes_from_the_fan_out(tmp_path: Path) -> None:
    camera = _camera(rtsp_url="rtsp://10.0.0.5/Streaming/Channels/101")
    sources = _sources(camera, tmp_path)
    opened = await sources.open("front-door", "main", max_queue_bytes=1000)
    try:
        assert opened.origin == "recorder"
        assert sources.live.subscriber_count("front-door") == 1
    finally:
        await opened.close()
    assert sources.live.subscriber_count("front-door") == 0


def test_another_profile_gets_the_vendor_counterpart_url(tmp_path: Path) -> None:
    camera = _camera(rtsp_url="rtsp://user:pw@10.0.0.5:554/Streaming/Channels/101")
    own = _sources(camera, tmp_path)._own_config(camera, "sub")
    assert own.rtsp_url == "rtsp://user:pw@10.0.0.5:554/Streaming/Channels/102"
    assert own.stream == "sub"
    with_query = _camera(rtsp_url="rtsp://10.0.0.6/cam/realmonitor?channel=1&subtype=0")
    own = _sources(with_query, tmp_path)._own_config(with_query, "sub")
    assert own.rtsp_url == "rtsp://10.0.0.6/cam/realmonitor?channel=1&subtype=1"


async def test_unknown_sub_stream_and_unknown_camera_are_refused(tmp_path: Path) -> None:
    camera = _camera(rtsp_url="rtsp://10.0.0.5/live/some-custom-path")
    sources = _sources(camera, tmp_path)
    with pytest.raises(SourceUnavailable, match="sub stream URL is not known"):
        await sources.open("front-door", "sub", max_queue_bytes=1000)
    with pytest.raises(SourceUnavailable, match="not configured"):
        await sources.open("back-door", "main", max_queue_bytes=1000)
