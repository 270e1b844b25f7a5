"""What `rtcc-edge cameras add` is to add, and the rules every addition follows: the words of
the command line (channels, RTSP URLs), camera ids, what is already configured, and opening a
stream to verify it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from agent.compat.probe import ProbeOptions, probe_stream_async
from agent.config import ID_PATTERN, AgentConfig, SharingMode
from agent.media.source import SourceError, rtsp_source
from agent.onvif.errors import quoted
from agent.redact import redact_url

MAX_CHANNELS = 256
# A recorder serves a few sessions at once: channels are opened a few at a time.
OPEN_CONCURRENCY = 4
ErrorCode = Literal["usage", "refused"]
# A password in an RTSP URL's path or query (XMeye's `…/user=admin&password=…`, `?pwd=…`).
_SECRET_IN_URL = re.compile(r"(?:^|[/?&;_])(?:pass(?:word)?|passwd|pwd|secret|token)=", re.I)


class AddError(Exception):
    """Nothing was added; `code` is `usage` (the request cannot work as given) or `refused`
    (the camera refused or could not be reached)."""

    def __init__(self, message: str, *, code: ErrorCode) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Login:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float
    heading: float | None = None
    fov: float | None = None
    description: str | None = None


@dataclass(frozen=True)
class Sharing:
    mode: SharingMode = SharingMode.PRIVATE
    live: bool = False
    location: Location | None = None

    def problem(self) -> str | None:
        if self.live and self.mode is not SharingMode.INTEGRATED:
            return "--live needs --sharing integrated"
        if self.mode is not SharingMode.PRIVATE and self.location is None:
            return f"a {self.mode.value} camera is shown on a map: give --location LAT,LON"
        return None


@dataclass(frozen=True)
class NewCamera:
    id: str
    name: str
    onvif_url: str | None = None
    rtsp_url: str | None = None  # without credentials
    channel: int | None = None
    stream: str = "main"
    verified: str = ""  # what was checked, in words


@dataclass(frozen=True)
class Skipped:
    channel: int
    reason: str


@dataclass
class Plan:
    cameras: list[NewCamera] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    made: str = ""  # maker and model, when known
    firmware: str | None = None


# -- what the command line gives ---------------------------------------------------------------


def parse_channels(text: str) -> list[int] | Literal["all"]:
    """`all`, or channel numbers and ranges: `1-8`, `1,3,5-6`; AddError for anything else."""
    cleaned = text.strip().lower()
    if cleaned == "all":
        return "all"
    numbers: list[int] = []
    for part in cleaned.split(","):
        match = re.fullmatch(r"\s*(\d{1,3})\s*(?:-\s*(\d{1,3})\s*)?", part)
        if match is None:
            raise AddError(
                f"--channels {text!r}: give numbers and ranges like 1-8 or 1,3,5, or all",
                code="usage",
            )
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if not 1 <= first <= last <= MAX_CHANNELS:
            raise AddError(
                f"--channels {text!r}: channels count from 1 to {MAX_CHANNELS}", code="usage"
            )
        numbers += range(first, last + 1)
    return list(dict.fromkeys(numbers))


def split_rtsp_url(text: str) -> tuple[str, str | None, str | None]:
    """(the URL without credentials, username, password) of an rtsp:// URL; AddError when it is
    not one, or carries a password where it cannot be taken out and encrypted."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise AddError(f"{shown_url(text)} is not an rtsp:// URL with a host", code="usage")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise AddError(f"bad port in {shown_url(text)}", code="usage") from None
    if _SECRET_IN_URL.search(f"{parts.path}?{parts.query}"):
        where = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "/…", "", ""))
        raise AddError(
            f"the URL given ({where}) carries a password in its path or query; rtcc-edge keeps "
            "camera passwords encrypted, never inside a URL. Use the camera's standard RTSP path "
            "(its manual, or `rtcc-edge check` with --username) and give the password with "
            "--password-stdin.",
            code="usage",
        )
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return bare, username, password


def shown_url(url: str) -> str:
    """`url` as it may be printed: without its userinfo or any secret parameter."""
    try:
        return rtsp_source(url, username=None, password=None).display_url
    except SourceError:
        return quoted(redact_url(url.rpartition("@")[2]), 120)


# -- ids, names and what is already there -------------------------------------------------------


def default_id(url: str) -> str:
    parts = urlsplit(url)
    host = re.sub(r"[^a-z0-9]+", "-", (parts.hostname or "camera").lower()).strip("-")
    port = parts.port or (554 if parts.scheme.startswith("rtsp") else 80)
    suffix = "" if port in (80, 554) else f"-{port}"
    return f"cam-{host}{suffix}"[:58].rstrip("-")


def _same_device(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.hostname, pa.port or 80) == (pb.hostname, pb.port or 80)


def check_ids(config: AgentConfig, cameras: Sequence[NewCamera]) -> None:
    seen: set[str] = set()
    for camera in cameras:
        if not re.fullmatch(ID_PATTERN, camera.id):
            raise AddError(
                f"camera id {camera.id!r}: use lower-case letters, digits, - and _ (max 63)",
                code="usage",
            )
        if config.camera(camera.id) is not None or camera.id in seen:
            raise AddError(
                f"camera id {camera.id!r} is already used; pick another with --id", code="usage"
            )
        seen.add(camera.id)


def _already(config: AgentConfig, camera: NewCamera) -> str | None:
    for existing in config.cameras:
        if camera.rtsp_url is not None and existing.rtsp_url is not None:
            if split_rtsp_url(existing.rtsp_url)[0] == camera.rtsp_url:
                return existing.id
        elif (
            camera.onvif_url is not None
            and existing.onvif_url is not None
            and existing.rtsp_url is None
            and _same_device(existing.onvif_url, camera.onvif_url)
            and (existing.channel or 1) == (camera.channel or 1)
        ):
            return existing.id
    return None


def refuse_duplicates(config: AgentConfig, cameras: Sequence[NewCamera]) -> None:
    for camera in cameras:
        existing = _already(config, camera)
        if existing is not None:
            what = redact_url(camera.rtsp_url or camera.onvif_url or "")
            channel = f" channel {camera.channel}" if camera.channel else ""
            raise AddError(
                f"{what}{channel} is already configured as camera {existing!r}", code="usage"
            )


def select_channels(wanted: list[int] | Literal["all"], available: int, url: str) -> list[int]:
    if wanted == "all":
        return list(range(1, available + 1))
    beyond = [n for n in wanted if n > available]
    if beyond:
        raise AddError(
            f"{url} has {available} channel(s); there is no channel {beyond[0]}", code="usage"
        )
    return wanted


async def open_stream(url: str, login: Login | None, call_timeout: float) -> str:
    """Open the stream at `url` until its first keyframe: what it carries, in words; ProbeError
    when it cannot be opened."""
    source = rtsp_source(
        url,
        username=login.username if login else None,
        password=login.password if login else None,
    )
    options = ProbeOptions(
        open_timeout=call_timeout, read_timeout=call_timeout, keyframes=1, snapshot=False
    )
    probe = await probe_stream_async(source, options)
    return f"stream opened: {probe.codec} {probe.width}x{probe.height}"
