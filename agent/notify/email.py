"""Email to the owner for each request waiting for approval: SMTP with STARTTLS (never in
clear: the message names a case and the login would cross the network), plain words, the link
to the request on the owner's page.

smtplib runs in a thread (it blocks): the request service only spawns `notify`, which never
raises. A failure is logged and retried a few times (a mail server restarting, a flaky
uplink), then given up: the owner still sees the request on the page and with
`rtcc-edge requests`.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, NotifyEmailConfig
from agent.log import get_logger
from agent.notify.message import request_link
from agent.secretbox import SecretError, reveal

log = get_logger(__name__)

RETRY_DELAYS_S = (5.0, 30.0, 120.0)
TIMEOUT_S = 20.0


def _when(text: Any) -> str:
    if not isinstance(text, str):
        return "not given"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return f"{moment:%a %d %b %Y, %H:%M:%S} UTC" if moment.utcoffset() is not None else text


def compose_email(
    summary: dict[str, Any], *, site_name: str, page_url: str, sender: str, to: Sequence[str]
) -> EmailMessage:
    """The message for one pending request, in words a shop owner reads without a manual."""
    camera = summary.get("camera") or "a camera"
    what = {"clip": "a video clip", "snapshot": "a picture", "stream": "live video"}.get(
        str(summary.get("cmd")), "footage"
    )
    window = summary.get("window")
    lines = [
        "Hello,",
        "",
        f'{summary.get("issuer")} asks for {what} from your camera "{camera}" at {site_name}.',
        "Nothing is shared until you approve it.",
        "",
        f"Case:          {summary.get('case') or 'not given'}",
        f"Asked by:      {summary.get('requester') or 'not given'}",
        f"Reason:        {summary.get('reason') or 'not given'}",
    ]
    if isinstance(window, list) and len(window) == 2:
        lines.append(f"Footage from:  {_when(window[0])}")
        lines.append(f"          to:  {_when(window[1])}")
    answer_by = summary.get("answer_by") or summary.get("expires")
    lines += [
        f"Answer before: {_when(answer_by)} (after that it is refused on its own)",
        "",
        "To watch the footage and approve or deny the request, open:",
        request_link(page_url, str(summary.get("id"))),
        "",
        "Or, on the computer that runs rtcc-edge:",
        f"  sudo rtcc-edge approve {summary.get('id')}",
        f'  sudo rtcc-edge deny {summary.get("id")} --reason "..."',
        "",
        f"-- rtcc-edge at {site_name}",
    ]
    message = EmailMessage()
    message["Subject"] = f"Footage request waiting for your answer: camera {camera}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="rtcc-edge.local")
    message.set_content("\n".join(lines) + "\n")
    return message


class EmailNotifier:
    def __init__(
        self,
        settings: NotifyEmailConfig,
        *,
        site_name: str,
        page_url: str,
        state_dir: Path,
        retry_delays: Sequence[float] = RETRY_DELAYS_S,
        timeout: float = TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.site_name = site_name
        self.page_url = page_url
        self.state_dir = state_dir
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.sent = 0

    @classmethod
    def from_config(cls, config: AgentConfig, *, page_url: str) -> EmailNotifier | None:
        settings = config.notify.email
        if settings is None:
            return None
        return cls(
            settings, site_name=config.site.name, page_url=page_url, state_dir=config.state_dir
        )

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.settings.ca_file is not None:
            context.load_verify_locations(cafile=str(self.settings.ca_file))
        return context

    def _send(self, message: EmailMessage, password: str | None) -> None:
        settings = self.settings
        with smtplib.SMTP(settings.host, settings.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            # starttls() raises SMTPNotSupportedError if the server does not offer it: the
            # message is never sent in clear.
            smtp.starttls(context=self._tls())
            smtp.ehlo()
            if settings.username is not None:
                smtp.login(settings.username, password or "")
            smtp.send_message(message)

    async def notify(self, summary: dict[str, Any]) -> None:
        """Send the email, retrying a few times; never raises."""
        request = summary.get("id")
        try:
            secret = self.settings.password
            password = reveal(secret.get_secret_value() if secret else None, self.state_dir)
        except SecretError as exc:
            log.error("owner_email_failed", request=request, error=f"mail password: {exc}")
            return
        message = compose_email(
            summary,
            site_name=self.site_name,
            page_url=self.page_url,
            sender=self.settings.sender,
            to=self.settings.to,
        )
        for attempt, delay in enumerate((*self.retry_delays, None), start=1):
            try:
                await asyncio.to_thread(self._send, message, password)
            except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
                error = str(exc) or type(exc).__name__
                if delay is None:
                    log.error("owner_email_failed", request=request, attempt=attempt, error=error)
                    return
                log.warning("owner_email_retry", request=request, attempt=attempt, error=error)
                await asyncio.sleep(delay)
            else:
                self.sent += 1
                log.info("owner_email_sent", request=request, attempt=attempt)
                return
