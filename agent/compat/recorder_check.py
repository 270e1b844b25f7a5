"""Checking a recorder (NVR, DVR): every channel as the camera it is.

    report = await check_device(target, options=..., profiles=..., channels="all")
    # a CameraReport for a camera, a RecorderReport (one camera_check per channel) for a recorder

A device given without a channel is asked how many video sources it has; with several, each
channel asked for is checked on its own (its own streams, measured), and the recorder's report
holds them all. The ONVIF facts (identity, clock, firmware) are the recorder's, so they repeat
in every channel's report.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from agent.compat.channels import recorder_info
from agent.compat.check import CheckOptions, CheckResult, Target, check_camera, check_cameras
from agent.compat.profiles import ProfileSet
from agent.compat.report import CameraReport, RecorderReport, worst
from agent.onvif import Channel, OnvifCamera, OnvifError

Channels = Sequence[int] | Literal["all"]


async def list_channels(target: Target, *, call_timeout: float) -> list[Channel]:
    """The device's channels ([] when it cannot be asked: the check will say why)."""
    if target.onvif_url is None or target.username is None or target.credential_error:
        return []
    camera = OnvifCamera.from_url(
        target.onvif_url,
        username=target.username,
        password=target.password or "",
        timeout=call_timeout,
    )
    try:
        async with camera:
            return await camera.channels()
    except OnvifError:
        return []


def channel_targets(target: Target, found: Sequence[Channel], channels: Channels) -> list[Target]:
    """One target per channel asked for (ValueError naming the channels there are)."""
    numbers = [c.number for c in found] if channels == "all" else list(channels)
    missing = [n for n in numbers if n not in {c.number for c in found}]
    if missing:
        raise ValueError(
            f"the recorder has {len(found)} channel(s); there is no channel {missing[0]}"
        )
    return [
        dataclasses.replace(target, channel=number, label=f"{target.label} channel {number}")
        for number in numbers
    ]


async def expand_recorders(targets: Sequence[Target], *, call_timeout: float = 5.0) -> list[Target]:
    """Every target, with each recorder (several video sources, no channel chosen) replaced by
    one target per channel."""
    expanded: list[Target] = []
    for target in targets:
        found = (
            await list_channels(target, call_timeout=call_timeout) if target.channel is None else []
        )
        expanded += channel_targets(target, found, "all") if len(found) > 1 else [target]
    return expanded


async def check_device(
    target: Target,
    *,
    options: CheckOptions | None = None,
    profiles: ProfileSet | None = None,
    channels: Channels = "all",
) -> tuple[CameraReport | RecorderReport, list[CheckResult]]:
    """Check a camera, or every channel asked for of a recorder (ValueError for a channel the
    recorder does not have)."""
    options = options or CheckOptions()
    started = time.monotonic()
    checked_at = datetime.now(UTC)
    found = (
        await list_channels(target, call_timeout=options.onvif_timeout)
        if target.channel is None
        else []
    )
    if len(found) <= 1:
        if channels != "all" and any(number != 1 for number in channels):
            raise ValueError(f"{target.label} is not a recorder: it has a single channel")
        result = await check_camera(target, options=options, profiles=profiles)
        return result.report, [result]
    results = await check_cameras(
        channel_targets(target, found, channels), options=options, profiles=profiles
    )
    reports = [r.report for r in results]
    info = recorder_info(found)
    assert info is not None  # several channels
    report = RecorderReport(
        checked_at=checked_at,
        duration_s=round(time.monotonic() - started, 3),
        target=target.label,
        status=worst([r.status for r in reports]),
        recorder=info,
        channels=reports,
    )
    return report, results
