"""`rtcc-edge owner cert [--renew]`: make (or keep) the owner's page HTTPS certificate and say
its fingerprint and the address to open; and the page's lines of `rtcc-edge status`.

The installer runs `owner cert`; a valid certificate is kept (its fingerprint is what the owner
checked on the phone), `--renew` makes a new one (after the machine got a new name or address).
The key is given to the page's user's group (`rtcc-edge-page`) when that group exists.
"""

from __future__ import annotations

import argparse
import grp
import os

from agent.cli.common import console, err_console, load_or_report
from agent.config import AgentConfig
from agent.owner_page import tls


def register(owner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cert = owner.add_parser(
        "cert", help="make the owner's page HTTPS certificate and show its fingerprint"
    )
    cert.add_argument(
        "--renew", action="store_true", help="make a new one even if the current one is valid"
    )
    cert.set_defaults(func=run_cert)


def say(text: str) -> None:
    """A line as it is: no markup, no wrapping, and `:AB:` in a fingerprint is not an emoji."""
    console.print(text, highlight=False, markup=False, emoji=False, soft_wrap=True)


def _page_group() -> int | None:
    try:
        return grp.getgrnam(tls.PAGE_USER).gr_gid
    except KeyError:
        return None  # not installed as a service (a test, a checkout): keep the file's group


def run_cert(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    page = config.owner_page
    try:
        made = tls.make_certificate(
            page.certificate, page.private_key, renew=args.renew, key_group=_page_group()
        )
    except PermissionError as exc:
        err_console.print(
            f"[red]cannot write the certificate ({exc.filename}: {exc.strerror}): run it with "
            "sudo[/]",
            highlight=False,
        )
        return 2
    except OSError as exc:
        err_console.print(
            f"cannot make the certificate: {exc}", highlight=False, markup=False, soft_wrap=True
        )
        return 2
    what = "made" if made.made else "kept (still valid; --renew makes a new one)"
    say(f"certificate: {made.cert_path} {what}")
    say(f"  valid for: {', '.join(made.names)}")
    say(f"  until: {made.not_after:%Y-%m-%d}")
    say(f"fingerprint (SHA-256): {made.fingerprint}")
    say(f"address: {tls.page_url(config)}")
    if made.made and os.geteuid() == 0:
        say("If the page is running, restart it to use this certificate:")
        say("  sudo systemctl restart rtcc-edge-page")
    return 0


def page_status_lines(config: AgentConfig) -> list[str]:
    """What `rtcc-edge status` says about the page: off, or its address and the fingerprint a
    phone's browser will show (read from the certificate file, which is public)."""
    page = config.owner_page
    if not page.enabled:
        return ["owner's page: off ([owner_page] enabled = true turns it on)"]
    lines = [f"owner's page: {tls.page_url(config)}"]
    if not tls.uses_tls(page):
        lines.append("  plain HTTP on this machine only (`sudo rtcc-edge owner cert` adds HTTPS)")
        return lines
    try:
        lines.append(f"  certificate fingerprint (SHA-256): {tls.fingerprint(page.certificate)}")
    except FileNotFoundError:
        lines.append(f"  no certificate at {page.certificate}: sudo rtcc-edge owner cert")
    except (OSError, ValueError) as exc:
        lines.append(f"  certificate {page.certificate} cannot be read: {exc}")
    return lines
