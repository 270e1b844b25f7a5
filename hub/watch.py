"""Watching every site's events, status and registry, each checked as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

import aiomqtt

from agent.wire import Event, RegistryClaims, StatusClaims, Topics
from hub.state import TrustedSite
from hub.trust import Checked, check_message

KINDS = ("evt", "status", "registry")


def watch_filters(site: str | None = None) -> list[str]:
    if site is None:
        return [Topics.all_sites(kind) for kind in KINDS]
    topics = Topics(site)
    return [topics.evt, topics.status, topics.registry]


async def watch(
    client: aiomqtt.Client,
    trusted: Callable[[], Mapping[str, TrustedSite]],
    *,
    site: str | None = None,
) -> AsyncIterator[Checked]:
    """Subscribe and yield each message checked against the trusted keys. `trusted` is asked
    for each message, so a site trusted meanwhile is verified from then on. The retained status
    and registry of each site come first."""
    await client.subscribe([(topic, 1) for topic in watch_filters(site)])
    async for message in client.messages:
        yield check_message(message.topic.value, bytes(message.payload), trusted())


def summary(checked: Checked) -> str:
    """One line saying what a verified message says."""
    model = checked.model
    if isinstance(model, Event):
        text = f"req {model.req} #{model.seq} {model.state.value}"
        if model.code is not None:
            text += f" {model.code.value}: {model.message}"
        if model.bytes_total is not None:
            text += f" {model.bytes_sent}/{model.bytes_total} bytes"
        if model.reason is not None:
            text += f" ({model.reason})"
        if model.cameras is not None:
            text += f" {len(model.cameras)} camera(s)"
        return text
    if isinstance(model, StatusClaims):
        state = "online" if model.online else "OFFLINE"
        return (
            f"{state} v{model.version} cameras {model.cameras_online}/{model.cameras_total}"
            f" up {model.uptime_s:.0f}s"
        )
    if isinstance(model, RegistryClaims):
        return f"{model.site.name}: {len(model.cameras)} listed camera(s)"
    return checked.reason
