"""`rtcc-edge discover`: find the ONVIF cameras on this site's network.

WS-Discovery by multicast on every interface (or `--interface`), unicast Probes and a sweep of
the usual ONVIF ports over `--scan` ranges (for other VLANs and for cameras that ignore
Probes). The result is cached in the state directory so `rtcc-edge cameras add N` can take a
camera by its number. Exit status: 0 if cameras were found, 1 if none, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from agent.cli.common import console, err_console
from agent.compat.profiles import ProfileError, ProfileSet, load_profiles
from agent.compat.report import (
    DiscoveredCamera,
    DiscoveryReport,
    InterfaceInfo,
    QuirkFound,
    Vendor,
)
from agent.config import (
    DEFAULT_STATE_DIR,
    AgentConfig,
    ConfigError,
    load_config,
    resolve_config_path,
)
from agent.log import configure_logging
from agent.onvif import DEFAULT_PORTS, WS_DISCOVERY_PORT, ScanRangeError, find_cameras
from agent.onvif.addresses import XADDR_DUPLICATE_PORT, XADDR_OTHER_HOST, XADDR_ZERO_HOST
from agent.onvif.finder import NO_WS_DISCOVERY, FoundCamera, Phase

CACHE_FILE = "discovery.json"
_QUIRK_TEXT = {
    XADDR_ZERO_HOST: ("advertises host 0.0.0.0", "used the address it answered from"),
    XADDR_OTHER_HOST: ("advertises another host", "used the address it answered from"),
    XADDR_DUPLICATE_PORT: ("advertises its port twice", "duplicated port removed"),
    NO_WS_DISCOVERY: ("ignores WS-Discovery Probes", "found by the port sweep"),
}


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


def _vendor(profiles: ProfileSet | None, found: FoundCamera) -> Vendor | None:
    if profiles is None:
        return None
    match = profiles.match(manufacturer=None, model=found.model, scopes=found.scopes)
    if match is None:
        return None
    return Vendor(
        id=match.vendor_id,
        name=match.vendor_name,
        confidence=match.confidence,
        reasons=list(match.reasons),
    )


def _configured(config: AgentConfig | None, found: FoundCamera) -> str | None:
    if config is None:
        return None
    for camera in config.cameras:
        if camera.onvif_url is None:
            continue
        parts = urlsplit(camera.onvif_url)
        if parts.hostname == found.host and (parts.port or 80) == found.port:
            return camera.id
    return None


def _report(
    result_cameras: list[FoundCamera],
    *,
    started: datetime,
    duration: float,
    interfaces: list[InterfaceInfo],
    scanned: list[str],
    hosts_scanned: int,
    ws_port: int,
    sweep_ports: list[int],
    config: AgentConfig | None,
    profiles: ProfileSet | None,
) -> DiscoveryReport:
    cameras = [
        DiscoveredCamera(
            index=index,
            host=found.host,
            port=found.port,
            device_url=found.device_url,
            endpoint=found.endpoint,
            model=found.model,
            name=found.name,
            location=found.location,
            scopes=found.scopes,
            found_by=list(found.found_by),
            vendor=_vendor(profiles, found),
            clock_offset_s=round(found.clock.offset, 3)
            if found.clock is not None and found.clock.offset is not None
            else None,
            quirks=[
                QuirkFound(id=q, detail=_QUIRK_TEXT[q][0], workaround=_QUIRK_TEXT[q][1])
                for q in found.quirks
                if q in _QUIRK_TEXT
            ],
            configured_as=_configured(config, found),
        )
        for index, found in enumerate(result_cameras, start=1)
    ]
    return DiscoveryReport(
        started_at=started,
        duration_s=round(duration, 3),
        interfaces=interfaces,
        scanned=scanned,
        hosts_scanned=hosts_scanned,
        ws_port=ws_port,
        sweep_ports=sweep_ports,
        cameras=cameras,
    )


def cache_path(state_dir: Path) -> Path:
    return state_dir / CACHE_FILE


def save_cache(state_dir: Path, report: DiscoveryReport) -> None:
    """Atomically, so `cameras add` never reads half a file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".discovery.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(report.model_dump_json(indent=2))
        Path(tmp).replace(cache_path(state_dir))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cache(state_dir: Path) -> DiscoveryReport:
    """The last discovery; OSError / ValueError if there is none or it is not readable."""
    return DiscoveryReport.model_validate_json(cache_path(state_dir).read_bytes())


def _print(report: DiscoveryReport) -> None:
    if not report.cameras:
        where = f" on {', '.join(report.scanned)}" if report.scanned else ""
        err_console.print(
            f"No ONVIF camera answered{where}. Cameras on another VLAN need --scan <subnet>.",
            highlight=False,
        )
        return
    table = Table(title=f"{len(report.cameras)} camera(s) found in {report.duration_s:.1f} s")
    for column in ("#", "address", "model"):
        table.add_column(column, no_wrap=True)
    for column in ("vendor", "found by", "notes"):
        table.add_column(column)
    for camera in report.cameras:
        notes = [q.detail for q in camera.quirks]
        if camera.configured_as:
            notes.append(f"configured as {camera.configured_as}")
        if camera.clock_offset_s is not None and abs(camera.clock_offset_s) > 2:
            notes.append(f"clock off by {camera.clock_offset_s:+.0f} s")
        table.add_row(
            str(camera.index),
            f"{camera.host}:{camera.port}",
            camera.model or camera.name or "-",
            camera.vendor.name if camera.vendor else "-",
            ", ".join(camera.found_by).replace("_", " "),
            "; ".join(notes),
        )
    console.print(table)
    console.print(
        "Check one with `rtcc-edge check <address>`; add one with `rtcc-edge cameras add <#>`.",
        highlight=False,
    )


def run(args: argparse.Namespace) -> int:
    config = optional_config(args)
    profiles = optional_profiles()
    show_progress = not args.json and sys.stderr.isatty()
    started = datetime.now(UTC)
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
            result = asyncio.run(
                find_cameras(
                    scan=args.scan,
                    interfaces=args.interface,
                    multicast=not args.no_multicast,
                    ws_port=args.ws_port,
                    sweep_ports=args.ports,
                    wait=args.wait,
                    progress=progress,
                )
            )
        except ScanRangeError as exc:
            err_console.print(f"[red]{exc}[/]", highlight=False)
            return 2
    report = _report(
        result.cameras,
        started=started,
        duration=result.duration,
        interfaces=[InterfaceInfo(name=i.name, address=i.address) for i in result.interfaces],
        scanned=result.ranges,
        hosts_scanned=result.hosts_scanned,
        ws_port=result.ws_port,
        sweep_ports=result.sweep_ports,
        config=config,
        profiles=profiles,
    )
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
        if not args.no_multicast and not result.interfaces:
            err_console.print(
                "[yellow]note:[/] no interface with multicast: only --scan ranges were probed",
                highlight=False,
            )
        _print(report)
    return 0 if report.cameras else 1
