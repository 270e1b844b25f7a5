"""`rtcc-edge clips list|export`: what footage the store holds, and cutting a window out of it."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich import filesize
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from agent.cli.common import console, err_console, load_or_report, print_json
from agent.config import AgentConfig
from agent.store import ClipResult, ClipStore, Coverage, InvalidWindow, NoFootage, StoreError
from agent.store.layout import check_camera_id
from agent.units import parse_time


def _times(
    args: argparse.Namespace, config: AgentConfig
) -> tuple[datetime | None, datetime | None] | None:
    """`--from` and `--to`: `now`, a relative time (`-5m`, `now-1h30m`, `+10m`), RFC 3339, or a
    local time in the site's time zone (`2026-11-22 07:05`); None once the error is printed."""
    zone = config.site.zone()
    parsed: list[datetime | None] = []
    for option, text in (("--from", args.start), ("--to", args.end)):
        try:
            parsed.append(None if text is None else parse_time(text, zone=zone))
        except ValueError as exc:
            err_console.print(f"{option}: {exc}", highlight=False)
            return None
    return parsed[0], parsed[1]


def camera_arg(text: str) -> str:
    try:
        return check_camera_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("clips", help="list recorded footage or export a clip")
    sub = parser.add_subparsers(dest="clips_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="coverage and gaps of one camera's footage")
    listing.add_argument("--camera", required=True, type=camera_arg, help="camera id")
    listing.add_argument("--from", dest="start", default=None, help="start (default: 24 h ago)")
    listing.add_argument("--to", dest="end", default=None, help="end (default: now)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)
    _allow_relative_times(listing)

    export = sub.add_parser("export", help="cut a window into one MP4 (stream copy)")
    export.add_argument("--camera", required=True, type=camera_arg, help="camera id")
    export.add_argument("--from", dest="start", required=True, help="window start")
    export.add_argument("--to", dest="end", required=True, help="window end")
    export.add_argument("-o", "--output", required=True, type=Path, help="MP4 file to write")
    export.add_argument("--force", action="store_true", help="overwrite an existing file")
    export.add_argument("--json", action="store_true", help="machine-readable output")
    export.set_defaults(func=run_export)
    _allow_relative_times(export)


def _allow_relative_times(parser: argparse.ArgumentParser) -> None:
    """Let `--from -5m` through as a value: argparse takes any other `-x` word for an option.

    argparse has no public hook for this; `_negative_number_matcher` is how it recognises
    `-5` as a value rather than an option (unchanged since Python 3.2).
    """
    parser._negative_number_matcher = re.compile(r"^-\s*\d+(\.\d+)?(ms|[smhdw])?$")


def open_store(config: AgentConfig) -> ClipStore | None:
    """The configured store, or None (after saying why) if there is none yet or it is unusable."""
    try:
        return ClipStore.from_config(config, create=False)
    except StoreError as exc:
        err_console.print(f"[red]{exc}[/]", highlight=False)
        return None


def _coverage_json(coverage: Coverage) -> dict[str, object]:
    return {
        "camera": coverage.camera,
        "from": coverage.start.isoformat(),
        "to": coverage.end.isoformat(),
        "covered_seconds": round(coverage.covered_seconds, 3),
        "spans": [
            {
                "start": s.start.isoformat(),
                "end": s.end.isoformat(),
                "seconds": round((s.end - s.start).total_seconds(), 3),
                "segments": s.segments,
                "bytes": s.bytes,
            }
            for s in coverage.spans
        ],
        "gaps": [
            {"start": g.start.isoformat(), "end": g.end.isoformat(), "seconds": round(g.seconds, 3)}
            for g in coverage.gaps
        ],
    }


def run_list(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    times = None if config is None else _times(args, config)
    if config is None or times is None:
        return 2
    end = times[1] or datetime.now(UTC)
    start = times[0] or end - timedelta(hours=24)
    if end <= start:
        err_console.print("--to must be after --from", highlight=False)
        return 2
    store = open_store(config)
    if store is None:
        return 2
    with store:
        coverage = store.coverage(args.camera, start, end)
    if args.json:
        print_json(_coverage_json(coverage))
        return 0
    one_day = start.astimezone(UTC).date() == end.astimezone(UTC).date()

    def when(value: datetime) -> str:
        return _fmt(value)[11:] if one_day else _fmt(value)

    table = Table(title=f"{args.camera}: {_fmt(start)} → {_fmt(end)}")
    table.add_column("")
    table.add_column("from (UTC)", no_wrap=True)
    table.add_column("to (UTC)", no_wrap=True)
    for column in ("length", "segments", "size"):
        table.add_column(column, justify="right", no_wrap=True)
    rows: list[tuple[datetime, tuple[str, ...]]] = [
        (
            span.start,
            (
                "[green]footage[/]",
                when(span.start),
                when(span.end),
                _duration((span.end - span.start).total_seconds()),
                str(span.segments),
                filesize.decimal(span.bytes),
            ),
        )
        for span in coverage.spans
    ]
    rows += [
        (gap.start, ("[red]gap[/]", when(gap.start), when(gap.end), _duration(gap.seconds), "", ""))
        for gap in coverage.gaps
    ]
    for _, cells in sorted(rows, key=lambda r: r[0]):
        table.add_row(*cells)
    console.print(table)
    console.print(
        f"covered {_duration(coverage.covered_seconds)} of "
        f"{_duration((end - start).total_seconds())}; {len(coverage.gaps)} gap(s)",
        highlight=False,
    )
    return 0


def _fmt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 1:
        return f"{int(hours)}h{int(minutes):02d}m{secs:04.1f}s"
    if minutes >= 1:
        return f"{int(minutes)}m{secs:04.1f}s"
    return f"{secs:.1f}s"


def clip_json(result: ClipResult) -> dict[str, object]:
    return {
        "path": str(result.path),
        "camera": result.camera,
        "requested": {
            "start": result.requested_start.isoformat(),
            "end": result.requested_end.isoformat(),
        },
        "actual": {
            "start": result.first_frame.isoformat(),
            "end": result.last_frame.isoformat(),
        },
        "sha256": result.sha256,
        "bytes": result.bytes,
        "container": result.container,
        "codec": result.codec,
        "width": result.width,
        "height": result.height,
        "duration": round(result.duration, 6),
        "frames": result.frames,
        "gaps": [{"start": g.start.isoformat(), "end": g.end.isoformat()} for g in result.gaps],
        "segments": [
            {
                "name": s.name,
                "sha256": s.sha256,
                "bytes": s.bytes,
                "start": s.start.isoformat(),
                "end": s.end.isoformat(),
                "complete": s.complete,
            }
            for s in result.segments
        ],
        "notes": list(result.notes),
    }


def run_export(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    times = None if config is None else _times(args, config)
    if config is None or times is None:
        return 2
    args.start, args.end = times
    output: Path = args.output
    if output.exists() and not args.force:
        err_console.print(f"{output} exists; use --force to overwrite", highlight=False)
        return 2
    if not output.parent.is_dir():
        err_console.print(f"no such directory: {output.parent}", highlight=False)
        return 2
    store = open_store(config)
    if store is None:
        return 2
    try:
        with store:
            if args.json:
                result = store.extract(args.camera, args.start, args.end, output)
            else:
                with Progress(
                    TextColumn("[bold]exporting"),
                    BarColumn(),
                    TaskProgressColumn(),
                    TimeRemainingColumn(),
                    console=err_console,
                    transient=True,
                ) as bar:
                    task = bar.add_task("export", total=1.0)
                    result = store.extract(
                        args.camera,
                        args.start,
                        args.end,
                        output,
                        progress=lambda fraction: bar.update(task, completed=fraction),
                    )
    except InvalidWindow as exc:
        err_console.print(f"bad window: {exc}", highlight=False)
        return 2
    except NoFootage as exc:
        err_console.print(f"[red]{exc}[/]; nothing written", highlight=False)
        return 1
    except (StoreError, OSError) as exc:
        err_console.print(f"[red]export failed:[/] {exc}", highlight=False)
        return 1
    if args.json:
        print_json(clip_json(result))
        return 0
    console.print(f"wrote {result.path} ({filesize.decimal(result.bytes)})", highlight=False)
    console.print(f"sha256 {result.sha256}", highlight=False)
    console.print(
        f"{result.codec} {result.width}x{result.height}, {result.frames} frames, "
        f"{_duration(result.duration)}: {_fmt(result.first_frame)} → {_fmt(result.last_frame)}",
        highlight=False,
        soft_wrap=True,
    )
    if result.gaps:
        console.print(f"[yellow]{len(result.gaps)} gap(s) in the window:[/]")
        for gap in result.gaps:
            console.print(
                f"  {_fmt(gap.start)} → {_fmt(gap.end)} ({_duration(gap.seconds)})",
                highlight=False,
            )
    else:
        console.print("no gaps")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    return 0
