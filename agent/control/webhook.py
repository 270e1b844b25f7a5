"""The owner's optional webhook (`policy.owner_webhook`): each pending request is POSTed to it.

The body is the notification payload (`agent.notify.message`, schema in
docs/notifications.md), signed with the device key in the `X-Rtcc-Signature` header, so a
receiver can check that it came from this site (with the key `rtcc-edge keys show` prints).
A short timeout, no redirects, no proxy from the environment; failures are logged and never
delay or change the request (the owner still sees it on the page and with
`rtcc-edge requests`). The body carries what the owner needs to decide (camera, case,
requester, reason, window, expiry, a link to the request), never upload URLs or relay tokens.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp

from agent.config import AgentConfig
from agent.identity import DeviceKey
from agent.log import get_logger
from agent.notify.message import (
    DEFAULT_PAGE_URL,
    SIGNATURE_HEADER,
    encode_body,
    pending_payload,
    sign_body,
)

log = get_logger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class OwnerWebhook:
    def __init__(
        self,
        url: str,
        *,
        site_id: str,
        site_name: str = "",
        page_url: str = DEFAULT_PAGE_URL,
        signer: DeviceKey | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"policy.owner_webhook must be an http(s) URL, not {url!r}")
        self.url = url
        self.site_id = site_id
        self.site_name = site_name
        self.page_url = page_url
        self.signer = signer
        self.timeout = timeout

    @classmethod
    def from_config(
        cls,
        config: AgentConfig,
        *,
        signer: DeviceKey | None = None,
        page_url: str = DEFAULT_PAGE_URL,
    ) -> OwnerWebhook | None:
        url = config.policy.owner_webhook
        if url is None:
            return None
        return cls(
            url,
            site_id=config.site.id,
            site_name=config.site.name,
            page_url=page_url,
            signer=signer,
        )

    async def notify(self, summary: dict[str, Any]) -> None:
        payload = pending_payload(
            summary, site_id=self.site_id, site_name=self.site_name, page_url=self.page_url
        )
        body = encode_body(payload)
        headers = {"Content-Type": "application/json"}
        if self.signer is not None:
            headers[SIGNATURE_HEADER] = sign_body(body, self.signer)
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http,
                http.post(self.url, data=body, headers=headers, allow_redirects=False) as response,
            ):
                if response.status >= 300:
                    log.warning(
                        "owner_webhook_refused", status=response.status, request=summary.get("id")
                    )
                    return
            log.info("owner_webhook_sent", request=summary.get("id"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("owner_webhook_failed", error=str(exc) or type(exc).__name__)
