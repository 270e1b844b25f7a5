"""`rtcc-edge enroll --hub URL --token T`: join an RTCC's program (the installer runs it).

The token can come from `--token`, `--token-file FILE` (`-` for standard input) or the
environment variable RTCC_EDGE_ENROLL_TOKEN; the last two keep it out of the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from rich.table import Table
from rich.text import Text

from agent.cli.common import console, err_console, print_json
from agent.cli.keys_cmd import device_key_path
from agent.config import resolve_config_path
from agent.enroll import EnrollError, Ownership, enroll

TOKEN_ENV = "RTCC_EDGE_ENROLL_TOKEN"  # noqa: S105 - a variable name
SERVICE_USER = "rtcc-edge"
# Failures that are the caller's to fix (exit 2); the rest are refusals or outages (exit 1).
_USAGE_CODES = ("usage", "config", "config_not_editable", "already_enrolled", "device_key")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "enroll",
        help="enroll this site with an RTCC hub (one-time token)",
        description="Send a CSR and the device's public key with a one-time token; write the "
        "certificates, the RTCC's keys and the [rtcc] section of the configuration.",
    )
    parser.add_argument("--hub", required=True, metavar="URL", help="https://hub.example.gov")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--token", help=f"the enrollment token (or set ${TOKEN_ENV})")
    source.add_argument(
        "--token-file", type=Path, metavar="FILE", help="read the token from FILE (- for stdin)"
    )
    parser.add_argument(
        "--ca", type=Path, metavar="FILE", help="CA certificate of the hub's HTTPS server"
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help=f"the service user that must own the keys (default: {SERVICE_USER} if it exists "
        "and this runs as root; '' for nobody)",
    )
    parser.add_argument("--force", action="store_true", help="enroll again (new identity)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_enroll)


def _token(args: argparse.Namespace) -> str:
    token: str | None
    if args.token is not None:
        token = args.token
    elif args.token_file is not None:
        try:
            if str(args.token_file) == "-":
                token = sys.stdin.readline()
            else:
                token = args.token_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise EnrollError(
                f"cannot read {args.token_file}: {exc.strerror}", code="usage"
            ) from exc
        except UnicodeDecodeError as exc:
            raise EnrollError(
                f"{args.token_file} is not a token (not UTF-8 text)", code="usage"
            ) from exc
    else:
        token = os.environ.get(TOKEN_ENV)
    if not token or not token.strip():
        raise EnrollError(f"no token: give --token, --token-file or ${TOKEN_ENV}", code="usage")
    return token.strip()


def _owner(name: str | None) -> Ownership:
    if name == "":
        return Ownership()
    if name is None:
        if os.geteuid() != 0:
            return Ownership()
        try:
            return Ownership.of_user(SERVICE_USER)
        except LookupError:
            return Ownership()
    return Ownership.of_user(name)


def _fail(args: argparse.Namespace, error: EnrollError) -> None:
    if args.json:
        print_json({"ok": False, "error": error.code, "message": str(error)})
    else:
        line = Text.assemble(("enrollment failed: ", "bold red"), str(error))
        err_console.print(line, highlight=False, soft_wrap=True)


def run_enroll(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    try:
        token = _token(args)
        try:
            owner = _owner(args.user)
        except LookupError as exc:
            raise EnrollError(f"--user: {exc}", code="usage") from None
    except EnrollError as exc:
        _fail(args, exc)
        return 2
    try:
        result = asyncio.run(
            enroll(
                path,
                hub_url=args.hub,
                token=token,
                device_key_at=device_key_path,
                ca_file=args.ca,
                owner=owner,
                force=args.force,
            )
        )
    except EnrollError as exc:
        _fail(args, exc)
        return 2 if exc.code in _USAGE_CODES else 1
    if args.json:
        print_json(
            {
                "ok": True,
                "site": result.site_id,
                "name": result.site_name,
                "location": {"lat": result.lat, "lon": result.lon},
                "broker_url": result.broker_url,
                "issuer": result.issuer,
                "device_kid": result.device_kid,
                "cert_expires": result.cert_expires.isoformat(),
                "config": str(result.config_path),
                "files": [str(p) for p in result.files],
            }
        )
        return 0
    table = Table(show_header=False, box=None)
    table.add_row("site id", result.site_id)
    table.add_row("site name", result.site_name)
    table.add_row("location", f"{result.lat:.5f}, {result.lon:.5f}")
    table.add_row("broker", result.broker_url)
    table.add_row("RTCC issuer", result.issuer)
    table.add_row("device key", result.device_kid + (" (new)" if result.device_key_created else ""))
    table.add_row("certificate valid until", f"{result.cert_expires:%Y-%m-%d}")
    table.add_row("configuration", str(result.config_path))
    console.print("[bold green]enrolled[/]")
    console.print(table)
    return 0
