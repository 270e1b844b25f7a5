"""`rtcc-edge retract`: take this site off the RTCC's map (the uninstaller runs it).

It deletes the site's retained registry and status from the broker (see `agent.link.retract`).
While the daemon runs it refuses (the daemon would publish both again); `--force` is for the
uninstaller, which has just stopped the service.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from agent.cli.common import console, err_console, load_or_report
from agent.control.client import ControlClient, ControlError, DaemonNotRunning
from agent.link.retract import RetractError, retract_presence
from agent.link.session import BrokerSettings
from agent.link.tls import TlsConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "retract",
        help="take this site off the RTCC's map (delete its registry and status at the broker)",
        description="Publish empty retained registry and status messages, so the RTCC's map "
        "no longer lists this site. Run it when leaving the program; the uninstaller does.",
    )
    parser.add_argument(
        "--force", action="store_true", help="even if the daemon seems to be running"
    )
    parser.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS")
    parser.set_defaults(func=run_retract)


def _daemon_answers(socket_path: Path) -> bool:
    try:
        ControlClient(socket_path, timeout=3.0).call("status")
    except (DaemonNotRunning, ControlError):
        return False
    return True


def run_retract(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    site = config.site.id
    if config.rtcc.broker_url is None:
        console.print(
            f"Site {site} is not enrolled with an RTCC: it is on no map, nothing to withdraw.",
            highlight=False,
        )
        return 0
    if not args.force and _daemon_answers(config.control.socket):
        err_console.print(
            "The rtcc-edge daemon is running and would publish this site again within a "
            "minute: stop it first (systemctl stop rtcc-edge), then run this again.",
            highlight=False,
        )
        return 1
    try:
        broker = BrokerSettings.from_config(config.rtcc)
        cleared = asyncio.run(retract_presence(broker, site, within=args.timeout))
    except (RetractError, TlsConfigError, ValueError) as exc:
        err_console.print(
            f"Could not take site {site} off the RTCC's map: {exc}. Ask the RTCC to run "
            f"`rtcc-hub sites retire {site}`.",
            highlight=False,
            markup=False,
        )
        return 1
    console.print(
        f"Site {site} is off the RTCC's map: its registry and status were deleted at "
        f"{broker.host}:{broker.port} ({', '.join(cleared)}).",
        highlight=False,
        markup=False,
    )
    return 0
