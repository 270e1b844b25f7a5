"""One RTSP session: its RTP state (SSRC, sequence, timestamp offset) and where packets go.

A session's media leaves either on its RTSP connection (TCP interleaved, the way recorders pull
cameras) or as UDP datagrams to the client's ports. A TCP client that stops reading is not
allowed to grow memory: while its connection's write buffer is above the high-water mark its
frames are dropped, and it resumes at the next keyframe so its decoder never sees a broken
reference chain.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable
from typing import Protocol

import structlog

from .rtp import PacketRun, interleave, rtp_packets, sender_report, stamp

log = structlog.get_logger(__name__)


class Link(Protocol):
    """The RTSP connection as a session sees it."""

    @property
    def transport(self) -> asyncio.Transport | None: ...

    @property
    def writing_paused(self) -> bool: ...


class TcpSink:
    """RTP and RTCP interleaved on the RTSP connection (RFC 2326 §10.12)."""

    def __init__(self, link: Link, channel: int) -> None:
        self.link = link
        self.channel = channel
        self.rtcp_channel = channel + 1

    def transport_header(self, ssrc: int) -> str:
        return (
            f"RTP/AVP/TCP;unicast;interleaved={self.channel}-{self.rtcp_channel};"
            f'ssrc={ssrc:08X};mode="PLAY"'
        )

    def congested(self) -> bool:
        return self.link.writing_paused

    def send(self, buf: bytearray, offsets: tuple[int, ...]) -> None:
        transport = self.link.transport
        if transport is not None and not transport.is_closing():
            transport.write(buf)

    def send_rtcp(self, packet: bytes) -> None:
        transport = self.link.transport
        if transport is not None and not transport.is_closing():
            transport.write(interleave(self.rtcp_channel, packet))

    def close(self) -> None:
        """Nothing to release: the channels die with the connection."""


def open_rtp_sockets(host: str) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on `host`, on an even port and the next one if that can be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(32):
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, 0))
        except OSError:
            rtp.close()
            raise
        port = rtp.getsockname()[1]
        if port % 2 == 0:
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtcp.bind((host, port + 1))
            except OSError:
                rtcp.close()
            else:
                return rtp, rtcp
        rtp.close()
    # Busy machine: any two ports will do, the Transport header names both.
    rtp = socket.socket(family, socket.SOCK_DGRAM)
    rtcp = socket.socket(family, socket.SOCK_DGRAM)
    try:
        rtp.bind((host, 0))
        rtcp.bind((host, 0))
    except OSError:
        rtp.close()
        rtcp.close()
        raise
    return rtp, rtcp


class UdpSink:
    """RTP to the client's RTP port and RTCP to its RTCP port, at the connection's peer address.

    The destination address is always the RTSP peer: a Transport `destination=` parameter is
    ignored, so camsim can never be made to send a stream to a third party.
    """

    def __init__(
        self,
        *,
        local_host: str,
        peer_host: str,
        client_ports: tuple[int, int],
        on_activity: Callable[[], None],
    ) -> None:
        self._rtp, self._rtcp = open_rtp_sockets(local_host)
        self._peer_host = peer_host
        self._rtp_dest = (peer_host, client_ports[0])
        self._rtcp_dest = (peer_host, client_ports[1])
        self.client_ports = client_ports
        self._on_activity = on_activity
        self._loop = asyncio.get_running_loop()
        for sock in (self._rtp, self._rtcp):
            sock.setblocking(False)
            self._loop.add_reader(sock.fileno(), self._drain, sock)

    @property
    def server_ports(self) -> tuple[int, int]:
        return self._rtp.getsockname()[1], self._rtcp.getsockname()[1]

    def transport_header(self, ssrc: int) -> str:
        c1, c2 = self.client_ports
        s1, s2 = self.server_ports
        return (
            f"RTP/AVP;unicast;client_port={c1}-{c2};server_port={s1}-{s2};"
            f'ssrc={ssrc:08X};mode="PLAY"'
        )

    def _drain(self, sock: socket.socket) -> None:
        # Receiver reports (and NAT-punching packets) prove the client is alive.
        for _ in range(16):
            try:
                _, address = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if address[0] == self._peer_host:
                self._on_activity()

    def congested(self) -> bool:
        return False  # the kernel drops datagrams it cannot queue; nothing builds up here

    def send(self, buf: bytearray, offsets: tuple[int, ...]) -> None:
        for packet in rtp_packets(buf, offsets):
            try:
                self._rtp.sendto(packet, self._rtp_dest)
            except (BlockingIOError, InterruptedError):
                return  # socket buffer full: drop the rest of the frame, as a camera would
            except OSError as exc:  # e.g. ICMP port unreachable from an earlier datagram
                log.debug("rtsp_udp_send_failed", error=str(exc))
                return

    def send_rtcp(self, packet: bytes) -> None:
        try:
            self._rtcp.sendto(packet, self._rtcp_dest)
        except OSError as exc:
            log.debug("rtsp_udp_send_failed", error=str(exc))

    def close(self) -> None:
        for sock in (self._rtp, self._rtcp):
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                sock.close()


Sink = TcpSink | UdpSink


class RtspSession:
    """State of one client's stream between SETUP and TEARDOWN (or expiry)."""

    def __init__(
        self,
        *,
        session_id: str,
        path: str,
        control_uri: str,
        cname: str,
        rtcp_interval: float,
        now: float,
    ) -> None:
        self.id = session_id
        self.path = path
        self.control_uri = control_uri
        self.cname = cname
        self.sink: Sink | None = None
        # Random initial values, as RFC 3550 §5.1 asks, so streams of different sessions differ.
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.ts_offset = secrets.randbits(32)
        self.playing = False
        self.play_info: tuple[int, int] = (self.seq, self.ts_offset)
        self.need_keyframe = True
        self.last_activity = now
        self.packets_sent = 0
        self.octets_sent = 0
        self.frames_sent = 0
        self._rtcp_interval = rtcp_interval
        self._next_report = 0.0

    def touch(self, now: float) -> None:
        self.last_activity = now

    def deliver(
        self, run: PacketRun, *, keyframe: bool, ticks: int, wallclock: float, now: float
    ) -> None:
        """Send one frame (already composed with its SEI and, on keyframes, parameter sets)."""
        sink = self.sink
        if sink is None:
            return
        if sink.congested():
            self.need_keyframe = True
            return
        if self.need_keyframe:
            if not keyframe:
                return
            self.need_keyframe = False
        timestamp = (self.ts_offset + ticks) & 0xFFFFFFFF
        if now >= self._next_report:
            # First report goes before the first frame, so the client can map times at once.
            self._next_report = now + self._rtcp_interval
            sink.send_rtcp(
                sender_report(
                    ssrc=self.ssrc,
                    wallclock=wallclock,
                    rtp_time=timestamp,
                    packets=self.packets_sent,
                    octets=self.octets_sent,
                    cname=self.cname,
                )
            )
        buf = bytearray(run.data)
        channel = sink.channel if isinstance(sink, TcpSink) else 0
        stamp(
            buf,
            run.offsets,
            channel=channel,
            first_seq=self.seq,
            timestamp=timestamp,
            ssrc=self.ssrc,
        )
        self.seq = (self.seq + run.count) & 0xFFFF
        self.packets_sent += run.count
        self.octets_sent += run.payload_bytes
        self.frames_sent += 1
        sink.send(buf, run.offsets)

    def close(self) -> None:
        self.playing = False
        if self.sink is not None:
            self.sink.close()
            self.sink = None
