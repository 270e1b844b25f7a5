"""`rtcc-edge discover`: find the ONVIF cameras and recorders on this site's network.

WS-Discovery by multicast on every interface (or `--interface`), unicast Probes and a sweep of
the usual ONVIF ports over `--scan` ranges (for other VLANs and for cameras that ignore
Probes). With `--username` (and the password from `--password-stdin` or a prompt) every device
found is also asked who it is and how many channels it has, so recorders list their channels.
The work is `agent.compat.discovery`; this module reads the arguments and prints the result,
which is kept in the state directory so `rtcc-edge cameras add N` can take a device by its
number. Exit status: 0 if devices were found, 1 if none, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from agent.cli.common import console, err_console
from agent.compat.discovery import Login, discover
from agent.compat.discovery_cache import save_cache
from agent.compat.profiles import ProfileError, ProfileSet, load_profiles
from agent.compat.report import DiscoveredCamera, DiscoveryReport
from agent.config import (
    DEFAULT_STATE_DIR,
    AgentConfig,
    ConfigError,
    load_config,
    resolve_config_path,
)
from agent.log import configure_logging
from agent.onvif import DEFAULT_PORTS, WS_DISCOVERY_PORT, ScanRangeError
from agent.onvif.finder import Phase


def _port_list(text: str) -> list[int]:
    try:
        ports = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of ports: {text!r}") from None
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"ports must be 1-65535: {text!r}")
    return ports


def _port(text: str) -> int:
    return _port_list(text)[0]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError("give 0.1 to 60 seconds")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "discover",
        help="find ONVIF cameras (WS-Discovery, unicast scan, port sweep)",
        description="Find ONVIF cameras: multicast WS-Discovery on every interface, plus "
        "unicast Probes and a sweep of common ONVIF ports over --scan ranges. "
        "Exit 0 if cameras were found, 1 if none.",
    )
    parser.add_argument(
        "--scan",
        action="append",
        default=[],
        metavar="CIDR",
        help="also probe these addresses (e.g. 192.168.20.0/24; up to a /22 in all); repeatable",
    )
    parser.add_argument(
        "--interface",
        action="append",
        default=[],
        metavar="NAME|ADDR",
        help="multicast only on this interface (default: every interface with multicast)",
    )
    parser.add_argument("--no-multicast", action="store_true", help="unicast --scan only")
    parser.add_argument(
        "--ports",
        type=_port_list,
        default=list(DEFAULT_PORTS),
        metavar="P,P,…",
        help=f"ports the sweep tries (default {','.join(map(str, DEFAULT_PORTS))})",
    )
    parser.add_argument(
        "--ws-port",
        type=_port,
        default=WS_DISCOVERY_PORT,
        metavar="PORT",
        help=f"WS-Discovery port (default {WS_DISCOVERY_PORT})",
    )
    parser.add_argument(
        "--wait", type=_seconds, default=2.0, metavar="S", help="how long to listen (default 2)"
    )
    parser.add_argument(
        "--username",
        metavar="NAME",
        help="log in to every device found to read its model, firmware and channels",
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read that password from the first line of standard input (else: prompted)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def optional_config(args: argparse.Namespace) -> AgentConfig | None:
    """The configuration if there is a valid one; discovery works without."""
    path = resolve_config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        if path.exists():
            err_console.print(
                f"[yellow]note:[/] {path} is not valid ({len(exc.problems)} problem(s)); "
                "using defaults",
                highlight=False,
            )
        return None
    configure_logging(args.log_level or config.log.level, fmt=config.log.format)
    return config


def optional_profiles() -> ProfileSet | None:
    try:
        return load_profiles()
    except ProfileError as exc:
        err_console.print(f"[yellow]note:[/] firmware profiles unavailable: {exc.problems[0]}")
        return None


def _model(camera: DiscoveredCamera) -> str:
    return camera.model or camera.name or "-"


def _notes(camera: DiscoveredCamera) -> list[str]:
    notes = [q.detail for q in camera.quirks]
    if camera.recorder is not None:
        count = len(camera.recorder.channels)
        listed = f"{count} channels" if count else "channels listed with --username"
        notes.insert(0, f"recorder ({camera.recorder.reason}): {listed}")
    if camera.error is not None:
        notes.append(f"login failed: {camera.error.message}")
    if camera.configured_as:
        notes.append(f"configured as {camera.configured_as}")
    if camera.clock_offset_s is not None and abs(camera.clock_offset_s) > 2:
        notes.append(f"clock off by {camera.clock_offset_s:+.0f} s")
    return notes


def _print(report: DiscoveryReport) -> None:
    if not report.cameras:
        where = f" on {', '.join(report.scanned)}" if report.scanned else ""
        err_console.print(
            f"No ONVIF camera answered{where}. Cameras on another VLAN need --scan <subnet>.",
            highlight=False,
        )
        return
    table = Table(title=f"{len(report.cameras)} device(s) found in {report.duration_s:.1f} s")
    for column in ("#", "address", "model"):
        table.add_column(column, no_wrap=True)
    for column in ("vendor", "found by", "notes"):
        table.add_column(column)
    for camera in report.cameras:
        table.add_row(
            str(camera.index),
            f"{camera.host}:{camera.port}",
            _model(camera),
            camera.vendor.name if camera.vendor else "-",
            ", ".join(camera.found_by).replace("_", " "),
            "; ".join(_notes(camera)),
        )
    console.print(table)
    recorders = [c for c in report.cameras if c.recorder is not None]
    for camera in (c for c in recorders if c.recorder is not None and c.recorder.channels):
        assert camera.recorder is not None
        channels = Table(title=f"#{camera.index} {_model(camera)}: channels")
        for column in ("channel", "picture", "main profile", "sub profile"):
            channels.add_column(column)
        for channel in camera.recorder.channels:
            size = f"{channel.width}x{channel.height}" if channel.width and channel.height else "-"
            channels.add_row(
                str(channel.number),
                size,
                f"{channel.main_profile or '-'} ({channel.main_encoding or '?'})",
                f"{channel.sub_profile or '-'} ({channel.sub_encoding or '?'})",
            )
        console.print(channels)
    console.print(
        "Check one with `rtcc-edge check <address>`; add one with `rtcc-edge cameras add <#>`"
        + (" (a recorder's channels with `--channels 1-8` or `all`)." if recorders else "."),
        highlight=False,
    )


def _login(args: argparse.Namespace) -> Login | None:
    if args.username is None:
        return None
    if args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"ONVIF password for {args.username}: ")
    else:
        raise ValueError("give the password with --password-stdin (or run on a terminal)")
    return Login(args.username, password)


def run(args: argparse.Namespace) -> int:
    config = optional_config(args)
    profiles = optional_profiles()
    try:
        login = _login(args)
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/]", highlight=False)
        return 2
    show_progress = not args.json and sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        console=err_console,
        transient=True,
        disable=not show_progress,
    ) as bar:
        tasks: dict[Phase, TaskID] = {
            "ws_discovery": bar.add_task("WS-Discovery", total=1.0),
        }
        if args.scan:
            tasks["port_sweep"] = bar.add_task("port sweep", total=None)

        def progress(phase: Phase, done: float, total: float) -> None:
            if phase in tasks:
                bar.update(tasks[phase], completed=done, total=total)

        try:
            report = asyncio.run(
                discover(
                    scan=args.scan,
                    interfaces=args.interface,
                    multicast=not args.no_multicast,
                    ws_port=args.ws_port,
                    sweep_ports=args.ports,
                    wait=args.wait,
                    progress=progress,
                    config=config,
                    profiles=profiles,
                    login=login,
                )
            )
        except ScanRangeError as exc:
            err_console.print(f"[red]{exc}[/]", highlight=False)
            return 2
    state_dir = config.state_dir if config is not None else DEFAULT_STATE_DIR
    try:
        save_cache(state_dir, report)
    except OSError as exc:
        err_console.print(
            f"[yellow]note:[/] cannot save the result in {state_dir} ({exc.strerror}); "
            "`cameras add` will need the address instead of its number",
            highlight=False,
        )
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        if not args.no_multicast and not report.interfaces:
            err_console.print(
                "[yellow]note:[/] no interface with multicast: only --scan ranges were probed",
                highlight=False,
            )
        _print(report)
    return 0 if report.cameras else 1
