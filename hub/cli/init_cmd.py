"""`rtcc-hub init`: the broker connection and the issuer."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import SecretStr, ValidationError

from hub.cli.common import (
    EXIT_OK,
    UsageError,
    console,
    readable_file,
)
from hub.state import BrokerConfig, HubConfig, HubHome


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser("init", help="set the broker connection (and issuer)")
    init.add_argument("--broker", required=True, metavar="URL", help="mqtts://host:8883")
    init.add_argument("--ca", type=Path, metavar="FILE", help="CA certificate of the broker")
    init.add_argument("--cert", type=Path, metavar="FILE", help="hub client certificate")
    init.add_argument("--key", type=Path, metavar="FILE", help="hub client key")
    init.add_argument("--username", help="broker username (instead of a certificate)")
    init.add_argument("--password-file", type=Path, metavar="FILE", help="broker password")
    init.add_argument("--issuer", metavar="URL", help="the RTCC's issuer id (iss)")
    init.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace, home: HubHome) -> int:
    if (args.cert is None) != (args.key is None):
        raise UsageError("--cert and --key go together")
    if (args.username is None) != (args.password_file is None):
        raise UsageError("--username and --password-file go together")
    if args.cert is None and args.username is None:
        raise UsageError("give --cert/--key (client certificate) or --username/--password-file")
    password = None
    if args.password_file is not None:
        try:
            password = SecretStr(args.password_file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise UsageError(f"--password-file {args.password_file}: {exc.strerror}") from None
    config = home.load_config()
    try:
        broker = BrokerConfig(
            url=args.broker,
            ca_file=readable_file(args.ca, "--ca"),
            cert_file=readable_file(args.cert, "--cert"),
            key_file=readable_file(args.key, "--key"),
            username=args.username,
            password=password,
        )
    except ValidationError as exc:
        raise UsageError(f"--broker: {exc.errors()[0]['msg']}") from None
    updated = HubConfig(issuer=args.issuer or config.issuer, broker=broker)
    home.save_config(updated)
    console.print(f"wrote {home.config_path}", highlight=False)
    return EXIT_OK
