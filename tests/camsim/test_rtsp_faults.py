"""Faults on demand (unplug, stall) and hostile clients (garbage, huge or unfinished requests,
clients that stop reading): each gets what a camera gives, and the server keeps serving."""

from __future__ import annotations

import asyncio
import itertools
import socket

import av
import pytest

from camsim.faults import Faults
from camsim.media import VideoSpec, encode_stream
from camsim.rtsp import RtspLimits
from tests.camsim.conftest import PASSWORD, PATH, USER, ServerFactory, decode, url
from tests.support.rtsp_client import RtspClient, access_units


async def _still_serves(server_url: str) -> None:
    assert (await asyncio.to_thread(decode, server_url, 3))[3] == 3


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (or resets) the connection."""
    data = b""
    try:
        async with asyncio.timeout(10):
            while chunk := await reader.read(65536):
                data += chunk
    except ConnectionError:
        pass
    return data


async def test_unplug_drops_clients_and_refuses_new_ones_until_replug(
    rtsp_server: ServerFactory,
) -> None:
    faults = Faults()
    server = await rtsp_server(faults=faults)
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    idle = await RtspClient.connect("127.0.0.1", server.port)
    try:
        await client.start(url(server))
        await client.wait_frames(3, "h264")
        faults.unplug()
        await client.wait_closed()
        await idle.wait_closed()
        assert server.session_count == 0
        # New connections are cut at once, before a single reply.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        assert await _read_all(reader) == b""
        writer.close()
        with pytest.raises((av.error.FFmpegError, OSError)):
            await asyncio.to_thread(decode, url(server, credentials=True), 1)
        faults.replug()
        await _still_serves(url(server, credentials=True))
    finally:
        await client.close()
        await idle.close()


async def test_quick_unplug_replug_still_drops_old_connections(
    rtsp_server: ServerFactory,
) -> None:
    faults = Faults()
    server = await rtsp_server(faults=faults)
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    try:
        await client.start(url(server))
        await client.wait_frames(2, "h264")
        faults.unplug()
        faults.replug()  # faster than any poll: the generation counter still tells
        await client.wait_closed()
        await _still_serves(url(server, credentials=True))
    finally:
        await client.close()


async def test_stall_stops_media_but_rtsp_still_answers(rtsp_server: ServerFactory) -> None:
    faults = Faults()
    server = await rtsp_server(faults=faults)
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    try:
        await client.start(url(server))
        await client.wait_frames(3, "h264")
        faults.stall()
        await asyncio.sleep(0.3)  # whatever was in flight arrives
        stalled_at = len(client.packets)
        await asyncio.sleep(1.5)
        assert len(client.packets) == stalled_at
        reply = await client.request("GET_PARAMETER", url(server))
        assert reply.status == 200
        assert server.session_count == 1
        faults.unstall()
        await client.wait_frames(len(access_units(client.packets, "h264")) + 2, "h264")
        # The decoder missed frames, so the stream resumes on a keyframe.
        resumed = access_units(client.packets[stalled_at:], "h264")
        assert resumed[0].nal_types("h264")[:2] == [7, 8]
    finally:
        await client.close()


@pytest.mark.parametrize(
    "junk",
    [
        bytes(range(256)) * 4,  # binary junk
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64,  # TLS ClientHello
        b"GET / HTTP/1.1\r\nHost: camera\r\n\r\n",  # a browser on the RTSP port
        b"DESCRIBE rtsp://x/ RTSP/1.0\r\nCSeq: nope\r\n\r\n",
    ],
    ids=["binary", "tls", "http", "bad-cseq"],
)
async def test_garbage_gets_an_error_and_the_server_keeps_serving(
    rtsp_server: ServerFactory, junk: bytes
) -> None:
    server = await rtsp_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(junk)
    await writer.drain()
    reply = await _read_all(reader)
    writer.close()
    assert reply.startswith((b"RTSP/1.0 400 Bad Request\r\n", b"RTSP/1.0 505 "))
    await _still_serves(url(server, credentials=True))


async def test_ten_megabyte_header_line_is_refused_early(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"DESCRIBE rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 1\r\nX-Junk: ")
    sent = 0
    try:
        for _ in range(160):  # 10 MB in 64 KiB pieces, unless the camera hangs up first
            writer.write(b"A" * 65536)
            await writer.drain()
            sent += 65536
    except ConnectionError:
        pass
    reply = await _read_all(reader)
    writer.close()
    assert reply.startswith(b"RTSP/1.0 400 Bad Request\r\n")
    await _still_serves(url(server, credentials=True))


@pytest.mark.parametrize("slowloris", [False, True], ids=["half-request", "slowloris"])
async def test_unfinished_request_times_out_with_408(
    rtsp_server: ServerFactory, slowloris: bool
) -> None:
    server = await rtsp_server(limits=RtspLimits(request_timeout=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = b"DESCRIBE rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 1\r\n"
    answer = asyncio.create_task(_read_all(reader))
    if slowloris:
        for byte in head * 10:  # one byte every 0.1 s, each arrival "activity", until answered
            if answer.done():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)
    else:
        writer.write(head)
    reply = await answer
    writer.close()
    assert reply.startswith(b"RTSP/1.0 408 Request Timeout\r\n")
    await _still_serves(url(server, credentials=True))


async def test_idle_connection_without_session_is_closed(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server(limits=RtspLimits(session_timeout=1))
    client = await RtspClient.connect("127.0.0.1", server.port)
    try:
        assert (await client.request("OPTIONS", "*")).status == 200
        await client.wait_closed()
    finally:
        await client.close()


async def test_connection_limit(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server(limits=RtspLimits(max_connections=2))
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    assert await _read_all(reader) == b""
    writer.close()
    for _, w in held:
        w.close()
    await asyncio.sleep(0.1)
    await _still_serves(url(server, credentials=True))


async def test_client_that_stops_reading_skips_to_a_keyframe_and_blocks_no_one(
    rtsp_server: ServerFactory,
) -> None:
    # 250 kB/s, and small buffers (server write buffer, client socket and reader), so that
    # two seconds of not reading overflow them, whatever the kernel buffers on loopback.
    spec = VideoSpec(codec="h264", width=640, height=360, fps=15, gop=15, bitrate=2_000_000)
    stream = await asyncio.to_thread(encode_stream, spec, seconds=2)
    server = await rtsp_server(
        {PATH: stream},
        limits=RtspLimits(
            write_high_water=16 * 1024, write_low_water=4 * 1024, socket_send_buffer=16 * 1024
        ),
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    slow = RtspClient(reader, writer, username=USER, password=PASSWORD)
    try:
        await slow.start(url(server))
        await slow.wait_frames(2, "h264")
        slow.stop_reading()
        # Meanwhile another client is served normally.
        await _still_serves(url(server, credentials=True))
        await asyncio.sleep(2.0)
        slow.resume_reading()
        await slow.wait_frames(len(access_units(slow.packets, "h264")) + 20, "h264")
    finally:
        await slow.close()
    # Frames the server dropped leave no hole in the sequence numbers (nothing was lost in
    # transit) but a jump in the timestamps, and every jump lands on a keyframe.
    seqs = [p.seq for p in slow.packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    units = access_units(slow.packets, "h264")
    step = 90_000 // spec.fps
    jumps = [b for a, b in itertools.pairwise(units) if (b.timestamp - a.timestamp) % 2**32 != step]
    assert jumps, "frames should have been dropped for the client that stopped reading"
    for unit in jumps:
        assert unit.nal_types("h264")[:2] == [7, 8]
