"""`rtcc-hub tokens`: one-time enrollment tokens for new sites."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from rich.table import Table

from agent.units import parse_duration, parse_point
from hub.ca import site_ca
from hub.cli.common import (
    EXIT_OK,
    UsageError,
    arg_type,
    console,
    json_line,
    site_id_arg,
)
from hub.install_line import OWNER_PAGE_FLAGS, install_line
from hub.server import load_serve_settings
from hub.state import HubHome
from hub.tokens import Location, TokenRecord, TokenStore


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = commands.add_parser("tokens", help="one-time enrollment tokens for new sites")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    token_new = tokens_sub.add_parser("new", help="make a token (shown once)")
    token_new.add_argument("--site-name", metavar="NAME", help="the business, as the RTCC knows it")
    token_new.add_argument("--location", type=arg_type(parse_point), metavar="LAT,LON")
    token_new.add_argument(
        "--site",
        type=arg_type(site_id_arg),
        help="enroll this existing site again (renew, rotate keys)",
    )
    token_new.add_argument(
        "--ttl", type=arg_type(parse_duration), default=timedelta(hours=24), metavar="DUR"
    )
    token_new.add_argument(
        "--owner-page",
        choices=sorted(OWNER_PAGE_FLAGS),
        default="lan",
        help="the owner's web page the install line turns on: on the shop's network (lan, the "
        "default: approvals from a phone), on the machine only (local), or none (off)",
    )
    token_new.add_argument("--json", action="store_true")
    token_new.set_defaults(func=cmd_tokens_new)
    token_list = tokens_sub.add_parser("list", help="tokens made, and whether each was used")
    token_list.add_argument("--json", action="store_true")
    token_list.set_defaults(func=cmd_tokens_list)


def cmd_tokens_new(args: argparse.Namespace, home: HubHome) -> int:
    store = TokenStore(home)
    name, point = args.site_name, args.location
    if args.site is not None and (previous := store.latest(args.site)) is not None:
        name = name or previous.site_name
        point = point or (previous.location.lat, previous.location.lon)
    if name is None or point is None:
        raise UsageError("give --site-name NAME and --location LAT,LON")
    try:
        token, record = store.create(
            site_name=name,
            location=Location(lat=point[0], lon=point[1]),
            ttl=args.ttl,
            site_id=args.site,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = load_serve_settings(home)
    install = None
    if settings.public_url:
        ca_pem = site_ca(home).cert_pem if settings.site_ca_https else None
        install = install_line(
            settings.public_url, token, ca_pem=ca_pem, owner_page=args.owner_page
        )
    if args.json:
        json_line(
            {
                "token": token,
                "site": record.site_id,
                "site_name": record.site_name,
                "expires": record.expires.isoformat(),
                "install": install,
            }
        )
        return EXIT_OK
    table = Table(show_header=False, box=None)
    table.add_row("site id", record.site_id)
    table.add_row("site name", record.site_name)
    table.add_row("expires", f"{record.expires:%Y-%m-%d %H:%M} UTC")
    table.add_row("token", token)
    console.print(table)
    console.print("the token is shown once and works once; give it to the site owner")
    if install:
        console.print(f"install line:\n  {install}", highlight=False, soft_wrap=True)
    return EXIT_OK


def cmd_tokens_list(args: argparse.Namespace, home: HubHome) -> int:
    now = datetime.now(UTC)
    records = TokenStore(home).records()

    def state(record: TokenRecord) -> str:
        if record.used_at is not None:
            return f"used {record.used_at:%Y-%m-%d %H:%M}"
        return "expired" if record.expired(now) else "unused"

    if args.json:
        json_line(
            [
                {
                    "site": r.site_id,
                    "site_name": r.site_name,
                    "created": r.created.isoformat(),
                    "expires": r.expires.isoformat(),
                    "used_at": r.used_at.isoformat() if r.used_at else None,
                    "device_kid": r.device_kid,
                }
                for r in records
            ]
        )
        return EXIT_OK
    table = Table(title="Enrollment tokens", title_justify="left")
    for column in ("site", "name", "expires", "state"):
        table.add_column(column)
    for record in records:
        table.add_row(
            record.site_id, record.site_name, f"{record.expires:%Y-%m-%d %H:%M}", state(record)
        )
    console.print(table)
    return EXIT_OK
