"""The owner's notifications of a pending request, against a real HTTP receiver (aiohttp) and
a real SMTP server with STARTTLS (tests.support.smtp_server): the webhook's body is signed with
the device key and checked here as a receiver would, with only the site's public key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web

from agent.config import AgentConfig, NotifyConfig, config_file_problems, config_warnings
from agent.identity import DeviceKey
from agent.notify.email import EmailNotifier
from agent.notify.fanout import Notifiers, page_url_of
from agent.notify.message import SCHEMA, SIGNATURE_HEADER, verify_body
from agent.secretbox import SecretBox
from tests.support.broker import TestCA
from tests.support.link_service import running_service, site_config
from tests.support.rtcc import jti_of, make_request
from tests.support.smtp_server import SmtpServer

PAGE = "https://shop.example.net:8443"


@dataclass
class Posted:
    body: bytes
    headers: dict[str, str]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, asyncio.Queue[Posted]]]:
    received: asyncio.Queue[Posted] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(Posted(await request.read(), dict(request.headers)))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        await runner.cleanup()


def with_notify(config: AgentConfig, *, webhook: str | None = None, **notify: Any) -> AgentConfig:
    return config.model_copy(
        update={
            "notify": NotifyConfig.model_validate(notify),
            "policy": config.policy.model_copy(update={"owner_webhook": webhook}),
        }
    )


def device_key(config: AgentConfig) -> DeviceKey:
    return DeviceKey.load_or_create(Path(config.state_dir) / "device.key")


async def test_webhook_body_is_signed_with_the_device_key(
    tmp_path: Path, receiver: tuple[str, asyncio.Queue[Posted]]
) -> None:
    url, received = receiver
    config = with_notify(
        site_config(tmp_path / "state", approval_wait="2d"), webhook=url, page_url=PAGE
    )
    key = device_key(config)
    notifiers = Notifiers.from_config(config, device_key=key)
    assert notifiers is not None
    async with running_service(config, notifier=notifiers) as site:
        payload = make_request("clip", camera="parking-lot")
        jti = jti_of(payload)
        await site.service.handle(payload)
        posted = await asyncio.wait_for(received.get(), 20)
        await site.service.handle(make_request("clip", camera="front-door"))
    assert received.empty(), "an integrated camera's request needs no answer: no notification"

    # What a receiver does: check the signature over the exact bytes with the public key only.
    public = key.public_jwk
    header = verify_body(posted.body, posted.headers[SIGNATURE_HEADER], public)
    assert header["kid"] == key.kid and header["alg"] == "EdDSA"
    body = json.loads(posted.body)
    assert body["schema"] == SCHEMA and body["event"] == "pending_approval"
    assert (body["site"], body["site_name"]) == ("site-1", "Corner Grocery")
    assert body["link"] == f"{PAGE}/requests/{jti}"
    request = body["request"]
    assert request["id"] == jti and request["camera"] == "parking-lot"
    assert request["state"] == "pending_approval" and request["window"] is not None
    assert request["answer_by"] is not None and request["answer_by"] <= request["expires"]
    assert "upload" not in posted.body.decode(), "upload URLs never leave in a notification"

    # Anything changed, or signed by another key, is refused.
    with pytest.raises(jwt.InvalidSignatureError):
        verify_body(
            posted.body.replace(b"parking-lot", b"front-door"),
            posted.headers[SIGNATURE_HEADER],
            public,
        )
    with pytest.raises(jwt.InvalidSignatureError):
        verify_body(posted.body, posted.headers[SIGNATURE_HEADER], DeviceKey.generate().public_jwk)


def test_links_point_at_the_owner_page(tmp_path: Path) -> None:
    config = site_config(tmp_path / "state")
    assert page_url_of(config) == "http://127.0.0.1:8443"  # no certificate made here
    assert page_url_of(with_notify(config, page_url=PAGE)) == PAGE
    assert Notifiers.from_config(config, device_key=DeviceKey.generate()) is None


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    ca = TestCA(tmp_path / "pki")
    cert, key = ca.issue("mail.test", server=True)
    return ca.cert_path, cert, key


def email_config(config: AgentConfig, port: int, ca: Path, *, password: str) -> AgentConfig:
    secret = SecretBox.load_or_create(Path(config.state_dir)).encrypt(password)
    return with_notify(
        config,
        page_url=PAGE,
        email={
            "host": "127.0.0.1",
            "port": port,
            "username": "owner@example.org",
            "password": secret,
            "from": "rtcc-edge@example.org",
            "to": ["owner@example.org", "manager@example.org"],
            "ca_file": str(ca),
        },
    )


async def test_email_over_starttls_with_the_link(
    tmp_path: Path, tls_files: tuple[Path, Path, Path]
) -> None:
    ca, cert, key = tls_files
    async with SmtpServer(cert, key) as server:
        config = email_config(
            site_config(tmp_path / "state"), server.port, ca, password=server.password
        )
        notifiers = Notifiers.from_config(config, device_key=device_key(config))
        assert notifiers is not None
        async with running_service(config, notifier=notifiers) as site:
            payload = make_request("clip", camera="parking-lot", case="2026-0042")
            jti = jti_of(payload)
            await site.service.handle(payload)
            mail = await asyncio.wait_for(server.messages.get(), 30)
            assert site.sink.states(jti) == ["pending_approval"]
    assert mail.tls and mail.login == "owner@example.org"
    assert mail.sender == "rtcc-edge@example.org"
    assert mail.recipients == ["owner@example.org", "manager@example.org"]
    assert mail.message["Subject"] == "Footage request waiting for your answer: camera parking-lot"
    text = mail.message.get_content()
    assert f"{PAGE}/requests/{jti}" in text
    assert "2026-0042" in text and "Nothing is shared until you approve it." in text
    assert f"sudo rtcc-edge approve {jti}" in text


async def test_email_is_retried_when_the_server_is_busy(
    tmp_path: Path, tls_files: tuple[Path, Path, Path]
) -> None:
    ca, cert, key = tls_files
    async with SmtpServer(cert, key, refuse_first=2) as server:
        config = email_config(
            site_config(tmp_path / "state"), server.port, ca, password=server.password
        )
        assert config.notify.email is not None
        notifier = EmailNotifier(
            config.notify.email,
            site_name="Corner Grocery",
            page_url=PAGE,
            state_dir=Path(config.state_dir),
            retry_delays=(0.05, 0.05, 0.05),
        )
        await notifier.notify({"id": "r-1", "camera": "parking-lot", "cmd": "clip"})
        mail = server.messages.get_nowait()
    assert server.connections == 3 and notifier.sent == 1
    assert f"{PAGE}/requests/r-1" in mail.message.get_content()


@pytest.mark.parametrize("problem", ["wrong_password", "untrusted_certificate", "no_server"])
async def test_email_failures_never_hold_up_the_request(
    tmp_path: Path, tls_files: tuple[Path, Path, Path], problem: str
) -> None:
    ca, cert, key = tls_files
    async with SmtpServer(cert, key) as server:
        password = "wrong" if problem == "wrong_password" else server.password
        trusted = TestCA(tmp_path / "other").cert_path if problem == "untrusted_certificate" else ca
        port = server.port
    if problem != "no_server":
        server = SmtpServer(cert, key)
        await server.__aenter__()
        port = server.port
    try:
        config = email_config(site_config(tmp_path / "state"), port, trusted, password=password)
        assert config.notify.email is not None
        notifier = EmailNotifier(
            config.notify.email,
            site_name="Corner Grocery",
            page_url=PAGE,
            state_dir=Path(config.state_dir),
            retry_delays=(0.05,),
        )
        async with running_service(config, notifier=notifier) as site:
            payload = make_request("clip", camera="parking-lot")
            await asyncio.wait_for(site.service.handle(payload), 10)
            assert site.sink.states(jti_of(payload)) == ["pending_approval"]
            await asyncio.wait_for(notifier.notify({"id": "direct"}), 30)  # returns, never raises
        assert notifier.sent == 0
        if problem != "no_server":
            assert server.messages.empty()
    finally:
        if problem != "no_server":
            await server.__aexit__(None, None, None)


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"email": {"host": "h", "from": "shop", "to": ["o@x.org"]}}, "not an email address"),
        ({"email": {"host": "h", "from": "s@x.org", "to": []}}, "at least 1"),
        ({"email": {"host": "h", "from": "s@x.org", "to": ["o@x.org"], "tls": False}}, "Extra"),
        ({"page_url": "ftp://x"}, "http"),
    ],
)
def test_notify_settings_are_checked(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        NotifyConfig.model_validate(settings)


def test_check_warns_of_a_mail_password_in_clear(tmp_path: Path) -> None:
    base = site_config(tmp_path / "state")
    email = {"host": "h", "from": "s@x.org", "to": ["o@x.org"], "ca_file": str(tmp_path / "no")}
    clear = with_notify(base, email={**email, "password": "hunter2"})
    assert "notify.email.password" in {p.field for p in config_warnings(clear)}
    assert "notify.email.ca_file" in {p.field for p in config_file_problems(clear)}
    hidden = with_notify(base, email={**email, "password": "enc:v1:AAAA"})
    assert "notify.email.password" not in {p.field for p in config_warnings(hidden)}
