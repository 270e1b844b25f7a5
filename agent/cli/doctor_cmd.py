"""`rtcc-edge doctor [--json] [--bundle FILE]`: check the whole site, and pack a support bundle.

Exit status: 0 when nothing failed (warnings allowed), 1 when something failed, 2 when the
bundle could not be written.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.table import Table
from rich.text import Text

from agent.cli.check_cmd import STATUS_STYLE, checks_table, print_report
from agent.cli.common import console, err_console, print_json
from agent.compat.report import DoctorReport
from agent.config import resolve_config_path
from agent.doctor import run_doctor, write_bundle


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the whole site (config, clock, disk, broker, every camera)",
        description="Check the configuration, this host's clock, the store's disk, the RTCC "
        "broker and every configured camera. Exit 1 if anything failed.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--bundle",
        type=Path,
        metavar="FILE",
        help="also write a support bundle (tar.gz: report, redacted config, logs, versions)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="per camera call (default 5)"
    )
    parser.set_defaults(func=run)


def _print(report: DoctorReport) -> None:
    title = f"site {report.site_id or '?'} — {report.config_path}"
    console.print(checks_table(title, report.checks))
    for camera in report.cameras:
        print_report(camera)
    if report.cameras:
        summary = Table(title="cameras")
        for column in ("camera", "status", "failed", "warnings"):
            summary.add_column(column)
        for camera in report.cameras:
            failed = [c.id for c in camera.checks if c.status == "fail"]
            warned = [c.id for c in camera.checks if c.status == "warn"]
            summary.add_row(
                camera.target,
                Text(camera.status.upper(), style=STATUS_STYLE[camera.status]),
                ", ".join(failed) or "-",
                ", ".join(warned) or "-",
            )
        console.print(summary)
    console.print(
        Text.assemble("overall: ", (report.status.upper(), STATUS_STYLE[report.status])),
        highlight=False,
    )


def run(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    if not args.json:
        err_console.print(f"checking the site ({path}) …", highlight=False)
    outcome = asyncio.run(run_doctor(path, onvif_timeout=args.timeout))
    report = outcome.report
    if args.json:
        print_json(report.model_dump(mode="json"))
    else:
        _print(report)
    if args.bundle is not None:
        try:
            write_bundle(args.bundle, report, config_path=path, config=outcome.config)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            err_console.print(f"[red]cannot write {args.bundle}: {reason}[/]", highlight=False)
            return 2
        err_console.print(f"support bundle written to {args.bundle}", highlight=False)
    return 1 if report.status == "fail" else 0
