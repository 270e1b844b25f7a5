"""`rtcc-edge run`: the daemon (recorders and retention; later the link), until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from agent.cli.common import err_console, load_or_report


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run", help="run the agent: record every camera, keep the store; stop with SIGTERM"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    # Imported here: the recorder and store pull in PyAV, which other commands do not need.
    from agent.daemon import DaemonError, run_daemon

    try:
        return asyncio.run(run_daemon(config))
    except DaemonError as exc:
        err_console.print(f"[bold red]rtcc-edge run:[/] {exc}", highlight=False)
        return 1
