"""A recorder's channels, as reports show them, and why a device is taken for a recorder.

A device is a recorder (NVR, DVR, video encoder) when ONVIF lists several video sources for it,
or when the firmware profiles list its model among the vendor's recorders (all that can be
known before logging in).
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.compat.profiles import ProfileMatch, ProfileSet
from agent.compat.report import ChannelInfo, RecorderInfo
from agent.onvif import Channel, choose_profile


def channel_infos(channels: Sequence[Channel]) -> list[ChannelInfo]:
    infos: list[ChannelInfo] = []
    for channel in channels:
        main = choose_profile(channel.profiles, "main").profile
        sub = choose_profile(channel.profiles, "sub").profile
        source = channel.source
        infos.append(
            ChannelInfo(
                number=channel.number,
                source_token=source.token if source is not None else None,
                width=(source.width if source is not None else None) or (main and main.width),
                height=(source.height if source is not None else None) or (main and main.height),
                main_profile=main.token if main is not None else None,
                main_encoding=main.encoding if main is not None else None,
                sub_profile=sub.token if sub is not None else None,
                sub_encoding=sub.encoding if sub is not None else None,
                profiles=len(channel.profiles),
            )
        )
    return infos


def recorder_info(
    channels: Sequence[Channel],
    *,
    match: ProfileMatch | None = None,
    profiles: ProfileSet | None = None,
) -> RecorderInfo | None:
    """A RecorderInfo when the device is a recorder (see the module docstring), else None."""
    if len(channels) > 1:
        return RecorderInfo(
            reason=f"ONVIF lists {len(channels)} video sources", channels=channel_infos(channels)
        )
    if match is not None and profiles is not None and profiles.is_recorder_model(match):
        return RecorderInfo(
            reason=f"model {match.model} is one of {match.vendor_name}'s recorders "
            "(firmware profiles)",
            channels=channel_infos(channels),
        )
    return None
