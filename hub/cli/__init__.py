"""`rtcc-hub`: the reference RTCC side: keys, trusted sites, the camera map, requests, watching.

A thin command line over the hub's library. Each command group lives in its own module
`hub.cli.<name>_cmd` exposing `register(subparsers)`; handlers take the parsed namespace and the
hub's home and return the exit status.

Exit status: 0 done; 1 the request was rejected, failed or cancelled; 2 bad usage, configuration
or an unreachable broker; 3 still waiting when `--timeout` ran out.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import aiomqtt

from hub import __version__
from hub.cli.common import EXIT_USAGE, UsageError, console, err
from hub.db import DatabaseError
from hub.keys import HubKeyError
from hub.mqtt import HubConnectionError
from hub.request import RequestError
from hub.state import HubHome, HubStateError

__all__ = ["build_parser", "console", "err", "main"]

# Command modules, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "init_cmd",
    "keys_cmd",
    "sites_cmd",
    "request_cmd",
    "watch_cmd",
    "verify_cmd",
    "incident_cmd",
    "serve_cmd",
    "users_cmd",
    "db_cmd",
    "tokens_cmd",
    "broker_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtcc-hub",
        description="Reference RTCC side of rtcc-edge: keys, sites, signed requests, events.",
        epilog="exit status: 0 done, 1 rejected/failed/cancelled, 2 usage or configuration "
        "error or broker unreachable, 3 still waiting at --timeout",
    )
    parser.add_argument("--version", action="version", version=f"rtcc-hub {__version__}")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="state directory (default: $RTCC_HUB_HOME or ~/.local/share/rtcc-hub)",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="the hub's database (default: $RTCC_HUB_DATABASE, `database` in hub.toml, or "
        "SQLite in the home); a city: postgresql+asyncpg://USER@HOST/NAME",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"hub.cli.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    home = HubHome.resolve(args.home)
    try:
        return int(handler(args, home))
    except (
        UsageError,
        HubStateError,
        HubKeyError,
        HubConnectionError,
        RequestError,
        DatabaseError,
    ) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return EXIT_USAGE
    except aiomqtt.MqttError as exc:
        err.print(f"[red]broker:[/] {exc}", highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
