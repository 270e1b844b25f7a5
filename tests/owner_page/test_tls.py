"""HTTPS for the owner's page (`agent.owner_page.tls`): the certificate the installer makes (its
names, modes, fingerprint as openssl prints it, kept unless renewed), the rule that a page
beyond loopback is HTTPS only, the page's address, and the page served with the certificate
speaking TLS to a client and to Chromium (which signs in with Secure cookies over HTTPS and
over plain loopback HTTP alike)."""

from __future__ import annotations

import binascii
import datetime
import ipaddress
import re
import socket
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from playwright.async_api import async_playwright

from agent.config import AgentConfig, OwnerPageConfig, load_config
from agent.notify.fanout import page_url_of
from agent.owner_page.tls import (
    PageTlsError,
    config_problems,
    fingerprint,
    is_loopback,
    make_certificate,
    page_url,
    ssl_context,
)
from tests.support.chromium import ensure_chromium, spki_hash
from tests.support.link_service import running_service, site_config
from tests.support.owner_page import OWNER_PASSWORD, owner_jar, running_page

NAMES = ["shop-pi", "shop-pi.local", "localhost", "127.0.0.1", "::1", "192.168.1.20"]


def _with_page(config: AgentConfig, tmp_path: Path, **page: object) -> AgentConfig:
    settings = {
        "tls_cert": tmp_path / "page" / "page.crt",
        "tls_key": tmp_path / "page" / "page.key",
        **page,
    }
    return config.model_copy(update={"owner_page": OwnerPageConfig.model_validate(settings)})


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return _with_page(site_config(tmp_path / "state"), tmp_path)


def _certificate(config: AgentConfig) -> Path:
    page = config.owner_page
    make_certificate(page.certificate, page.private_key, names=NAMES)
    return page.certificate


def test_certificate_names_modes_and_fingerprint(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "page" / "page.crt", tmp_path / "page" / "page.key"
    made = make_certificate(cert_path, key_path, names=NAMES)
    assert made.made
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["shop-pi", "shop-pi.local", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "192.168.1.20")
    ]
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert cert_path.stat().st_mode & 0o777 == 0o644
    assert key_path.stat().st_mode & 0o777 == 0o640

    openssl = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert openssl == f"sha256 Fingerprint={fingerprint(cert_path)}"  # as openssl 3 prints it
    assert made.fingerprint == fingerprint(cert_path)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", made.fingerprint)

    # Made again: the valid pair is kept, so the fingerprint the owner checked stays true.
    again = make_certificate(cert_path, key_path, names=["other"])
    assert not again.made and again.fingerprint == made.fingerprint
    assert set(again.names) == set(NAMES)
    renewed = make_certificate(cert_path, key_path, renew=True, names=NAMES)
    assert renewed.made and renewed.fingerprint != made.fingerprint
    # One about to expire is replaced without being asked.
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3640)
    assert make_certificate(cert_path, key_path, now=later).made


def test_default_names_are_this_machine(tmp_path: Path) -> None:
    made = make_certificate(tmp_path / "c.pem", tmp_path / "k.pem")
    host = socket.gethostname().split(".", 1)[0].lower()
    assert made.names[:5] == (host, f"{host}.local", "localhost", "127.0.0.1", "::1")


def test_loopback_or_not() -> None:
    assert is_loopback("127.0.0.1:8443") and is_loopback("localhost:8443")
    assert is_loopback("127.0.0.2:1")
    assert not is_loopback("0.0.0.0:8443") and not is_loopback("192.168.1.20:8443")
    assert not is_loopback("shop-pi.local:8443")


def test_beyond_loopback_needs_the_certificate(config: AgentConfig, tmp_path: Path) -> None:
    # On loopback without a certificate: plain HTTP, no complaint.
    assert ssl_context(config) is None
    assert config_problems(config) == []
    lan = _with_page(config, tmp_path, enabled=True, listen="0.0.0.0:8443")
    with pytest.raises(PageTlsError) as refused:
        ssl_context(lan)
    message = str(refused.value)
    assert message.startswith("[owner_page] listen = '0.0.0.0:8443' lets other machines reach")
    assert "sudo rtcc-edge owner cert" in message
    (problem,) = config_problems(lan)
    assert problem.field == "owner_page.listen" and problem.severity == "error"

    _certificate(config)
    for served in (config, lan):
        context = ssl_context(served)
        assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert config_problems(lan) == []


