"""`rtcc-hub verify`: check a received clip or snapshot against its signed manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table
from rich.text import Text

from agent.units import parse_time, site_zone
from hub.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    console,
    json_line,
    read_jwk_argument,
)
from hub.state import HubHome
from hub.verify import Verification, read_manifest_text, verify_files


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = commands.add_parser(
        "verify", help="check a received clip or snapshot against its signed manifest (offline)"
    )
    verify.add_argument("clip", type=Path, help="the clip (MP4) or snapshot (JPEG)")
    verify.add_argument("manifest", type=Path, help="its manifest (the JWS the site signed)")
    verify.add_argument(
        "--site-key", metavar="JWK", help="the site's device key (JSON or a file) to check with"
    )
    verify.add_argument("--from", dest="start", metavar="TIME", help="the window asked for")
    verify.add_argument("--to", dest="end", metavar="TIME")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace, home: HubHome) -> int:
    if (args.start is None) != (args.end is None):
        raise UsageError("--from and --to go together")
    window = None
    if args.start is not None:
        try:
            zone = site_zone()
            window = (parse_time(args.start, zone=zone), parse_time(args.end, zone=zone))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not args.clip.is_file():
        raise UsageError(f"{args.clip}: no such file")
    try:
        token = read_manifest_text(args.manifest)
    except OSError as exc:
        raise UsageError(f"{args.manifest}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    site_key = read_jwk_argument(args.site_key) if args.site_key else None
    trusted = home.trusted_sites() if site_key is None else {}
    result = verify_files(
        args.clip, token, trusted=trusted, site_key=site_key, expect_window=window
    )
    if args.json:
        json_line(result.to_json())
    else:
        _print_verification(result)
    return EXIT_OK if result.ok else EXIT_FAILED


def _print_verification(result: Verification) -> None:
    styles = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    marks = {"ok": "✓", "warn": "!", "fail": "✗"}
    table = Table(title="Verification", title_justify="left")
    for column in ("check", "", "detail"):
        table.add_column(column)
    for check in result.checks:
        mark = Text(f"{marks[check.status]} {check.status}", style=styles[check.status])
        table.add_row(check.name, mark, check.detail)
    console.print(table)
    if result.ok:
        console.print(Text("verified", style="bold green"))
    else:
        console.print(Text("NOT verified", style="bold red"))
