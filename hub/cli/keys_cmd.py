"""`rtcc-hub keys`: the request-signing key, the trust root, and the trust set sites follow.

`new` (signing key + trust root + first trust set), `rotate [--overlap 24h]`, `revoke KID`,
`publish` (send the current set again, retained, on `rtcc/v1/trust`), `show`. Every change is
published at once when a broker is configured; a site that is offline gets it when it
reconnects (the message is retained).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
from rich.table import Table

from agent.config import parse_duration
from hub.cli.common import EXIT_OK, UsageError, console, err, json_line
from hub.keys import (
    DEFAULT_OVERLAP,
    current_trust_set,
    load_signing_key,
    new_signing_key,
    publish_trust_set,
    read_jwks,
    revoke_key,
    root_key_path,
)
from hub.mqtt import HubConnectionError
from hub.state import HubHome


def _duration(text: str) -> timedelta:
    value: timedelta = parse_duration(text)
    if value.total_seconds() < 0:
        raise ValueError("the overlap cannot be negative")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="the request-signing key and the trust set")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    new = keys_sub.add_parser("new", help="make the signing key, the trust root and jwks.json")
    new.add_argument("--issuer", metavar="URL", help="the RTCC's issuer id (iss)")
    new.add_argument("--rotate", action="store_true", help="same as `keys rotate`")
    new.set_defaults(func=cmd_keys_new)
    rotate = keys_sub.add_parser(
        "rotate", help="a new signing key; the old one ends after --overlap"
    )
    _change_args(rotate)
    rotate.add_argument(
        "--overlap",
        type=_duration,
        default=DEFAULT_OVERLAP,
        metavar="DURATION",
        help="how long sites still accept the old key (default 24h; 0 revokes it at once)",
    )
    rotate.set_defaults(func=cmd_keys_rotate)
    revoke = keys_sub.add_parser("revoke", help="sites refuse this key from now on")
    revoke.add_argument("kid", help="the key id (see `rtcc-hub keys show`)")
    _change_args(revoke)
    revoke.set_defaults(func=cmd_keys_revoke)
    publish = keys_sub.add_parser("publish", help="publish the current trust set again")
    publish.set_defaults(func=cmd_keys_publish)
    show = keys_sub.add_parser("show", help="print the issuer, kid and trust set")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_keys_show)


def _change_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root-key",
        type=Path,
        metavar="PATH",
        help="the trust root key, if it is kept offline (default <home>/trust-root.key)",
    )
    parser.add_argument("--no-publish", action="store_true", help="only write jwks.json")


def _publish(home: HubHome) -> None:
    broker = home.load_config().broker
    if broker is None:
        err.print(
            "no broker configured: sites learn this trust set from jwks.json only "
            "(`rtcc-hub keys publish` once a broker is set)",
            highlight=False,
        )
        return
    try:
        version = asyncio.run(publish_trust_set(home, broker))
    except (HubConnectionError, aiomqtt.MqttError, OSError) as exc:
        err.print(
            f"[yellow]the broker could not be reached ({exc}); run `rtcc-hub keys publish` "
            "again: until then sites keep the previous trust set[/]",
            highlight=False,
        )
        return
    console.print(f"published trust set version {version} on the broker (retained)")


def cmd_keys_new(args: argparse.Namespace, home: HubHome) -> int:
    if args.rotate:
        args.overlap, args.root_key, args.no_publish = DEFAULT_OVERLAP, None, False
        return cmd_keys_rotate(args, home)
    config = home.load_config()
    issuer = args.issuer or config.issuer
    if issuer is None:
        raise UsageError("give --issuer URL: the id every request carries as iss")
    key = new_signing_key(home)
    home.save_config(config.model_copy(update={"issuer": issuer}))
    console.print(f"signing key {key.kid} for issuer {issuer}", highlight=False)
    console.print(f"sites trust the JWKS in {home.jwks_path}", highlight=False)
    console.print(
        f"trust root in {root_key_path(home)}: it only signs trust sets; keep a copy offline "
        "and give --root-key PATH to `keys rotate` / `keys revoke` if you move it",
        highlight=False,
    )
    return EXIT_OK


def cmd_keys_rotate(args: argparse.Namespace, home: HubHome) -> int:
    old = load_signing_key(home)
    key = new_signing_key(home, rotate=True, overlap=args.overlap, root_key=args.root_key)
    seconds = args.overlap.total_seconds()
    if seconds > 0:
        until = datetime.now(UTC) + args.overlap
        ends = f"sites accept {old.kid} until {until.isoformat(timespec='seconds')}"
    else:
        ends = f"{old.kid} is revoked"
    console.print(f"signing key {key.kid}; {ends}", highlight=False)
    if not args.no_publish:
        _publish(home)
    return EXIT_OK


def cmd_keys_revoke(args: argparse.Namespace, home: HubHome) -> int:
    trust_set = revoke_key(home, args.kid, root_key=args.root_key)
    console.print(
        f"revoked {args.kid}: trust set version {trust_set.ver} lists "
        f"{', '.join(trust_set.kids())}",
        highlight=False,
    )
    if not args.no_publish:
        _publish(home)
    return EXIT_OK


def cmd_keys_publish(args: argparse.Namespace, home: HubHome) -> int:
    broker = home.load_config().broker
    if broker is None:
        raise UsageError(f"no broker configured in {home.root}: run `rtcc-hub init --broker URL`")
    version = asyncio.run(publish_trust_set(home, broker))
    console.print(f"published trust set version {version} on the broker (retained)")
    return EXIT_OK


def cmd_keys_show(args: argparse.Namespace, home: HubHome) -> int:
    config = home.load_config()
    key = load_signing_key(home)
    jwks = read_jwks(home)
    trust_set = current_trust_set(home)
    entries = []
    if trust_set is not None:
        for kid, trusted in zip(trust_set.kids(), trust_set.keys, strict=True):
            ends = datetime.fromtimestamp(trusted.exp, UTC).isoformat() if trusted.exp else None
            entries.append({"kid": kid, "until": ends, "signing": kid == key.kid})
    if args.json:
        json_line(
            {
                "issuer": config.issuer,
                "kid": key.kid,
                "jwks_path": str(home.jwks_path),
                "jwks": jwks,
                "trust_set": {"version": trust_set.ver, "keys": entries} if trust_set else None,
            }
        )
        return EXIT_OK
    table = Table(show_header=False, box=None)
    table.add_row("issuer", config.issuer or "(not set)")
    table.add_row("signing kid", key.kid)
    table.add_row("JWKS file", str(home.jwks_path))
    if trust_set is None:
        table.add_row("keys in JWKS", ", ".join(k.get("kid", "?") for k in jwks["keys"]))
    else:
        table.add_row("trust set", f"version {trust_set.ver}")
        for entry in entries:
            note = "signs now" if entry["signing"] else f"until {entry['until'] or 'revoked'}"
            table.add_row("  key", f"{entry['kid']} ({note})")
    console.print(table)
    return EXIT_OK
