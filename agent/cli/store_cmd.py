"""`rtcc-edge store verify|status`: prove the footage is intact, and see what is held."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rich import filesize
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from agent.cli.clips_cmd import camera_arg, open_store
from agent.cli.common import console, err_console, load_or_report, print_json
from agent.cli.recording_view import link_line, recorders_table
from agent.recorder import read_state_file, state_file_path
from agent.recorder.overview import from_state_file
from agent.store import CameraStatus, ClipStore, StoreError, StoreNotFound, VerifyReport
from agent.store.readopt import Adoptable


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("store", help="verify the clip store or show its status")
    sub = parser.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "verify", help="re-hash every segment and check each camera's chain; exit 1 on a problem"
    )
    check.add_argument("--camera", type=camera_arg, help="only this camera")
    check.add_argument(
        "--repair",
        action="store_true",
        help="first put back intact segments the index had lost (found in quarantine)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=run_verify)
    status = sub.add_parser(
        "status", help="per camera: recording state, footage held vs the bar, size, oldest"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=run_status)


def _verify_json(report: VerifyReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "checked": report.checked,
        "bytes": report.bytes,
        "tombstones": report.tombstones,
        "recording": report.recording,
        "open_segments": list(report.open_segments),
        "problems": [
            {"kind": p.kind, "camera": p.camera, "name": p.name, "detail": p.detail}
            for p in report.problems
        ],
        "notes": list(report.notes),
    }


def run_verify(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    store = open_store(config)
    if store is None:
        return 2
    repaired: list[dict[str, object]] = []
    try:
        with store:
            if args.repair:
                for item, refused in store.readopt(args.camera):
                    repaired.append(
                        {"segment": item.rel, "camera": item.camera, "readopted": refused is None}
                        | ({"why_not": refused} if refused else {})
                    )
                    if not args.json:
                        console.print(
                            f"re-adopted {item.rel} ({item.seconds:.1f} s)"
                            if refused is None
                            else f"left {item.rel} in quarantine: {refused}",
                            highlight=False,
                            markup=False,
                        )
            if args.json:
                report = store.verify(args.camera)
            else:
                with Progress(
                    TextColumn("[bold]verifying"),
                    BarColumn(),
                    DownloadColumn(),
                    TimeRemainingColumn(),
                    console=err_console,
                    transient=True,
                ) as bar:
                    task = bar.add_task("verify", total=None)
                    report = store.verify(
                        args.camera,
                        progress=lambda done, total: bar.update(task, completed=done, total=total),
                    )
    except StoreError as exc:
        err_console.print(f"[red]cannot verify:[/] {exc}", highlight=False)
        return 2
    if args.json:
        print_json(_verify_json(report) | ({"repaired": repaired} if args.repair else {}))
        return 0 if report.ok else 1
    if report.problems:
        table = Table(title="problems")
        for column in ("kind", "camera", "segment", "detail"):
            table.add_column(column)
        for problem in report.problems:
            table.add_row(
                f"[red]{problem.kind}[/]", problem.camera or "", problem.name, problem.detail
            )
        console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    for name in report.open_segments:
        console.print(f"open: {name} is still being written", highlight=False, markup=False)
    if any(p.kind == "lost_by_index" for p in report.problems):
        console.print(
            "segments marked lost_by_index are intact footage the index had lost; "
            "`rtcc-edge store verify --repair` puts them back",
            highlight=False,
        )
    if any(p.kind == "needs_recovery" for p in report.problems):
        console.print(
            "segments marked needs_recovery were left open by a recorder that stopped "
            "abruptly; start the daemon (`rtcc-edge run`) to recover them",
            highlight=False,
        )
    summary = (
        f"{report.checked} segment(s), {filesize.decimal(report.bytes)} re-hashed; "
        f"{report.tombstones} expired by retention; {report.recording} still recording"
    )
    if report.ok:
        console.print(f"[green]OK[/]: {summary}", highlight=False)
        return 0
    console.print(f"[red]{len(report.problems)} problem(s)[/]: {summary}", highlight=False)
    return 1


def _status_json(rows: list[CameraStatus]) -> list[dict[str, object]]:
    return [
        {
            "camera": r.camera,
            "hours": round(r.hours, 4),
            "bytes": r.bytes,
            "segments": r.segments,
            "oldest": r.oldest.isoformat() if r.oldest else None,
            "newest": r.newest.isoformat() if r.newest else None,
            "recording": r.recording,
            "writer_alive": r.writer_alive,
            "expired": r.expired,
            "quarantined": r.quarantined,
            "holds": r.holds,
        }
        for r in rows
    ]


def run_status(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    rows: list[CameraStatus] = []
    try:
        store: ClipStore | None = ClipStore.from_config(config, create=False)
    except StoreNotFound:
        store = None
    except StoreError as exc:
        err_console.print(f"[red]cannot read the store:[/] {exc}", highlight=False)
        return 2
    adoptable: list[Adoptable] = []
    try:
        if store is not None:
            with store:
                rows = store.status()
                adoptable = store.adoptable()
    except StoreError as exc:
        err_console.print(f"[red]cannot read the store:[/] {exc}", highlight=False)
        return 2
    known = {r.camera for r in rows}
    # Configured cameras with nothing recorded yet are worth seeing too.
    rows += [
        CameraStatus(c.id, 0, 0, 0.0, None, None, False, False, 0, 0, 0)
        for c in config.cameras
        if c.id not in known
    ]
    daemon, recorders = from_state_file(
        [c.id for c in config.cameras if c.enabled],
        read_state_file(state_file_path(config.state_dir)),
        {r.camera: r for r in rows if r.segments},
        bar=config.compat.min_retention,
    )
    states = {r.camera: r.model_dump(mode="json") for r in recorders}
    if args.json:
        cameras = [{**states.get(str(r["camera"]), {}), **r} for r in _status_json(rows)]
        print_json(
            {
                "store": str(config.store_path),
                "daemon": daemon.model_dump(mode="json"),
                "cameras": cameras,
                "lost_by_index": [
                    {"camera": a.camera, "segment": a.rel, "seconds": round(a.seconds, 3)}
                    for a in adoptable
                ],
            }
        )
        return 0
    console.print(link_line(daemon.model_dump(mode="json")["link"], running=daemon.running))
    console.print(recorders_table(list(states.values())))
    table = Table(title=f"clip store {config.store_path}")
    table.add_column("camera", no_wrap=True)
    for column in ("held", "size"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("oldest (UTC)", no_wrap=True)
    table.add_column("newest (UTC)", no_wrap=True)
    table.add_column("recording")
    table.add_column("holds", justify="right")
    for r in rows:
        if r.writer_alive:
            state = "[green]writing[/]"
        elif r.recording:
            state = "[yellow]open segment, no writer[/]"
        else:
            state = "no"
        table.add_row(
            r.camera,
            f"{r.hours:.2f} h",
            filesize.decimal(r.bytes),
            _fmt(r.oldest),
            _fmt(r.newest),
            state,
            str(r.holds),
        )
    console.print(table)
    if store is None:
        console.print("no footage recorded yet", highlight=False)
    if adoptable:
        seconds = sum(a.seconds for a in adoptable)
        console.print(
            f"[yellow]{len(adoptable)} intact segment(s) ({seconds:.0f} s) are in quarantine "
            "because the index had lost them[/]: `rtcc-edge store verify --repair` puts them back",
            highlight=False,
        )
    return 0


def _fmt(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