def test_defaults_beside_the_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "agent.toml"
    path.parent.mkdir()
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[site]\nid = "s"\nname = "S"\n')
    loaded = load_config(path)
    assert loaded.owner_page.certificate == tmp_path / "etc" / "page" / "page.crt"
    assert loaded.owner_page.private_key == tmp_path / "etc" / "page" / "page.key"


def test_page_address(config: AgentConfig, tmp_path: Path) -> None:
    assert page_url(config) == "http://127.0.0.1:8443"
    assert page_url_of(config) == "http://127.0.0.1:8443"
    _certificate(config)
    assert page_url(config) == "https://127.0.0.1:8443"
    lan = _with_page(config, tmp_path, listen="0.0.0.0:9443")
    assert page_url(lan, hostname="Shop-Pi.lan") == "https://shop-pi.local:9443"
    public = _with_page(config, tmp_path, public_url="https://cams.example.org:8443/")
    assert page_url(public) == "https://cams.example.org:8443"
    assert page_url_of(public) == "https://cams.example.org:8443"
    with pytest.raises(ValueError, match="not a web address"):
        OwnerPageConfig.model_validate({"public_url": "cams.example.org"})


async def test_page_speaks_tls_with_its_certificate(config: AgentConfig) -> None:
    cert_path = _certificate(config)
    context = ssl_context(config)
    assert context is not None
    digest = binascii.unhexlify(fingerprint(cert_path).replace(":", ""))
    async with (
        running_service(config) as site,
        running_page(site) as served,
    ):
        assert served.url.startswith("https://127.0.0.1:")
        pinned = aiohttp.TCPConnector(ssl=aiohttp.Fingerprint(digest))
        jar = owner_jar()  # an IP address, not a domain
        async with aiohttp.ClientSession(connector=pinned, cookie_jar=jar) as http:
            assert await served.sign_in(http) == 303
            cookie = next(c for c in http.cookie_jar if c.key == "rtcc_owner")
            assert cookie["secure"] and cookie["httponly"]
            async with http.get(served.url + "/") as response:
                assert response.status == 200
        # Plain HTTP to the HTTPS port gets no page.
        plain = served.url.replace("https://", "http://")
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(plain + "/login") as response:
                    await response.read()


@pytest.mark.parametrize("https", [True, False], ids=["https", "loopback-http"])
async def test_browser_signs_in_with_secure_cookies(
    config: AgentConfig, tmp_path: Path, https: bool
) -> None:
    executable = ensure_chromium()
    args = ["--no-sandbox", "--disable-gpu"]
    if https:
        cert_path = _certificate(config)
        assert ssl_context(config) is not None  # what `owner serve` serves with
        # Accepted by pinning its key, as an owner accepts it after checking the fingerprint.
        args.append(f"--ignore-certificate-errors-spki-list={spki_hash(cert_path.read_bytes())}")
    async with (
        running_service(config) as site,
        running_page(site) as served,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=executable, args=args)
        try:
            page = await browser.new_page()
            page.set_default_timeout(30_000)
            await page.goto(served.url + "/")
            await page.wait_for_url(re.compile(r".*/login\?next=/$"))
            await page.fill("#password", OWNER_PASSWORD)
            await page.click('button[type="submit"]')
            await page.wait_for_url(re.compile(r".*/$"))
            assert "Connected to the RTCC." in await page.inner_text("main")
            cookies = await page.context.cookies()
            session = next(c for c in cookies if c["name"] == "rtcc_owner")
            # Secure on both: Chromium treats http://127.0.0.1 as a secure origin.
            assert session["secure"] and session["httpOnly"]
            assert session["sameSite"] == "Strict"
        finally:
            await browser.close()
