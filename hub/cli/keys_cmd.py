"""`rtcc-hub keys`: the request-signing key and its JWKS."""

from __future__ import annotations

import argparse

from rich.table import Table

from hub.cli.common import (
    EXIT_OK,
    UsageError,
    console,
    json_line,
)
from hub.keys import load_signing_key, new_signing_key, read_jwks
from hub.state import HubHome


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="the request-signing key and its JWKS")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    new = keys_sub.add_parser("new", help="make the signing key and jwks.json")
    new.add_argument("--issuer", metavar="URL", help="the RTCC's issuer id (iss)")
    new.add_argument("--rotate", action="store_true", help="replace an existing key")
    new.set_defaults(func=cmd_keys_new)
    show = keys_sub.add_parser("show", help="print the issuer, kid and JWKS")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_keys_show)


def cmd_keys_new(args: argparse.Namespace, home: HubHome) -> int:
    config = home.load_config()
    issuer = args.issuer or config.issuer
    if issuer is None:
        raise UsageError("give --issuer URL: the id every request carries as iss")
    key = new_signing_key(home, rotate=args.rotate)
    home.save_config(config.model_copy(update={"issuer": issuer}))
    console.print(f"signing key {key.kid} for issuer {issuer}", highlight=False)
    console.print(f"sites trust the JWKS in {home.jwks_path}", highlight=False)
    return EXIT_OK


def cmd_keys_show(args: argparse.Namespace, home: HubHome) -> int:
    config = home.load_config()
    key = load_signing_key(home)
    jwks = read_jwks(home)
    if args.json:
        json_line(
            {
                "issuer": config.issuer,
                "kid": key.kid,
                "jwks_path": str(home.jwks_path),
                "jwks": jwks,
            }
        )
        return EXIT_OK
    table = Table(show_header=False, box=None)
    table.add_row("issuer", config.issuer or "(not set)")
    table.add_row("signing kid", key.kid)
    table.add_row("JWKS file", str(home.jwks_path))
    table.add_row("keys in JWKS", ", ".join(k.get("kid", "?") for k in jwks["keys"]))
    console.print(table)
    return EXIT_OK
