"""Adding an ONVIF camera, or the channels of an ONVIF recorder, after logging in to it. A
channel whose stream URI ONVIF will not give (or a recorder whose ONVIF media does not work at
all) is reached by the vendor's recorder paths from the firmware profiles, each opened first."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from agent.cameras.plan import (
    OPEN_CONCURRENCY,
    AddError,
    Login,
    NewCamera,
    Plan,
    Skipped,
    check_ids,
    default_id,
    open_stream,
    refuse_duplicates,
    select_channels,
)
from agent.compat.probe import ProbeError
from agent.compat.profiles import ProfileSet
from agent.config import AgentConfig
from agent.media.source import SourceError
from agent.onvif import Channel, OnvifCamera, OnvifError, choose_profile, rtsp_url
from agent.onvif.errors import quoted


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
            for number in select_channels(wanted, len(told.channels), url):
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
    refuse_duplicates(config, plan.cameras)
    check_ids(config, plan.cameras)
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
                        verified = await open_stream(candidate, login, call_timeout)
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
