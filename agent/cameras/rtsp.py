"""Adding a camera reached by RTSP alone, or a recorder's channels from one channel's URL (its
path must be one of a vendor's recorder paths in the firmware profiles). Every URL is opened
before it is added; its credentials are taken out of it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

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
    split_rtsp_url,
)
from agent.compat.probe import ProbeError
from agent.compat.profiles import ProfileSet, render_channel_path
from agent.config import AgentConfig
from agent.media.source import SourceError


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
    refuse_duplicates(config, cameras)
    check_ids(config, cameras)
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
                verified = await open_stream(camera.rtsp_url, login, call_timeout)
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
