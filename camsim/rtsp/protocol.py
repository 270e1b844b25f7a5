"""RTSP/1.0 message framing (RFC 2326): requests and interleaved frames in, responses out.

Everything here is bounded: a request head longer than `max_head_bytes`, too many headers or a
body over `max_body_bytes` is an error as soon as it is seen, so a hostile client can never make
the server buffer more than a few kilobytes. Errors raised while framing are fatal for the
connection (the byte stream can no longer be trusted); the server answers and closes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

STATUS_REASONS: Mapping[int, str] = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    451: "Parameter Not Understood",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    457: "Invalid Range",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "RTSP Version Not Supported",
    551: "Option not supported",
}

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_START = frozenset(
    b"!#%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_VERSION = re.compile(r"[A-Za-z]+/\d\.\d")
_CSEQ = re.compile(r"\d{1,9}")
_LENGTH = re.compile(r"\d{1,9}")
# Printable ASCII without space: what a request URI may contain.
_URI = re.compile(r"[\x21-\x7e]+")
_INTERLEAVED_MAGIC = 0x24  # '$'
# Headers that must appear at most once: two different values would be ambiguous.
_SINGLE = frozenset({"cseq", "content-length", "session", "transport", "authorization"})


class RtspError(Exception):
    """A request the server refuses with `status`.

    Raised by the parser, it ends the connection (framing can no longer be trusted); raised by
    a method handler, it only fails that request.
    """

    def __init__(self, status: int, message: str, *, cseq: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.cseq = cseq


@dataclass(frozen=True)
class ParserLimits:
    max_head_bytes: int = 16 * 1024
    max_headers: int = 64
    max_body_bytes: int = 8 * 1024
    max_method_length: int = 32


@dataclass(frozen=True)
class RtspRequest:
    method: str
    uri: str
    version: str
    cseq: int
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class InterleavedFrame:
    """A `$`-framed binary packet on the RTSP connection (a client's RTCP, usually)."""

    channel: int
    payload: bytes


Message = RtspRequest | InterleavedFrame


class RequestParser:
    """Incremental: feed bytes as they arrive, get whole messages back."""

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()
        self._buf = bytearray()
        self._head: tuple[RtspRequest, int] | None = None  # parsed head waiting for its body

    @property
    def pending(self) -> bool:
        """True while part of a message is buffered (a request is being received)."""
        return bool(self._buf) or self._head is not None

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out: list[Message] = []
        while True:
            message = self._next()
            if message is None:
                return out
            out.append(message)

    def _next(self) -> Message | None:
        buf = self._buf
        if self._head is not None:
            request, length = self._head
            if len(buf) < length:
                return None
            body = bytes(buf[:length])
            del buf[:length]
            self._head = None
            return RtspRequest(
                request.method, request.uri, request.version, request.cseq, request.headers, body
            )
        # Empty lines between messages are allowed (RFC 2326 §4 via RFC 2616).
        while bytes(buf[:1]) in (b"\r", b"\n"):
            del buf[:1]
        if not buf:
            return None
        if buf[0] == _INTERLEAVED_MAGIC:
            if len(buf) < 4:
                return None
            size = int.from_bytes(buf[2:4], "big")
            if len(buf) < 4 + size:
                return None
            frame = InterleavedFrame(buf[1], bytes(buf[4 : 4 + size]))
            del buf[: 4 + size]
            return frame
        if buf[0] not in _TOKEN_START:
            raise RtspError(400, "not an RTSP request")
        end, sep = _head_end(buf, self.limits.max_head_bytes)
        if end < 0:
            if len(buf) > self.limits.max_head_bytes:
                raise RtspError(400, "request head too long")
            return None
        head = bytes(buf[:end])
        del buf[: end + sep]
        request, length = _parse_head(head, self.limits)
        if length:
            self._head = (request, length)
            return self._next()
        return request


def _head_end(buf: bytearray, limit: int) -> tuple[int, int]:
    """Index of the blank line ending the head and the separator length; (-1, 0) if not yet."""
    window = buf if len(buf) <= limit + 4 else buf[: limit + 4]
    crlf = window.find(b"\r\n\r\n")
    lf = window.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    if lf >= 0:
        return lf, 2
    return -1, 0


def _parse_head(head: bytes, limits: ParserLimits) -> tuple[RtspRequest, int]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise RtspError(400, "request head is not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    for line in lines:
        if any(c < " " and c != "\t" for c in line) or "\x7f" in line:
            raise RtspError(400, "control character in request head")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not all(parts):
        raise RtspError(400, "malformed request line")
    method, uri, version = parts
    if len(method) > limits.max_method_length or not _TOKEN.fullmatch(method.encode()):
        raise RtspError(400, "malformed method")
    if not _URI.fullmatch(uri):
        raise RtspError(400, "malformed request URI")
    if not _VERSION.fullmatch(version):
        raise RtspError(400, "malformed protocol version")
    headers = _parse_headers(lines[1:], limits)
    cseq_text = headers.get("cseq")
    cseq = int(cseq_text) if cseq_text is not None and _CSEQ.fullmatch(cseq_text) else None
    if version != "RTSP/1.0":
        raise RtspError(505, f"{version} is not supported", cseq=cseq)
    if cseq is None:
        raise RtspError(400, "missing or malformed CSeq")
    length_text = headers.get("content-length", "0")
    if not _LENGTH.fullmatch(length_text):
        raise RtspError(400, "malformed Content-Length", cseq=cseq)
    length = int(length_text)
    if length > limits.max_body_bytes:
        raise RtspError(413, "request body too large", cseq=cseq)
    return RtspRequest(method, uri, version, cseq, headers), length


def _parse_headers(lines: list[str], limits: ParserLimits) -> dict[str, str]:
    headers: dict[str, str] = {}
    last: str | None = None
    count = 0
    for line in lines:
        if line[:1] in (" ", "\t"):
            # Obsolete line folding: continues the previous header's value.
            if last is None:
                raise RtspError(400, "continuation line without a header")
            headers[last] = f"{headers[last]} {line.strip()}".strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name.encode()):
            raise RtspError(400, "malformed header line")
        count += 1
        if count > limits.max_headers:
            raise RtspError(400, "too many headers")
        key = name.lower()
        value = value.strip()
        if key in headers:
            if key in _SINGLE:
                raise RtspError(400, f"repeated {name} header")
            headers[key] = f"{headers[key]}, {value}"
        else:
            headers[key] = value
        last = key
    return headers


def format_response(
    status: int,
    *,
    cseq: int | None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"RTSP/1.0 {status} {STATUS_REASONS.get(status, 'Unknown')}"]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    for name, value in headers or ():
        # Values echo parts of requests (URIs); the parser already refused CR/LF in them.
        if "\r" in value or "\n" in value:
            raise ValueError(f"line break in response header {name}")
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------------------------
# Header values


def request_target(uri: str) -> str | None:
    """Path and query of a request URI (`rtsp://host:port/a/b?c` -> `/a/b?c`); None if it is
    neither an rtsp:// URL nor an absolute path."""
    if uri.startswith("/"):
        return uri
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() != "rtsp":
        return None
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    if cut == 0:
        return None  # no host
    target = rest[cut:]
    if not target:
        return "/"
    return target if target.startswith("/") else "/" + target


_SESSION_ID = re.compile(r"[A-Za-z0-9$\-_.+]{1,64}")


def session_id(value: str | None) -> str | None:
    """The id in a Session header (`id;timeout=60` -> `id`); None if absent or malformed."""
    if value is None:
        return None
    ident = value.split(";", 1)[0].strip()
    return ident if _SESSION_ID.fullmatch(ident) else None


@dataclass(frozen=True)
class TransportRequest:
    """The one transport camsim accepts out of a Transport header's alternatives."""

    tcp: bool
    interleaved: tuple[int, int] | None = None  # TCP: requested channels, if any
    client_port: tuple[int, int] | None = None  # UDP: where the client listens


def _pair(value: str, *, low: int, high: int) -> tuple[int, int]:
    first, dash, second = value.partition("-")
    if not first.isdigit() or (dash and not second.isdigit()) or len(value) > 11:
        raise RtspError(400, f"malformed range {value!r} in Transport")
    a = int(first)
    b = int(second) if dash else a + 1
    if not (low <= a <= high and low <= b <= high):
        raise RtspError(400, f"out-of-range value {value!r} in Transport")
    return a, b


def parse_transport(value: str) -> TransportRequest | None:
    """The first alternative camsim can serve (unicast RTP over TCP interleaved or UDP).

    Raises RtspError(400) for a malformed header; returns None when nothing offered is
    supported (the server answers 461).
    """
    if len(value) > 1024:
        raise RtspError(400, "Transport header too long")
    for spec in value.split(","):
        fields = [f.strip() for f in spec.split(";")]
        protocol = fields[0].upper()
        params: dict[str, str] = {}
        for item in fields[1:]:
            if not item:
                continue
            key, _, val = item.partition("=")
            params[key.strip().lower()] = val.strip().strip('"')
        if "multicast" in params or params.get("mode", "play").lower() != "play":
            continue
        if protocol == "RTP/AVP/TCP":
            channels = params.get("interleaved")
            pair = _pair(channels, low=0, high=255) if channels is not None else None
            if pair is not None and (pair[1] != pair[0] + 1 or pair[0] % 2):
                pair = None  # odd or non-adjacent channels: the server picks its own
            return TransportRequest(tcp=True, interleaved=pair)
        if protocol in ("RTP/AVP", "RTP/AVP/UDP"):
            ports = params.get("client_port")
            if ports is None:
                continue
            return TransportRequest(tcp=False, client_port=_pair(ports, low=1, high=65535))
    return None


_NPT_TIME = re.compile(r"now|\d{1,9}(\.\d{0,9})?|\d{1,9}:\d{1,2}:\d{1,2}(\.\d{0,9})?")


def check_range(value: str | None) -> None:
    """Accept a live-stream Range (`npt=<start>-[end]`); raise RtspError(457) otherwise."""
    if value is None:
        return
    unit, eq, spec = value.strip().partition("=")
    if not eq or unit.strip().lower() != "npt":
        raise RtspError(457, f"unsupported Range {value[:64]!r}")
    spec = spec.split(";", 1)[0].strip()
    start, dash, end = spec.partition("-")
    if not dash or not _NPT_TIME.fullmatch(start.strip()):
        raise RtspError(457, f"invalid Range {value[:64]!r}")
    if end.strip() and not _NPT_TIME.fullmatch(end.strip()):
        raise RtspError(457, f"invalid Range {value[:64]!r}")
