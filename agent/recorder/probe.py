"""Is the camera's RTSP server there? A cheap question a worker asks while it backs off.

A camera that is unplugged, rebooting or off the network costs nothing to ask every half second:
one TCP connection and an `OPTIONS` request, no session, no authentication (RTSP servers answer
OPTIONS to anyone, or refuse it with a status line, which is an answer too). The worker backs off
between full stream opens (up to `reconnect_cap`), and asks this in between, so that a camera
coming back is recorded again within a second or so instead of at the end of the backoff.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}


def rtsp_address(url: str) -> tuple[str, int] | None:
    """Host and port of an rtsp:// or rtsps:// URL; None if it names neither."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    return parts.hostname, port


def rtsp_answers(url: str, *, timeout: float) -> bool:
    """Whether the RTSP server at `url` accepts a connection and answers with a status line
    within `timeout` seconds. For rtsps:// only the connection is tried (no TLS handshake)."""
    address = rtsp_address(url)
    if address is None:
        return False
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            if urlsplit(url).scheme != "rtsp":
                return True
            host, port = address
            host = f"[{host}]" if ":" in host else host  # an IPv6 literal
            request = f"OPTIONS rtsp://{host}:{port}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"
            sock.sendall(request.encode("ascii", "replace"))
            reply = sock.recv(64)
    except OSError:  # refused, unreachable, reset, timed out
        return False
    return reply.startswith(b"RTSP/")
