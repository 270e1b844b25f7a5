"""Every notification channel the owner configured, as the request service's one notifier."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.config import AgentConfig
from agent.control.webhook import OwnerWebhook
from agent.identity import DeviceKey
from agent.link.ports import PendingNotifier
from agent.notify.email import EmailNotifier
from agent.notify.message import DEFAULT_PAGE_URL


def page_url_of(config: AgentConfig) -> str:
    """Where links point: `[notify] page_url`, else the owner page's public address, else the
    page on this machine."""
    if config.notify.page_url is not None:
        return config.notify.page_url
    # The owner page's section arrives with the page itself; read it when it is there.
    owner_page = getattr(config, "owner_page", None)
    public_url = getattr(owner_page, "public_url", None)
    return str(public_url) if public_url else DEFAULT_PAGE_URL


class Notifiers:
    def __init__(self, channels: list[PendingNotifier]) -> None:
        self.channels = channels

    @classmethod
    def from_config(cls, config: AgentConfig, *, device_key: DeviceKey) -> Notifiers | None:
        """The configured channels; None if the owner configured none."""
        page_url = page_url_of(config)
        channels: list[PendingNotifier] = []
        webhook = OwnerWebhook.from_config(config, signer=device_key, page_url=page_url)
        if webhook is not None:
            channels.append(webhook)
        email = EmailNotifier.from_config(config, page_url=page_url)
        if email is not None:
            channels.append(email)
        return cls(channels) if channels else None

    async def notify(self, summary: dict[str, Any]) -> None:
        """All channels at once; each logs its own failures and never raises."""
        await asyncio.gather(*(channel.notify(summary) for channel in self.channels))
