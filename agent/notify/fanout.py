"""Every notification channel the owner configured, as the request service's one notifier."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.config import AgentConfig
from agent.control.webhook import OwnerWebhook
from agent.identity import DeviceKey
from agent.link.ports import PendingNotifier
from agent.notify.email import EmailNotifier
from agent.owner_page.tls import page_url


def page_url_of(config: AgentConfig) -> str:
    """Where links point: `[notify] page_url`, else the owner page's address (`[owner_page]
    public_url`, or the one its listen address gives)."""
    if config.notify.page_url is not None:
        return config.notify.page_url
    return page_url(config)


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
