"""Service addresses and stream URIs as cameras advertise them, made usable.

Cameras advertise addresses we cannot use as they are: host `0.0.0.0` (firmware that cannot
resolve its own interface), the port written twice (`http://h:8000:8000/...`), their LAN address
while we reach them through NAT or another address, and stream URIs XML-escaped twice
(`&amp;`). Whatever a camera advertises, requests go to the host we actually reached: a camera
never chooses which machine the agent talks to next.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit, urlunsplit

from agent.onvif.errors import MalformedAnswer, quoted
from agent.quirks import QuirkId

_DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322}
_ESCAPED_AMPERSAND = re.compile(r"&(?:amp|#38|#x26);", re.IGNORECASE)
MAX_URL_LENGTH = 2048


@dataclass
class FixedUrl:
    url: str
    quirks: list[QuirkId] = field(default_factory=list)  # what had to be fixed


def url_host(host: str) -> str:
    """`host` as it goes into a URL (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def split_url(url: str, schemes: tuple[str, ...], what: str) -> tuple[SplitResult, str, int, bool]:
    """(parts, host, port, port_was_duplicated) of `url`, or MalformedAnswer naming `what`."""
    if len(url) > MAX_URL_LENGTH or not url.isprintable() or any(c.isspace() for c in url):
        raise MalformedAnswer(f"the camera gave an unusable {what}: {quoted(url, 80)}")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise MalformedAnswer(f"the camera gave a {what} that is not {'/'.join(schemes)}://")
    hostport = parts.netloc.rpartition("@")[2]
    duplicated = False
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = hostport.partition(":")
        if ":" in port_text:
            # `h:8000:8000`: keep the first port (onvif-zeep-async's normalize_url drops the last).
            port_text = port_text.partition(":")[0]
            duplicated = True
    try:
        port = int(port_text) if port_text else _DEFAULT_PORTS[scheme]
    except ValueError:
        raise MalformedAnswer(
            f"the camera gave a {what} with a bad port: {quoted(url, 80)}"
        ) from None
    if not 0 < port < 65536:
        raise MalformedAnswer(f"the camera gave a {what} with a bad port: {quoted(url, 80)}")
    return parts, host.lower(), port, duplicated


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""


def _host_quirk(host: str, reached_host: str) -> QuirkId | None:
    if _unspecified(host):
        return QuirkId.XADDR_ZERO_HOST
    if host != reached_host.lower().strip("[]"):
        return QuirkId.XADDR_OTHER_HOST
    return None


def fix_service_url(
    url: str, *, reached_host: str, reached_port: int, device_port: int | None
) -> FixedUrl:
    """The address to use for a service the camera advertised at `url`.

    `device_port` is the port the camera advertises for its own device service: a service on
    that port is on the server we reached, so it gets the port we reached too (port
    forwarding); a service on another port keeps its port."""
    parts, host, port, duplicated = split_url(url, ("http", "https"), "service address")
    fixed = FixedUrl(url)
    if duplicated:
        fixed.quirks.append(QuirkId.XADDR_DUPLICATE_PORT)
    host_quirk = _host_quirk(host, reached_host)
    if host_quirk is not None:
        fixed.quirks.append(host_quirk)
    if device_port is None or port == device_port:
        port = reached_port
    netloc = f"{url_host(reached_host)}:{port}"
    fixed.url = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
    return fixed


def advertised_port(url: str) -> int | None:
    """The port in a service address the camera advertised (None if it is unusable)."""
    try:
        return split_url(url, ("http", "https"), "service address")[2]
    except MalformedAnswer:
        return None


def unescape_uri(uri: str) -> tuple[str, bool]:
    """`uri` with XML-escaped ampersands undone (however many times); True if any were."""
    out = uri
    for _ in range(8):  # `&amp;amp;` and worse: each round removes one level
        unescaped = _ESCAPED_AMPERSAND.sub("&", out)
        if unescaped == out:
            break
        out = unescaped
    return out, out != uri


def fix_stream_uri(uri: str, *, reached_host: str) -> FixedUrl:
    """The RTSP URI to open for one the camera gave: unescaped, no credentials, our host."""
    unescaped, was_escaped = unescape_uri(uri.strip())
    parts, host, port, duplicated = split_url(unescaped, ("rtsp", "rtsps"), "stream URI")
    fixed = FixedUrl(uri)
    if was_escaped:
        fixed.quirks.append(QuirkId.ESCAPED_STREAM_URI)
    if duplicated:
        fixed.quirks.append(QuirkId.XADDR_DUPLICATE_PORT)
    host_quirk = _host_quirk(host, reached_host)
    if host_quirk is not None:
        fixed.quirks.append(host_quirk)
    netloc = f"{url_host(reached_host)}:{port}"
    fixed.url = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
    return fixed


def rtsp_url(host: str, port: int, path: str, *, scheme: str = "rtsp") -> str:
    """An RTSP URL for a known path (a firmware profile's) on the camera we reached."""
    return f"{scheme}://{url_host(host)}:{port}{path}"


def device_service_url(host: str, port: int, path: str = "/onvif/device_service") -> str:
    return f"http://{url_host(host)}:{port}{path}"
