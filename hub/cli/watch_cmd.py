"""`rtcc-hub watch`: every event, status and registry, checked as it arrives."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from rich.text import Text

from hub.cli.common import (
    EXIT_OK,
    UsageError,
    arg_type,
    broker_config,
    console,
    json_line,
    site_id_arg,
)
from hub.mqtt import connect_any
from hub.state import HubHome, TrustedSitesFile
from hub.trust import MARKS, Checked
from hub.watch import summary, watch


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watcher = commands.add_parser("watch", help="every event, status and registry, checked")
    watcher.add_argument("--site", type=arg_type(site_id_arg))
    watcher.add_argument("--json", action="store_true", help="JSON lines")
    watcher.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    watcher.set_defaults(func=cmd_watch)


def cmd_watch(args: argparse.Namespace, home: HubHome) -> int:
    broker = broker_config(home)
    trusted = TrustedSitesFile(home)
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")

    async def run() -> int:
        seen = 0
        async with connect_any(broker) as client:
            async for checked in watch(client, trusted, site=args.site):
                _print_watched(checked, json_lines=args.json)
                seen += 1
                if args.count is not None and seen >= args.count:
                    return EXIT_OK
        return EXIT_OK

    return asyncio.run(run())


def _print_watched(checked: Checked, *, json_lines: bool) -> None:
    now = datetime.now(UTC)
    if json_lines:
        json_line(
            {
                "time": now.isoformat(),
                "topic": checked.topic,
                "site": checked.site,
                "kind": checked.kind,
                "verdict": checked.verdict.value,
                "reason": checked.reason,
                "claims": checked.claims,
            }
        )
        return
    style = "green" if checked.ok else "bold red"
    line = Text(f"{now:%H:%M:%S} ") + Text(f"{checked.site or '?'} {checked.kind:<8} ")
    line += Text(f"{MARKS[checked.verdict]} {checked.verdict.value:<9} ", style=style)
    line += Text(summary(checked) if checked.ok else checked.reason)
    console.print(line)
