"""The owner's optional webhook (`policy.owner_webhook`): each pending request is POSTed to it.

A short timeout, no redirects, no proxy from the environment; failures are logged and never
delay or change the request (the owner still sees it with `rtcc-edge requests`). The body
carries what the owner needs to decide (camera, case, requester, reason, window, expiry),
never upload URLs or relay tokens.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp

from agent.config import AgentConfig
from agent.log import get_logger

log = get_logger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class OwnerWebhook:
    def __init__(self, url: str, *, site_id: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"policy.owner_webhook must be an http(s) URL, not {url!r}")
        self.url = url
        self.site_id = site_id
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: AgentConfig) -> OwnerWebhook | None:
        url = config.policy.owner_webhook
        return None if url is None else cls(url, site_id=config.site.id)

    async def notify(self, summary: dict[str, Any]) -> None:
        body = {"site": self.site_id, "event": "pending_approval", "request": summary}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http,
                http.post(self.url, json=body, allow_redirects=False) as response,
            ):
                if response.status >= 300:
                    log.warning(
                        "owner_webhook_refused", status=response.status, request=summary.get("id")
                    )
                    return
            log.info("owner_webhook_sent", request=summary.get("id"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("owner_webhook_failed", error=str(exc) or type(exc).__name__)
