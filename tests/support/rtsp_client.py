"""A raw RTSP client for tests: exact control over what is sent, and every RTP packet received
with the time it arrived.

PyAV and ffprobe are the independent clients the tests trust for "a real decoder can play it";
this one exists to send what real clients never would (garbage, stale sessions, a 5th session,
a client that stops reading) and to look at packets one by one (SEI timing, sequence numbers,
marker bits, what follows a pause or a stall).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from camsim.sei import Codec, FrameStamp, read_stamps


class RtspClientError(AssertionError):
    pass


@dataclass(frozen=True)
class RtspResponse:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class RtpPacket:
    channel: int
    marker: bool
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes
    received_at: float  # time.time()

    @classmethod
    def parse(cls, channel: int, data: bytes, received_at: float) -> RtpPacket:
        if len(data) < 12 or data[0] >> 6 != 2:
            raise RtspClientError(f"not an RTP packet: {data[:16].hex()}")
        csrc = data[0] & 0x0F
        start = 12 + 4 * csrc
        return cls(
            channel=channel,
            marker=bool(data[1] & 0x80),
            payload_type=data[1] & 0x7F,
            seq=int.from_bytes(data[2:4], "big"),
            timestamp=int.from_bytes(data[4:8], "big"),
            ssrc=int.from_bytes(data[8:12], "big"),
            payload=data[start:],
            received_at=received_at,
        )


@dataclass
class AccessUnit:
    timestamp: int
    first_seq: int
    nal_units: list[bytes] = field(default_factory=list)
    received_at: float = 0.0  # arrival of its last packet
    complete: bool = False  # ended with a marker bit

    def annexb(self) -> bytes:
        return b"".join(b"\x00\x00\x00\x01" + nal for nal in self.nal_units)

    def stamps(self, codec: Codec) -> list[FrameStamp]:
        return read_stamps(self.annexb(), codec, length_prefixed=False)

    def nal_types(self, codec: Codec) -> list[int]:
        if codec == "h264":
            return [nal[0] & 0x1F for nal in self.nal_units]
        return [(nal[0] >> 1) & 0x3F for nal in self.nal_units]


def access_units(packets: Sequence[RtpPacket], codec: Codec) -> list[AccessUnit]:
    """Reassemble RTP payloads (single NAL, H.264 FU-A, H.265 FU) into access units."""
    units: list[AccessUnit] = []
    current: AccessUnit | None = None
    fragment = bytearray()
    for packet in packets:
        if current is None or packet.timestamp != current.timestamp or current.complete:
            current = AccessUnit(packet.timestamp, packet.seq)
            units.append(current)
            fragment.clear()
        payload = packet.payload
        if codec == "h264":
            kind = payload[0] & 0x1F
            if kind == 28:
                fu = payload[1]
                if fu & 0x80:
                    fragment[:] = bytes([(payload[0] & 0xE0) | (fu & 0x1F)])
                fragment += payload[2:]
                if fu & 0x40:
                    current.nal_units.append(bytes(fragment))
            else:
                current.nal_units.append(payload)
        else:
            kind = (payload[0] >> 1) & 0x3F
            if kind == 49:
                fu = payload[2]
                if fu & 0x80:
                    fragment[:] = bytes([(payload[0] & 0x81) | ((fu & 0x3F) << 1), payload[1]])
                fragment += payload[3:]
                if fu & 0x40:
                    current.nal_units.append(bytes(fragment))
            else:
                current.nal_units.append(payload)
        current.received_at = packet.received_at
        current.complete = packet.marker
    return units


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _challenge_params(value: str) -> dict[str, str]:
    return {k.lower(): v for k, v in re.findall(r'(\w+)="?([^",]*)"?', value)}


class RtspClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        username: str | None,
        password: str | None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.username = username
        self.password = password
        self.cseq = 0
        self.session: str | None = None
        self.packets: list[RtpPacket] = []
        self.rtcp: list[tuple[int, bytes]] = []
        self.closed = asyncio.Event()
        self._responses: asyncio.Queue[RtspResponse] = asyncio.Queue()
        self._new_packet = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()
        self._digest: dict[str, str] | None = None
        self.challenges: list[str] = []  # every WWW-Authenticate received, in order
        self._task = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(
        cls, host: str, port: int, *, username: str | None = None, password: str | None = None
    ) -> RtspClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, username=username, password=password)

    # -- low level ------------------------------------------------------------------------

    async def send_raw(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def response(self, *, seconds: float = 10.0) -> RtspResponse:
        return await asyncio.wait_for(self._responses.get(), seconds)

    def stop_reading(self) -> None:
        """Stop consuming the socket, like a client whose disk or CPU cannot keep up."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    async def _read_loop(self) -> None:
        reader = self._reader
        try:
            while True:
                await self._reading.wait()
                first = await reader.readexactly(1)
                if first == b"$":
                    head = await reader.readexactly(3)
                    data = await reader.readexactly(int.from_bytes(head[1:3], "big"))
                    now = time.time()
                    if head[0] % 2 == 0:
                        self.packets.append(RtpPacket.parse(head[0], data, now))
                        self._new_packet.set()
                    else:
                        self.rtcp.append((head[0], data))
                    continue
                head_bytes = first + await reader.readuntil(b"\r\n\r\n")
                lines = head_bytes.decode().split("\r\n")
                _, status, reason = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        key = name.strip().lower()
                        value = value.strip()
                        headers[key] = f"{headers[key]}, {value}" if key in headers else value
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                await self._responses.put(RtspResponse(int(status), reason, headers, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            self._new_packet.set()

    # -- requests -------------------------------------------------------------------------

    def _authorization(self, method: str, uri: str) -> str | None:
        if self._digest is None or self.username is None or self.password is None:
            return None
        realm, nonce = self._digest["realm"], self._digest["nonce"]
        ha1 = _md5(f"{self.username}:{realm}:{self.password}")
        response = _md5(f"{ha1}:{nonce}:{_md5(f'{method}:{uri}')}")
        return (
            f'Digest username="{self.username}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}"'
        )

    async def request(
        self,
        method: str,
        uri: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        session: bool = True,
    ) -> RtspResponse:
        """Send a request; answer one Digest challenge if credentials were given."""
        for attempt in range(2):
            self.cseq += 1
            lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: camsim-test"]
            if session and self.session is not None:
                lines.append(f"Session: {self.session}")
            authorization = self._authorization(method, uri)
            if authorization is not None:
                lines.append(f"Authorization: {authorization}")
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            if body:
                lines.append(f"Content-Length: {len(body)}")
            await self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            reply = await self.response()
            if reply.header("cseq") != str(self.cseq):
                raise RtspClientError(f"CSeq {reply.header('cseq')} != {self.cseq}")
            challenge = reply.header("www-authenticate") or ""
            if reply.status == 401:
                self.challenges.append(challenge)
            if (
                reply.status == 401
                and attempt == 0
                and self.username is not None
                and challenge.startswith("Digest")
            ):
                self._digest = _challenge_params(challenge)
                continue
            if reply.header("session") and method == "SETUP":
                self.session = reply.headers["session"].split(";")[0]
            return reply
        raise AssertionError("unreachable")

    async def start(self, url: str, *, transport: str | None = None) -> RtspResponse:
        """DESCRIBE, SETUP the track (TCP interleaved unless told otherwise) and PLAY."""
        described = await self.request("DESCRIBE", url, headers={"Accept": "application/sdp"})
        if described.status != 200:
            raise RtspClientError(f"DESCRIBE {described.status} {described.reason}")
        base = described.header("content-base") or url + "/"
        setup = await self.request(
            "SETUP",
            base + "trackID=1",
            headers={"Transport": transport or "RTP/AVP/TCP;unicast;interleaved=0-1"},
        )
        if setup.status != 200:
            raise RtspClientError(f"SETUP {setup.status} {setup.reason}")
        return await self.request("PLAY", url, headers={"Range": "npt=0.000-"})

    # -- media ----------------------------------------------------------------------------

    async def wait_packets(self, count: int, *, seconds: float = 10.0) -> list[RtpPacket]:
        """Wait until at least `count` RTP packets have arrived in total."""
        deadline = time.monotonic() + seconds
        while len(self.packets) < count:
            if self.closed.is_set():
                raise RtspClientError(f"connection closed after {len(self.packets)} packets")
            left = deadline - time.monotonic()
            if left <= 0:
                raise RtspClientError(f"only {len(self.packets)} of {count} packets arrived")
            self._new_packet.clear()
            try:
                await asyncio.wait_for(self._new_packet.wait(), left)
            except TimeoutError:
                continue
        return self.packets

    async def wait_frames(self, frames: int, codec: Codec, *, seconds: float = 10.0) -> None:
        """Wait until `frames` complete access units have arrived in total."""
        deadline = time.monotonic() + seconds
        while sum(u.complete for u in access_units(self.packets, codec)) < frames:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed.is_set():
                raise RtspClientError(
                    f"only {len(access_units(self.packets, codec))} of {frames} frames arrived"
                )
            await self.wait_packets(len(self.packets) + 1, seconds=left)

    async def wait_closed(self, *, seconds: float = 10.0) -> None:
        await asyncio.wait_for(self.closed.wait(), seconds)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
