"""The owner's side of the demo: the owner's page (`rtcc-edge owner serve`, its own process) and
Chromium driving it as the shop owner would on a phone: sign in, open the request waiting for
them, watch the preview of exactly the footage that would be sent, approve it. Screenshots go to
demo-run/owner-page-*.png."""

from __future__ import annotations

import hashlib
import secrets
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import tomlkit

from demo.console import CHROMIUM, _pin
from demo.shell import DemoError

if TYPE_CHECKING:
    from demo.story import Story

PHONE = {"width": 390, "height": 844}


class OwnerPage:
    def __init__(self, story: Story) -> None:
        self.story = story
        self.password = secrets.token_urlsafe(12)
        self.url = ""
        self.cert: bytes | None = None  # the page's certificate (DER) when it speaks HTTPS

    def start(self) -> None:
        """Set the owner's password, put the page on a free loopback port, start it."""
        story, sh = self.story, self.story.sh
        sh.step("The owner opens their page: sharing, requests and approvals from a phone")
        (story.work / "owner-password").write_text(self.password + "\n")
        sh.run(story.agent("owner", "passwd", "--stdin"), stdin=self.password + "\n")
        port = _free_port()
        _set_listen(story.config, f"127.0.0.1:{port}")
        sh.start("owner-page", story.agent("owner", "serve"))
        sh.wait_for("the owner's page", lambda: _listening(port), timeout=30)
        self.cert = _certificate(port)
        self.url = f"{'https' if self.cert else 'http'}://127.0.0.1:{port}"
        sh.say(f"  owner's page: {self.url}/   (password in demo-run/owner-password)")
        if self.cert is not None:
            sh.say(f"  its certificate's SHA-256 fingerprint: {_fingerprint(self.cert)}")

    def approve(self, jti: str, case: str) -> list[Path]:
        """Chromium, phone-sized: sign in, watch the request's preview, approve it."""
        from playwright.sync_api import sync_playwright

        sh = self.story.sh
        sh.say("  the owner signs in, watches the preview of the footage and approves it")
        work = self.story.work
        shots = {name: work / f"owner-page-{name}.png" for name in ("overview", "request", "done")}
        args = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
        if self.cert is not None:
            pem = ssl.DER_cert_to_PEM_cert(self.cert).encode()
            args.append(f"--ignore-certificate-errors-spki-list={_pin(pem)}")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
            try:
                page = browser.new_page(viewport=PHONE)  # type: ignore[arg-type]
                page.set_default_timeout(60_000)
                page.goto(self.url + "/login")
                page.fill("#password", self.password)
                page.click('button[type="submit"]')
                page.wait_for_url(self.url + "/")
                page.screenshot(path=str(shots["overview"]), full_page=True)
                page.goto(self.url + "/requests")
                card = page.locator(f"#request-{jti}")
                video = card.locator("video")
                video.scroll_into_view_if_needed()
                video.evaluate("v => { v.muted = true; return v.play(); }")
                handle = video.element_handle()
                page.wait_for_function("v => v.readyState >= 2 && v.currentTime > 1", arg=handle)
                video.evaluate("v => v.pause()")
                seconds = float(video.evaluate("v => v.duration"))
                sh.say(f"  preview played: {seconds:.1f} s of footage from the local store")
                page.screenshot(path=str(shots["request"]), full_page=True)
                card.locator("button.yes").click()
                page.wait_for_selector(f"text=Approved: the footage for case {case}")
                page.screenshot(path=str(shots["done"]), full_page=True)
            finally:
                browser.close()
        for path in shots.values():
            if not path.is_file():
                raise DemoError(f"no screenshot {path.name}")
            sh.say(f"  saved {path}")
        return list(shots.values())


def _set_listen(config: Path, listen: str) -> None:
    """`[owner_page] listen` in the site's configuration, everything else as it was."""
    target = config.resolve()
    document = tomlkit.parse(target.read_text(encoding="utf-8"))
    section = document.get("owner_page")
    if section is None:
        section = tomlkit.table()
        document["owner_page"] = section
    section["enabled"] = True
    section["listen"] = listen
    target.write_text(tomlkit.dumps(document), encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _certificate(port: int) -> bytes | None:
    """The certificate the page presents (DER), or None when it speaks plain HTTP (loopback
    without a certificate). The demo pins what it is shown, as the owner compares the
    fingerprint the installer printed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only reading it: Chromium then trusts this key alone
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            return tls.getpeercert(binary_form=True)
    except (ssl.SSLError, OSError):
        return None


def _fingerprint(der: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())
