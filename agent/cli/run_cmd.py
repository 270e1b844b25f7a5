"""`rtcc-edge run`: the daemon (recorders and retention; later the link), until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from agent.cli.common import err_console, load_or_report, print_problems, startup_problems
from agent.config import resolve_config_path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the agent: record every camera, keep the store; stop with SIGTERM, reload the "
        "configuration with SIGHUP",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    # The same checks as `config check`, before anything starts: a missing or broken file is a
    # sentence and exit 2, not a traceback in a restart loop.
    errors = [p for p in startup_problems(config) if p.severity == "error"]
    if errors:
        print_problems(errors)
        err_console.print(
            "[bold red]rtcc-edge run:[/] not started: fix the problems above "
            "(`rtcc-edge config check` lists them)",
            highlight=False,
        )
        return 2
    # Imported here: the recorder and store pull in PyAV, which other commands do not need.
    from agent.daemon import DaemonError, run_daemon

    try:
        return asyncio.run(run_daemon(config, config_path=resolve_config_path(args.config)))
    except DaemonError as exc:
        err_console.print(f"[bold red]rtcc-edge run:[/] {exc}", highlight=False)
        return 1
