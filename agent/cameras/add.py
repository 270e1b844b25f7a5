"""Adding cameras to the owner's configuration: an ONVIF camera, a recorder's channels, or a
camera (or recorder channels) reached by RTSP alone.

Every camera is verified before it is written: an ONVIF camera by logging in, a recorder's
channels by listing its video sources, an RTSP URL by opening the stream. Passwords are stored
encrypted with the device key (`enc:v1:…`) and never in a URL; an RTSP URL is stored without
its credentials, which move to `username` and `secret`. A recorder's channels each become a
camera of their own (their own id, name, sharing and location), numbered as the recorder
numbers them; for a recorder whose ONVIF media does not work, the channel paths come from the
vendor's firmware profile and each is opened before it is added.

    plan = await plan_onvif(url, login, config=config, profiles=profiles, channels="1-4")
    write_cameras(config_path, config, plan, login, sharing)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from agent.cameras.config_file import append_blocks, toml_block
from agent.compat.probe import ProbeError, ProbeOptions, probe_stream_async
from agent.compat.profiles import ProfileSet, render_channel_path
from agent.config import ID_PATTERN, AgentConfig, SharingMode
from agent.onvif import Channel, OnvifCamera, OnvifError, choose_profile, rtsp_url
from agent.onvif.errors import quoted
from agent.recorder.source import SourceError, rtsp_source
from agent.secretbox import SecretBox

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
        raise AddError(f"{_shown(text)} is not an rtsp:// URL with a host", code="usage")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise AddError(f"bad port in {_shown(text)}", code="usage") from None
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


def _shown(url: str) -> str:
    """`url` as it may be printed: without the password in its userinfo."""
    try:
        return rtsp_source(url, username=None, password=None).display_url
    except SourceError:
        return quoted(url.rpartition("@")[2], 120)


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


def _check_ids(config: AgentConfig, cameras: Sequence[NewCamera]) -> None:
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


def _refuse_duplicates(config: AgentConfig, cameras: Sequence[NewCamera]) -> None:
    for camera in cameras:
        existing = _already(config, camera)
        if existing is not None:
            what = camera.rtsp_url or camera.onvif_url
            channel = f" channel {camera.channel}" if camera.channel else ""
            raise AddError(
                f"{what}{channel} is already configured as camera {existing!r}", code="usage"
            )


def _select(wanted: list[int] | Literal["all"], available: int, url: str) -> list[int]:
    if wanted == "all":
        return list(range(1, available + 1))
    beyond = [n for n in wanted if n > available]
    if beyond:
        raise AddError(
            f"{url} has {available} channel(s); there is no channel {beyond[0]}", code="usage"
        )
    return wanted


# -- verifying ------------------------------------------------------------------------------------


async def _open(url: str, login: Login | None, call_timeout: float) -> str:
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


async def plan_rtsp(
    url: str,
    login: Login | None,
    *,
    config: AgentConfig,
    profiles: ProfileSet | None,
    camera_id: str | None = None,
    name: str | None = None,
    channels: list[int] | Literal["all"] | None = None,
    call_timeout: float = 5.0,
) -> Plan:
    """A camera reached by RTSP alone, or, with `channels`, the channels of the recorder whose
    channel `url` is (its path must be one of a vendor's recorder paths)."""
    bare, _user, _password = split_rtsp_url(url)
    base_id = camera_id or default_id(bare)
    base_name = name or f"Camera at {urlsplit(bare).hostname}"
    wanted: list[tuple[int | None, str]] = [(None, bare)]
    if channels is not None:
        wanted = _recorder_urls(bare, channels, profiles)
    cameras = [
        NewCamera(
            id=base_id if number is None else f"{base_id}-ch{number}",
            name=base_name if number is None else f"{base_name} channel {number}",
            rtsp_url=channel_url,
            channel=number,
        )
        for number, channel_url in wanted
    ]
    _refuse_duplicates(config, cameras)
    _check_ids(config, cameras)
    return await _verified(cameras, login, call_timeout)


def _recorder_urls(
    bare: str, channels: list[int] | Literal["all"], profiles: ProfileSet | None
) -> list[tuple[int | None, str]]:
    parts = urlsplit(bare)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    found = profiles.channel_path(path) if profiles is not None else None
    if found is None:
        raise AddError(
            f"{bare} is not a recorder channel path the firmware profiles know, so the other "
            "channels' URLs cannot be worked out: add each channel with its own --rtsp URL",
            code="usage",
        )
    if channels == "all":
        raise AddError(
            "without ONVIF the recorder cannot say how many channels it has: give their "
            "numbers, e.g. --channels 1-8",
            code="usage",
        )
    urls: list[tuple[int | None, str]] = []
    for number in channels:
        new_path, _, query = render_channel_path(found.template, number).partition("?")
        urls.append((number, urlunsplit(parts._replace(path=new_path, query=query))))
    return urls


async def _verified(cameras: list[NewCamera], login: Login | None, call_timeout: float) -> Plan:
    """Open every camera's stream (a few at a time); those that do not open are skipped, and
    a single camera that does not open is refused."""
    limit = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(camera: NewCamera) -> NewCamera | Skipped:
        assert camera.rtsp_url is not None
        async with limit:
            try:
                verified = await _open(camera.rtsp_url, login, call_timeout)
            except (ProbeError, SourceError) as exc:
                return Skipped(camera.channel or 0, str(exc))
        return replace(camera, verified=verified)

    results = await asyncio.gather(*(one(c) for c in cameras))
    plan = Plan(
        cameras=[r for r in results if isinstance(r, NewCamera)],
        skipped=[r for r in results if isinstance(r, Skipped)],
    )
    if not plan.cameras:
        reason = plan.skipped[0].reason if plan.skipped else "nothing to add"
        where = cameras[0].rtsp_url if len(cameras) == 1 else "none of the channels"
        raise AddError(f"not added: {where}: {reason}", code="refused")
    return plan


@dataclass
class _Login:
    """What logging in to an ONVIF device told."""

    info: Any = None  # agent.onvif.DeviceInfo
    auth: str | None = None
    channels: list[Channel] = field(default_factory=list)
    media_error: OnvifError | None = None
    uris: dict[int, str] = field(default_factory=dict)  # channel -> its stream URI
    no_uri: dict[int, str] = field(default_factory=dict)  # channel -> why GetStreamUri failed
    unrecordable: dict[int, str] = field(default_factory=dict)  # channel -> why


async def _log_in(
    url: str,
    login: Login,
    wanted: list[int] | Literal["all"] | None,
    stream: str,
    call_timeout: float,
) -> _Login:
    """Log in; list the channels; with `wanted`, ask each wanted channel for its stream URI."""
    camera = OnvifCamera.from_url(
        url, username=login.username, password=login.password, timeout=call_timeout
    )
    told = _Login()
    try:
        async with camera:
            told.info, told.auth = camera.info, camera.auth
            try:
                told.channels = await camera.channels()
            except OnvifError as exc:
                told.media_error = exc
            if wanted is None or not told.channels:
                return told
            by_number = {c.number: c for c in told.channels}
            for number in _select(wanted, len(told.channels), url):
                choice = choose_profile(by_number[number].profiles, stream)
                if choice.profile is None or choice.fallback_encoding is not None:
                    what = choice.fallback_encoding or "no"
                    told.unrecordable[number] = f"it has {what} {stream} profile to record"
                    continue
                try:
                    told.uris[number] = await camera.stream_uri(choice.profile.token)
                except OnvifError as exc:
                    told.no_uri[number] = str(exc)
    except OnvifError as exc:
        raise AddError(f"not added: {exc}", code="refused") from exc
    return told


async def plan_onvif(
    url: str,
    login: Login,
    *,
    config: AgentConfig,
    profiles: ProfileSet | None,
    camera_id: str | None = None,
    name: str | None = None,
    stream: str = "main",
    channels: list[int] | Literal["all"] | None = None,
    rtsp_ports: Sequence[int] = (),
    call_timeout: float = 5.0,
) -> Plan:
    """An ONVIF camera, or the channels of an ONVIF recorder, after logging in to it. A
    channel whose stream URI ONVIF will not give (or a recorder whose ONVIF media does not work
    at all) is reached by the vendor's recorder paths from the firmware profiles instead, each
    opened before it is added."""
    told = await _log_in(url, login, channels, stream, call_timeout)
    info = told.info
    made = " ".join(x for x in (info.manufacturer, info.model) if x) if info else ""
    base_id = camera_id or default_id(url)
    base_name = name or quoted(made or base_id, 64)
    auth = f"ONVIF login: {told.auth}"
    plan = Plan(made=made, firmware=info.firmware if info else None)
    if channels is None:
        if len(told.channels) > 1:
            raise AddError(
                f"{url} is a recorder with {len(told.channels)} channels: choose them with "
                f"--channels 1-{len(told.channels)} (or all)",
                code="usage",
            )
        plan.cameras.append(
            NewCamera(base_id, base_name, onvif_url=url, stream=stream, verified=auth)
        )
    else:
        for number in sorted(told.uris):
            plan.cameras.append(
                NewCamera(
                    f"{base_id}-ch{number}",
                    f"{base_name} channel {number}",
                    onvif_url=url,
                    channel=number,
                    stream=stream,
                    verified=f"{auth}; stream URI given over ONVIF",
                )
            )
        plan.skipped += [Skipped(n, why) for n, why in sorted(told.unrecordable.items())]
        by_paths = sorted(told.no_uri)
        why = f"GetStreamUri failed: {next(iter(told.no_uri.values()), '')}"
        if not told.channels:
            if channels == "all":
                raise AddError(
                    f"the recorder's ONVIF media does not work ({told.media_error}), so it "
                    "cannot say how many channels it has: give their numbers, e.g. --channels 1-8",
                    code="usage",
                )
            by_paths, why = channels, f"its ONVIF media does not work: {told.media_error}"
        if by_paths:
            found, skipped = await _by_vendor_paths(
                url, login, by_paths, profiles, info, why, rtsp_ports, call_timeout
            )
            plan.cameras += [
                replace(c, id=f"{base_id}-ch{c.channel}", name=f"{base_name} channel {c.channel}")
                for c in found
            ]
            plan.skipped += skipped
        plan.cameras.sort(key=lambda c: c.channel or 0)
        plan.skipped.sort(key=lambda s: s.channel)
        if not plan.cameras:
            reason = plan.skipped[0].reason if plan.skipped else "nothing to add"
            raise AddError(
                f"not added: no channel asked for can be recorded ({reason})", code="refused"
            )
    _refuse_duplicates(config, plan.cameras)
    _check_ids(config, plan.cameras)
    return plan


async def _by_vendor_paths(
    url: str,
    login: Login,
    numbers: Sequence[int],
    profiles: ProfileSet | None,
    info: Any,
    why: str,
    rtsp_ports: Sequence[int],
    call_timeout: float,
) -> tuple[list[NewCamera], list[Skipped]]:
    """Recorder channels by the vendor's known channel paths (`why`: why ONVIF would not do)."""
    match = (
        profiles.match(manufacturer=info.manufacturer, model=info.model, firmware=info.firmware)
        if profiles is not None and info is not None
        else None
    )
    if (
        match is None
        or profiles is None
        or not profiles.recorder_paths(match, stream="main", channel=1)
    ):
        raise AddError(
            f"not added: {why}; and no firmware profile lists this vendor's recorder channel "
            "paths: add each channel with --rtsp URL",
            code="refused",
        )
    host = urlsplit(url).hostname or ""
    defaults = profiles.rtsp_defaults(match)
    ports = [*rtsp_ports, profiles.recorder_port(match), defaults.port if defaults else 554]
    scheme = defaults.scheme if defaults is not None else "rtsp"
    cameras: list[NewCamera] = []
    skipped: list[Skipped] = []
    limit = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(number: int) -> None:
        last = "no path to try"
        async with limit:
            for port in dict.fromkeys(p for p in ports if p is not None):
                for path in profiles.recorder_paths(match, stream="main", channel=number):
                    candidate = rtsp_url(host, port, path, scheme=scheme)
                    try:
                        verified = await _open(candidate, login, call_timeout)
                    except (ProbeError, SourceError) as exc:
                        last = str(exc)
                        continue
                    cameras.append(
                        NewCamera(
                            "",
                            "",
                            onvif_url=url,
                            rtsp_url=candidate,
                            channel=number,
                            verified=f"{verified} at {match.vendor_name}'s channel path ({why})",
                        )
                    )
                    return
        skipped.append(Skipped(number, f"{why}; the vendor's channel paths did not open ({last})"))

    await asyncio.gather(*(one(n) for n in numbers))
    return cameras, skipped


# -- writing ---------------------------------------------------------------------------------


def write_cameras(
    config_path: Path,
    config: AgentConfig,
    plan: Plan,
    login: Login | None,
    sharing: Sharing,
    *,
    how: str = "rtcc-edge cameras add",
) -> None:
    """Append the planned cameras, the password encrypted with the device key; SecretError,
    OSError, ConfigError leave the file as it was."""
    secret = SecretBox.load_or_create(config.state_dir).encrypt(login.password) if login else None
    location: dict[str, Any] = {}
    if sharing.location is not None:
        location = {
            key: value for key, value in sharing.location.__dict__.items() if value is not None
        }
    firmware = f", firmware {plan.firmware}" if plan.firmware else ""
    comment = quoted(
        f"Added by `{how}` on {datetime.now(UTC):%Y-%m-%d} ({plan.made or 'unknown model'}"
        f"{firmware})",
        200,
    )
    blocks = []
    for camera in plan.cameras:
        fields: dict[str, Any] = {"id": camera.id, "name": camera.name}
        if camera.onvif_url is not None:
            fields["onvif_url"] = camera.onvif_url
        if camera.rtsp_url is not None:
            fields["rtsp_url"] = camera.rtsp_url
        if camera.channel is not None:
            fields["channel"] = camera.channel
        if login is not None:
            fields["username"] = login.username
            fields["secret"] = secret
        fields["stream"] = camera.stream
        fields["sharing"] = sharing.mode.value
        fields["live"] = sharing.live
        blocks.append(toml_block(fields, comment, location))
    append_blocks(config_path, blocks)
