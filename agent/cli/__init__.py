"""`rtcc-edge`: a thin command line over the agent's library.

Each command group lives in its own module `agent.cli.<name>_cmd` exposing
`register(subparsers)`; handlers take the parsed namespace and return the exit status
(0 ok, 1 something checked failed, 2 bad usage or configuration).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from agent import __version__
from agent.log import configure_logging

# Command modules, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "config_cmd",
    "keys_cmd",
    "owner_cmd",
    "owner_page_cmd",
    "audit_cmd",
    "clips_cmd",
    "store_cmd",
    "run_cmd",
    "enroll_cmd",
    "retract_cmd",
    "discover_cmd",
    "check_cmd",
    "cameras_cmd",
    "doctor_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtcc-edge",
        description="Site agent for a city Real Time Crime Center camera-sharing program.",
    )
    parser.add_argument("--version", action="version", version=f"rtcc-edge {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $RTCC_EDGE_CONFIG or /etc/rtcc-edge/agent.toml)",
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="override log.level"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"agent.cli.{name}")
        module.register(subparsers)
    return parser


def _size_consoles() -> None:
    """Honour $COLUMNS as of this run: the shared consoles were made at import time."""
    from agent.cli.common import console, err_console

    columns = os.environ.get("COLUMNS", "")
    for shared in (console, err_console):
        shared.width = int(columns) if columns.isdigit() and int(columns) > 0 else None  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> int:
    _size_consoles()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level or "warning")
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
