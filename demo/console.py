"""The demo's last act: the RTCC console. An analyst account, two neighbouring businesses
simulated with the agent's real link code (`sitesim`), an incident opened from the command
line, and Chromium signing in to the console to save screenshots of the map, the incident and
the evidence locker into demo-run/."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from demo.shell import BIN, DemoError

if TYPE_CHECKING:
    from demo.story import Story

ANALYST = "analyst-17"
CHROMIUM = Path("/usr/bin/chromium")


def _pin(cert_pem: bytes) -> str:
    """base64(SHA-256(SPKI)): Chromium accepts the hub's certificate by this pin, nothing else."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def console_tour(story: Story, *, lat: float, lon: float, case: str) -> list[Path]:
    sh = story.sh
    sh.step("The RTCC console: an analyst account, two neighbours, an incident")
    password = secrets.token_urlsafe(12)
    secret = story.work / "analyst-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    sh.run(story.hub("users", "add", ANALYST, "--role", "supervisor", "--name", "Analyst 17",
                     "--password-file", str(secret)))  # fmt: skip
    ready = story.work / "sitesim-ready.json"
    sh.start(
        "sitesim",
        [str(BIN / "sitesim"), "run", "--hub-home", str(story.hub_home), "--sites", "2",
         "--near", f"{lat},{lon}", "--spread", "150m", "--prefix", "neighbour",
         "--dir", str(story.work / "sitesim"), "--footage", "2m", "--ready-file", str(ready)],
    )  # fmt: skip
    sh.wait_for("the simulated neighbours", ready.exists, timeout=90)
    proc = sh.run(
        story.hub("incident", "new", "--near", f"{lat},{lon}", "--radius", "300m",
                  "--from", "now-40s", "--to", "now-10s", "--case", case,
                  "--reason", "armed robbery at the corner store", "--requester", ANALYST,
                  "--until", "accepted", "--timeout", "60s"),
        timeout=120,
        limit=30,
    )  # fmt: skip
    found = re.search(r"incident (\d+):", proc.stdout)
    if found is None:
        raise DemoError("the hub did not say which incident it opened")
    incident = found.group(1)
    sh.step("The analyst opens the console in a browser")
    sh.say(f"  console: {story.hub_url}/   (user {ANALYST}, password in demo-run/analyst-password)")
    shots = _screenshots(story, incident, case, password)
    for shot in shots:
        sh.say(f"  saved {shot}")
    return shots


def _screenshots(story: Story, incident: str, case: str, password: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    pin = _pin((story.hub_home / "tls" / "server.pem").read_bytes())
    url = story.hub_url
    shots = {name: story.work / f"console-{name}.png" for name in ("map", "incident", "locker")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", f"--ignore-certificate-errors-spki-list={pin}"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(url + "/login")
            page.fill('input[name="username"]', ANALYST)
            page.fill('input[name="password"]', password)
            page.click('button[type="submit"]')
            page.wait_for_url(url + "/")
            page.wait_for_selector("body[data-map-ready]")
            page.screenshot(path=str(shots["map"]))
            page.goto(f"{url}/incidents/{incident}")
            # The integrated cameras' clips arrive and are verified while we look.
            page.wait_for_selector("#cameras .state.good")
            page.screenshot(path=str(shots["incident"]))
            page.goto(f"{url}/evidence/case/{case}")
            page.wait_for_selector("[data-verified='yes']")
            page.screenshot(path=str(shots["locker"]), full_page=True)
        finally:
            browser.close()
    for path in shots.values():
        if not path.is_file():
            raise DemoError(f"no screenshot {path.name}")
    return list(shots.values())
