"""The worker <-> daemon framing: round trips over a real socket pair, hostile frames."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.recorder.ipc import (
    MAX_PAYLOAD,
    ChannelClosed,
    ControlDecoder,
    InitSegment,
    Kind,
    LiveRequest,
    MediaFragment,
    ProtocolError,
    StatusReport,
    StopRequest,
    WorkerChannel,
    WorkerMessage,
    decode_worker_payload,
    encode_control,
    read_worker_message,
)


async def _daemon_end(sock: socket.socket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(sock=sock)


async def test_worker_messages_round_trip() -> None:
    parent, child = socket.socketpair()
    reader, writer = await _daemon_end(parent)
    channel = WorkerChannel(child)
    big = bytes(range(256)) * 4096  # 1 MiB: more than a socket buffer, sent in pieces
    sent: list[WorkerMessage] = [
        StatusReport(phase="recording", segment="cam-1.mp4", bytes_written=5, packets=3),
        InitSegment(epoch=2, data=b"ftyp-moov"),
        MediaFragment(
            epoch=2, keyframe=True, wall_us=1_700_000_000_000_000, duration_us=9, data=big
        ),
        MediaFragment(epoch=2, keyframe=False, wall_us=1, duration_us=0, data=b"x"),
    ]

    async def send_all() -> None:
        for message in sent:
            await asyncio.to_thread(channel.send, message)

    sender = asyncio.create_task(send_all())
    received = [await read_worker_message(reader) for _ in sent]
    await sender
    assert received == sent
    channel.close()
    assert await read_worker_message(reader) is None  # clean EOF between frames
    writer.close()


async def test_control_messages_reach_the_worker() -> None:
    parent, child = socket.socketpair()
    _reader, writer = await _daemon_end(parent)
    channel = WorkerChannel(child)
    assert channel.poll() == []
    writer.write(encode_control(LiveRequest(wanted=True)) + encode_control(StopRequest()))
    await writer.drain()
    got = await asyncio.to_thread(channel.poll, 5.0)
    assert got == [LiveRequest(wanted=True), StopRequest()]
    writer.close()
    await writer.wait_closed()
    with pytest.raises(ChannelClosed):
        await asyncio.to_thread(channel.poll, 5.0)
    with pytest.raises(ChannelClosed):
        channel.send(StatusReport(phase="stopping"))
    channel.close()


async def test_oversized_and_truncated_frames_are_protocol_errors() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(struct.pack(">IB", MAX_PAYLOAD + 1, Kind.FRAGMENT))
    with pytest.raises(ProtocolError, match="exceeds"):
        await read_worker_message(reader)
    reader = asyncio.StreamReader()
    reader.feed_data(struct.pack(">IB", 10, Kind.INIT) + b"abc")
    reader.feed_eof()
    with pytest.raises(ProtocolError, match="inside a frame"):
        await read_worker_message(reader)
    reader = asyncio.StreamReader()
    reader.feed_data(b"\x00\x00")
    reader.feed_eof()
    with pytest.raises(ProtocolError, match="header"):
        await read_worker_message(reader)


def test_bad_status_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_worker_payload(Kind.STATUS, b'{"phase": "dancing"}')
    with pytest.raises(ProtocolError):
        decode_worker_payload(Kind.STATUS, b'{"phase": "recording", "extra": 1}')
    with pytest.raises(ProtocolError):
        decode_worker_payload(Kind.STATUS, b"\xff\xfe")
    with pytest.raises(ProtocolError, match="unknown message kind"):
        decode_worker_payload(99, b"")


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=64))
def test_any_worker_payload_decodes_or_is_a_protocol_error(kind: int, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_worker_payload(kind, payload)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.binary(max_size=24), max_size=8))
def test_control_decoder_never_raises_anything_else(chunks: list[bytes]) -> None:
    decoder = ControlDecoder()
    try:
        for chunk in chunks:
            for message in decoder.feed(chunk):
                assert isinstance(message, StopRequest | LiveRequest)
    except ProtocolError:
        pass


def test_control_decoder_reassembles_split_frames() -> None:
    data = encode_control(LiveRequest(wanted=False)) + encode_control(StopRequest())
    decoder = ControlDecoder()
    out = []
    for byte in data:
        out += decoder.feed(bytes([byte]))
    assert out == [LiveRequest(wanted=False), StopRequest()]
