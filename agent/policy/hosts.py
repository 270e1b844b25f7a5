"""Where footage may go: upload, manifest and relay URLs against the owner's allowed hosts.

A URL passes when its scheme is the secure one (`https`, `wss`) — the plain one (`http`, `ws`)
only to a loopback host (127.0.0.0/8, ::1, localhost; tests and a relay on the same box) — and
its host matches an allowed pattern: `host` (exactly that host), `*.domain` (any name below
`domain`, not `domain` itself), either optionally with `:port` (then only that port; without a
port any port). IP literals pass only if listed literally, so a request can never point the
agent at an address on the owner's LAN unless the owner listed it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_pattern(pattern: str) -> tuple[str, int | None]:
    if pattern.count(":") == 1:
        host, port = pattern.split(":")
        return host, int(port) if port.isdigit() else -1
    return pattern, None


def host_matches(host: str, port: int, pattern: str) -> bool:
    pattern_host, pattern_port = _split_pattern(pattern.lower())
    if pattern_port is not None and pattern_port != port:
        return False
    if pattern_host.startswith("*."):
        suffix = pattern_host[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern_host


def destination_problem(
    url: str, allowed: Sequence[str], *, secure: str, plain: str, what: str
) -> str | None:
    """None if `url` may receive footage; otherwise why not (one sentence)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"{what} URL is not valid"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return f"{what} URL has no host"
    if parts.scheme == plain:
        if not is_loopback(host):
            return f"{what} URL must use {secure}:// (plain {plain}:// only to this machine)"
    elif parts.scheme != secure:
        return f"{what} URL must use {secure}://"
    effective_port = port if port is not None else _DEFAULT_PORTS[parts.scheme]
    if not any(host_matches(host, effective_port, pattern) for pattern in allowed):
        return f"{what} host {host!r} is not in the owner's allowed hosts"
    return None
