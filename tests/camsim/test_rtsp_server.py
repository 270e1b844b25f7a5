"""camsim's RTSP server against real clients: PyAV and ffprobe decode it, the raw client checks
every packet (SEI capture times, RTP timing, RTP-Info), and each RTSP status a camera uses."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import struct
import subprocess
import time
from typing import Any

import av
import pytest

from camsim.media import EncodedStream, VideoSpec, encode_stream
from camsim.rtsp import RtspLimits
from camsim.rtsp.rtp import NTP_EPOCH_OFFSET
from camsim.sei import read_stamps
from tests.camsim.conftest import PASSWORD, PATH, USER, ServerFactory, decode, url
from tests.support.rtsp_client import RtspClient, access_units

DAHUA_PATH = "/cam/realmonitor?channel=1&subtype=0"


def ffprobe_rtsp(address: str) -> dict[str, Any]:
    exe = shutil.which("ffprobe")
    assert exe is not None, "ffprobe is not installed (Debian package ffmpeg)"
    proc = subprocess.run(
        [exe, "-v", "error", "-rtsp_transport", "tcp", "-print_format", "json",
         "-show_streams", address],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    info: dict[str, Any] = json.loads(proc.stdout)
    return next(s for s in info["streams"] if s["codec_type"] == "video")


async def test_pyav_decodes_h264_over_tcp_with_digest(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server()
    result = await asyncio.to_thread(decode, url(server, credentials=True), 20)
    assert result == ("h264", 320, 240, 20)


async def test_pyav_decodes_hevc(rtsp_server: ServerFactory, hevc_stream: EncodedStream) -> None:
    server = await rtsp_server({PATH: hevc_stream})
    result = await asyncio.to_thread(decode, url(server, credentials=True), 20)
    assert result == ("hevc", 320, 240, 20)


async def test_pyav_decodes_over_udp(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server()
    result = await asyncio.to_thread(decode, url(server, credentials=True), 20, transport="udp")
    assert result == ("h264", 320, 240, 20)


async def test_ffprobe_reads_the_stream(
    rtsp_server: ServerFactory, hevc_stream: EncodedStream
) -> None:
    server = await rtsp_server({PATH: hevc_stream, DAHUA_PATH: hevc_stream})
    info = await asyncio.to_thread(ffprobe_rtsp, url(server, DAHUA_PATH, credentials=True))
    assert (info["codec_name"], info["width"], info["height"]) == ("hevc", 320, 240)
    assert info["has_b_frames"] == 0


async def test_several_clients_and_paths_at_once(
    rtsp_server: ServerFactory, h264_stream: EncodedStream, hevc_stream: EncodedStream
) -> None:
    server = await rtsp_server({PATH: h264_stream, DAHUA_PATH: hevc_stream})
    results = await asyncio.gather(
        asyncio.to_thread(decode, url(server, credentials=True), 20),
        asyncio.to_thread(decode, url(server, credentials=True), 20, transport="udp"),
        asyncio.to_thread(decode, url(server, DAHUA_PATH, credentials=True), 20),
    )
    assert [r[0] for r in results] == ["h264", "h264", "hevc"]
    assert all(r[3] == 20 for r in results)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
async def test_every_frame_carries_its_capture_time(
    rtsp_server: ServerFactory,
    h264_stream: EncodedStream,
    hevc_stream: EncodedStream,
    codec: str,
) -> None:
    stream = h264_stream if codec == "h264" else hevc_stream
    server = await rtsp_server({PATH: stream})
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    try:
        play = await client.start(url(server))
        assert play.status == 200
        await client.wait_frames(20, stream.spec.codec)
    finally:
        await client.close()
    units = [u for u in access_units(client.packets, stream.spec.codec) if u.complete]
    assert len(units) >= 20
    # PLAY's RTP-Info names exactly the first packet sent.
    info = dict(p.split("=", 1) for p in play.headers["rtp-info"].split(";")[1:])
    first = client.packets[0]
    assert (int(info["seq"]), int(info["rtptime"])) == (first.seq, first.timestamp)
    # The session starts on a keyframe: parameter sets, then the SEI, then the picture.
    key_types = units[0].nal_types(stream.spec.codec)
    if codec == "h264":
        assert key_types == [7, 8, 6, 5]
    else:
        assert key_types[:4] == [32, 33, 34, 39] and 16 <= key_types[4] <= 21
    numbers = []
    for unit in units:
        (stamp,) = unit.stamps(stream.spec.codec)
        # Sent with the true wall-clock time: received (on loopback) within 100 ms of it.
        assert abs(unit.received_at - stamp.capture_time) < 0.1
        numbers.append(stamp.frame_number)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    step = 90_000 // stream.spec.fps
    assert all((b.timestamp - a.timestamp) % 2**32 == step for a, b in itertools.pairwise(units))
    seqs = [p.seq for p in client.packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    assert len({p.ssrc for p in client.packets}) == 1


def _stamped_packets(address: str, count: int) -> list[tuple[int, float, bool]]:
    """(pts, SEI capture time, keyframe) of the first `count` packets PyAV demuxes that have a
    pts, in the order they arrive."""
    options = {"rtsp_transport": "tcp", "analyzeduration": "500000", "probesize": "65536"}
    out: list[tuple[int, float, bool]] = []
    with av.open(address, options=options, timeout=10) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            stamps = read_stamps(bytes(packet), "h264", length_prefixed=False)
            if packet.pts is not None and stamps:
                out.append((packet.pts, stamps[0].capture_time, packet.is_keyframe))
            if len(out) >= count:
                return out
    return out


async def test_b_frames_go_out_in_decode_order_with_presentation_times(
    rtsp_server: ServerFactory,
) -> None:
    spec = VideoSpec(width=320, height=240, fps=15, gop=15, bitrate=300_000, bframes=2)
    stream = await asyncio.to_thread(encode_stream, spec, seconds=2)
    server = await rtsp_server({PATH: stream})
    packets = await asyncio.to_thread(_stamped_packets, url(server, credentials=True), 40)
    pts = [p for p, _, _ in packets]
    assert pts != sorted(pts), "frames must arrive out of presentation order"
    # RTP carries presentation times, and the SEI capture time is the picture's own: both run
    # evenly in presentation order, one frame interval apart.
    shown = sorted(packets)[:-3]  # the last reference's B-frames may not have arrived yet
    for (pts_a, captured_a, _), (pts_b, captured_b, _) in itertools.pairwise(shown):
        assert pts_b - pts_a == 90_000 // 15
        # Stamped when sent: a loaded machine delays a frame (camsim skips past 0.5 s late).
        assert 0 <= captured_b - captured_a < 0.5 + 1 / 15
    # ... and catches up: over the run the pictures are one frame interval apart on average.
    span = shown[-1][1] - shown[0][1]
    assert abs(span / (len(shown) - 1) - 1 / 15) < 0.5 / 15, span


async def test_sdp_describes_the_stream(
    rtsp_server: ServerFactory, h264_stream: EncodedStream, hevc_stream: EncodedStream
) -> None:
    server = await rtsp_server({PATH: h264_stream, DAHUA_PATH: hevc_stream})
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    try:
        reply = await client.request("DESCRIBE", url(server))
        assert reply.status == 200
        assert reply.header("content-type") == "application/sdp"
        assert reply.header("content-base") == url(server) + "/"
        sdp = reply.body.decode()
        ps = h264_stream.parameter_sets
        sprop = f"{base64.b64encode(ps.sps).decode()},{base64.b64encode(ps.pps).decode()}"
        assert f"sprop-parameter-sets={sprop}" in sdp
        assert f"profile-level-id={ps.sps[1:4].hex().upper()}" in sdp
        assert "a=rtpmap:96 H264/90000" in sdp and "a=control:trackID=1" in sdp
        reply = await client.request("DESCRIBE", url(server, DAHUA_PATH))
        sdp = reply.body.decode()
        vps = hevc_stream.parameter_sets.vps
        assert vps is not None
        assert f"sprop-vps={base64.b64encode(vps).decode()}" in sdp
        assert "a=rtpmap:96 H265/90000" in sdp
        assert reply.header("content-base") == url(server, DAHUA_PATH) + "/"
    finally:
        await client.close()


async def test_wrong_password_gets_401_and_pyav_fails(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server()
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password="wrong")
    try:
        reply = await client.request("DESCRIBE", url(server))
        assert reply.status == 401
        assert (reply.header("www-authenticate") or "").startswith('Digest realm="camsim"')
        # Without credentials at all: the same challenge, and OPTIONS stays open as on cameras.
        anonymous = await RtspClient.connect("127.0.0.1", server.port)
        try:
            assert (await anonymous.request("DESCRIBE", url(server))).status == 401
            assert (await anonymous.request("SETUP", url(server) + "/trackID=1")).status == 401
            assert (await anonymous.request("OPTIONS", url(server))).status == 200
        finally:
            await anonymous.close()
    finally:
        await client.close()
    bad = f"rtsp://{USER}:wrong@127.0.0.1:{server.port}{PATH}"
    with pytest.raises(av.error.FFmpegError):
        await asyncio.to_thread(decode, bad, 1)
    assert server.session_count == 0


async def test_expired_nonce_is_stale_and_the_client_carries_on(
    rtsp_server: ServerFactory,
) -> None:
    server = await rtsp_server(limits=RtspLimits(nonce_lifetime=0.5))
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    try:
        await client.start(url(server))
        (first,) = client.challenges  # DESCRIBE without credentials
        assert first.startswith('Digest realm="camsim", nonce="') and "stale=FALSE" in first
        await asyncio.sleep(1.0)
        # Same password, old nonce: told it is stale, answers the new nonce, keeps its session.
        reply = await client.request("GET_PARAMETER", url(server))
        assert reply.status == 200 and reply.header("session") is not None
        assert len(client.challenges) == 2 and "stale=TRUE" in client.challenges[1]
        await client.wait_frames(2, "h264")
    finally:
        await client.close()


@pytest.mark.parametrize("mode", ["basic", "none"])
async def test_basic_and_no_auth_personas(rtsp_server: ServerFactory, mode: str) -> None:
    server = await rtsp_server(auth=mode)
    address = url(server, credentials=mode == "basic")
    assert (await asyncio.to_thread(decode, address, 5))[3] == 5
    if mode == "basic":
        client = await RtspClient.connect("127.0.0.1", server.port)
        try:
            reply = await client.request("DESCRIBE", url(server))
            assert reply.status == 401
            assert reply.header("www-authenticate") == 'Basic realm="camsim"'
        finally:
            await client.close()


async def test_error_statuses(rtsp_server: ServerFactory, h264_stream: EncodedStream) -> None:
    server = await rtsp_server({PATH: h264_stream, DAHUA_PATH: h264_stream})
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    base = url(server)
    tcp = {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
    try:
        assert (await client.request("DESCRIBE", url(server, "/nope"))).status == 404
        assert (await client.request("PLAY", base)).status == 455  # no session yet
        assert (await client.request("SETUP", base + "/trackID=1")).status == 400  # no Transport
        multicast = {"Transport": "RTP/AVP;multicast"}
        assert (await client.request("SETUP", base + "/trackID=1", headers=multicast)).status == 461
        reply = await client.request("SETUP", base + "/trackID=1", headers=tcp)
        assert reply.status == 200
        assert reply.header("session") == f"{client.session};timeout=60"
        transport = reply.header("transport") or ""
        assert transport.startswith("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=")
        assert (await client.request("PLAY", url(server, DAHUA_PATH))).status == 459
        assert (await client.request("PLAY", base, headers={"Range": "clock=x-"})).status == 457
        assert (await client.request("RECORD", base)).status == 405
        assert (await client.request("FROB", base)).status == 501
        assert (await client.request("PLAY", base, headers={"Require": "x-thing"})).status == 551
        params = await client.request("GET_PARAMETER", base, body=b"position\r\n")
        assert params.status == 451
        good = client.session
        client.session = "DEADBEEF"
        assert (await client.request("PLAY", base)).status == 454
        assert (await client.request("TEARDOWN", base)).status == 454
        client.session = good
        assert (await client.request("PLAY", base)).status == 200
        # A playing session cannot change transport; a ready one can.
        assert (await client.request("SETUP", base + "/trackID=1", headers=tcp)).status == 455
        assert (await client.request("PAUSE", base)).status == 200
        udp = {"Transport": "RTP/AVP;unicast;client_port=40000-40001"}
        reply = await client.request("SETUP", base + "/trackID=1", headers=udp)
        assert reply.status == 200 and "server_port=" in (reply.header("transport") or "")
        assert (await client.request("TEARDOWN", base)).status == 200
        assert server.session_count == 0
        # None of the refusals above cost the connection.
        assert (await client.request("OPTIONS", "*", session=False)).status == 200
    finally:
        await client.close()


async def test_fifth_session_gets_453(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server()
    clients = [
        await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
        for _ in range(5)
    ]
    try:
        for client in clients[:4]:
            assert (await client.start(url(server))).status == 200
        assert server.session_count == 4
        fifth = clients[4]
        await fifth.request("DESCRIBE", url(server))
        reply = await fifth.request(
            "SETUP",
            url(server) + "/trackID=1",
            headers={"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"},
        )
        assert reply.status == 453
        assert server.session_count == 4
        await clients[0].request("TEARDOWN", url(server))
        assert server.session_count == 3
        assert (await fifth.start(url(server))).status == 200
        for client in clients[1:]:
            await client.wait_frames(2, "h264")
    finally:
        for client in clients:
            await client.close()


async def test_pause_then_play_resumes(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server()
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    try:
        await client.start(url(server))
        await client.wait_frames(5, "h264")
        assert (await client.request("PAUSE", url(server))).status == 200
        paused_at = len(client.packets)
        await asyncio.sleep(1.5)  # more than a frame interval and a GOP boundary
        # Nothing after the PAUSE reply; the connection and session stay.
        assert len(client.packets) == paused_at
        play = await client.request("PLAY", url(server))
        assert play.status == 200
        await client.wait_frames(len(access_units(client.packets, "h264")) + 3, "h264")
    finally:
        await client.close()
    resumed = client.packets[paused_at]
    info = dict(p.split("=", 1) for p in play.headers["rtp-info"].split(";")[1:])
    # Sequence numbers continue; the timestamp jumps by the paused time; a keyframe comes first.
    assert int(info["seq"]) == resumed.seq == (client.packets[paused_at - 1].seq + 1) % 65536
    assert int(info["rtptime"]) == resumed.timestamp
    later = [u for u in access_units(client.packets[paused_at:], "h264")]
    assert later[0].nal_types("h264")[:2] == [7, 8]


async def test_session_expires_without_keepalive(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server(limits=RtspLimits(session_timeout=1))
    kept = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    idle = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    try:
        await kept.start(url(server))
        await idle.start(url(server))
        assert server.session_count == 2
        assert (await kept.request("GET_PARAMETER", url(server))).header("session") == (
            f"{kept.session};timeout=1"
        )
        for _ in range(8):  # 2 s of keep-alives at a quarter of the timeout
            await asyncio.sleep(0.25)
            assert (await kept.request("GET_PARAMETER", url(server))).status == 200
        # The silent client's session expired and the camera closed its connection.
        await idle.wait_closed()
        assert server.session_count == 1
        count = len(kept.packets)
        await kept.wait_packets(count + 1)
    finally:
        await kept.close()
        await idle.close()


async def test_sender_reports_use_the_camera_clock(rtsp_server: ServerFactory) -> None:
    server = await rtsp_server(clock_offset=3600.0, limits=RtspLimits(rtcp_interval=0.2))
    client = await RtspClient.connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    try:
        await client.start(url(server))
        await client.wait_frames(8, "h264")
    finally:
        await client.close()
    reports = [data for channel, data in client.rtcp if channel == 1 and data[1] == 200]
    assert len(reports) >= 2
    ssrc, seconds, fraction, rtp_time = struct.unpack(">IIII", reports[-1][4:20])
    assert ssrc == client.packets[0].ssrc
    ntp = seconds - NTP_EPOCH_OFFSET + fraction / 2**32
    # The camera is an hour fast; SEI times stay true (checked above), RTCP shows the skew.
    assert abs(ntp - (time.time() + 3600)) < 30
    sent = {p.timestamp for p in client.packets}
    assert rtp_time in sent  # the report pairs a real frame's timestamp with its capture time
