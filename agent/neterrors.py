"""Network failures in words a technician can act on.

Libraries report a failed connection as an errno and its C library text ("[Errno 1] Operation
not permitted", "Connect call failed"). Those say nothing about what happened on the wire, and
FFmpeg makes it worse: its RTSP code returns a bare -1 when a camera breaks off a stream, which
reads as EPERM. `describe_network_error` turns any of them into a sentence that says what
happened; the checks' remedies say what to try.
"""

from __future__ import annotations

import errno
import socket

_BY_ERRNO: dict[int, str] = {
    errno.ECONNREFUSED: "connection refused: nothing listens on that port",
    errno.EHOSTUNREACH: "no route to that address (is it on this network?)",
    errno.ENETUNREACH: "no route to that network (is this host connected to it?)",
    errno.EHOSTDOWN: "the camera's address does not answer (it is off, or not on this network)",
    errno.ETIMEDOUT: "the connection attempt got no answer (the camera is off, or a firewall "
    "drops the traffic)",
    errno.ECONNRESET: "the camera reset the connection (it restarted, or refused to go on)",
    errno.ECONNABORTED: "the connection was cut off on the way (a network device dropped it)",
    errno.EPIPE: "the camera closed the connection while we were still sending",
    # connect() gets EPERM/EACCES from a firewall rule on this host; FFmpeg returns -1 (EPERM)
    # when a camera breaks off a stream.
    errno.EPERM: "the connection was closed or blocked on the way (the camera broke it off, or a "
    "firewall rule stopped it)",
    errno.EACCES: "this host is not allowed to connect there (a firewall rule blocks it)",
    errno.ENETDOWN: "this host's network is down",
    errno.EADDRNOTAVAIL: "that address cannot be used from this host",
}


def errno_of(exc: BaseException) -> int | None:
    """The errno behind `exc` or what it wraps (aiohttp keeps the OSError in `os_error`)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        number = getattr(seen, "errno", None)
        if isinstance(number, int) and number > 0:
            return number
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None


UNRESOLVED = "the host name cannot be resolved (check its spelling, and this host's DNS)"


def _name_error(exc: BaseException) -> bool:
    """A failed name lookup, however wrapped (its errno is negative: an EAI_* code)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, socket.gaierror):
            return True
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return False


def host_resolves(host: str) -> bool:
    """Whether `host` has an address (a blocking lookup: call it off the event loop)."""
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


def describe_network_error(exc: BaseException) -> str | None:
    """What happened, in a sentence; None when `exc` is not a known network failure."""
    if _name_error(exc):
        return UNRESOLVED
    number = errno_of(exc)
    if number is not None and number in _BY_ERRNO:
        return _BY_ERRNO[number]
    if isinstance(exc, ConnectionResetError):
        return _BY_ERRNO[errno.ECONNRESET]
    if isinstance(exc, BrokenPipeError):
        return _BY_ERRNO[errno.EPIPE]
    if isinstance(exc, EOFError):
        return "the camera closed the connection"
    return None
