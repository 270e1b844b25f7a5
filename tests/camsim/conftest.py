"""Fixtures for camsim's media and RTSP tests: small real encodings and real servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import av
import pytest

from camsim.media import EncodedStream, VideoSpec, encode_stream
from camsim.rtsp import RtspServer

USER = "admin"
PASSWORD = "cam-secret:1"  # a colon in the password is legal for Digest
PATH = "/Streaming/Channels/101"
# A few seconds of small video: cheap to encode, decode and send, still real H.264/H.265.
SMALL_H264 = VideoSpec(codec="h264", width=320, height=240, fps=15, gop=15, bitrate=300_000)
SMALL_HEVC = VideoSpec(codec="hevc", width=320, height=240, fps=15, gop=15, bitrate=300_000)

ServerFactory = Callable[..., Awaitable[RtspServer]]


@pytest.fixture(scope="session")
def h264_stream() -> EncodedStream:
    return encode_stream(SMALL_H264, seconds=2)


@pytest.fixture(scope="session")
def hevc_stream() -> EncodedStream:
    return encode_stream(SMALL_HEVC, seconds=2)


@pytest.fixture
async def rtsp_server(h264_stream: EncodedStream) -> AsyncIterator[ServerFactory]:
    """Start RtspServers on a free loopback port; all are closed at the end of the test."""
    servers: list[RtspServer] = []

    async def start(
        streams: Mapping[str, EncodedStream] | None = None, **kwargs: Any
    ) -> RtspServer:
        kwargs.setdefault("username", USER)
        kwargs.setdefault("password", PASSWORD)
        server = RtspServer(streams or {PATH: h264_stream}, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def url(server: RtspServer, path: str = PATH, *, credentials: bool = False) -> str:
    auth = f"{USER}:{PASSWORD.replace(':', '%3A')}@" if credentials else ""
    return f"rtsp://{auth}127.0.0.1:{server.port}{path}"


def decode(address: str, frames: int, *, transport: str = "tcp") -> tuple[str, int, int, int]:
    """Open with PyAV (FFmpeg's RTSP client) and decode `frames` pictures; blocking."""
    options = {"rtsp_transport": transport, "analyzeduration": "500000", "probesize": "65536"}
    with av.open(address, options=options, timeout=10) as container:
        stream = container.streams.video[0]
        decoded = 0
        for packet in container.demux(stream):
            for frame in packet.decode():
                assert (frame.width, frame.height) == (stream.width, stream.height)
                decoded += 1
            if decoded >= frames:
                break
        return stream.codec_context.name, stream.width, stream.height, decoded
