"""`rtcc-hub broker-config`: a mosquitto configuration for the sites (TLS, ACL)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.broker_config import default_owner, write_broker_config
from hub.ca import CaError
from hub.cli.common import EXIT_OK, UsageError, console
from hub.state import HubHome


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    brokercfg = commands.add_parser(
        "broker-config", help="write a mosquitto configuration for the sites (TLS, ACL)"
    )
    brokercfg.add_argument("--out", required=True, type=Path, metavar="DIR")
    brokercfg.add_argument("--host", required=True, help="the broker's name as sites reach it")
    brokercfg.add_argument("--name", action="append", default=[], help="another name/address")
    brokercfg.add_argument("--port", type=int, default=8883, help="site listener port")
    brokercfg.add_argument("--bind", default="0.0.0.0", help="site listener address")  # noqa: S104
    brokercfg.add_argument("--hub-port", type=int, default=8884, help="hub listener port")
    brokercfg.add_argument("--hub-bind", default="127.0.0.1", help="hub listener address")
    brokercfg.add_argument(
        "--no-hub-client", action="store_true", help="leave hub.toml's broker section alone"
    )
    brokercfg.add_argument(
        "--user", help="owner of the files (default: mosquitto, as root; '' for nobody)"
    )
    brokercfg.set_defaults(func=cmd_broker_config)


def cmd_broker_config(args: argparse.Namespace, home: HubHome) -> int:
    try:
        files = write_broker_config(
            home,
            args.out,
            host=args.host,
            names=args.name,
            port=args.port,
            bind=args.bind,
            hub_port=args.hub_port,
            hub_bind=args.hub_bind,
            hub_client=not args.no_hub_client,
            run_as=(args.user or None) if args.user is not None else default_owner(),
        )
    except CaError as exc:
        raise UsageError(str(exc)) from None
    console.print(f"wrote {files.config}", highlight=False)
    console.print(f"sites connect to {files.site_url}; the hub to {files.hub_url}", highlight=False)
    console.print(f"run it with: mosquitto -c {files.config}", highlight=False)
    return EXIT_OK
