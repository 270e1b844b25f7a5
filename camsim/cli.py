"""`camsim`: run virtual ONVIF cameras, or list the personas they can play.

    camsim run --cameras 3 --persona hikvision --password s3cret
    camsim run --config cameras.toml --ready-file /tmp/camsim.json
    camsim personas

`run` prints a table of the cameras (ONVIF and RTSP URLs) once they all answer, writes the same as
JSON to `--ready-file` if asked (atomically, so a waiter never reads half a file), and stops
cleanly on SIGINT or SIGTERM. Exit status: 0 after a clean stop, 1 if the cameras could not
start, 2 for bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console
from rich.table import Table

from camsim import __version__
from camsim.config import ConfigError, HostConfig, load_config, parse_config
from camsim.host import CameraHost
from camsim.persona import PERSONAS

RTSP_PORT = 554
_CAMERA_FLAGS = ("cameras", "persona", "host", "spread", "user", "password", "vendor_ports")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("--cameras must be from 1 to 256")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camsim", description="Virtual ONVIF cameras for tests, demos and training."
    )
    parser.add_argument("--version", action="version", version=f"camsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run cameras until SIGINT/SIGTERM")
    run.add_argument("--config", type=Path, metavar="FILE", help="TOML file describing cameras")
    cams = run.add_argument_group("cameras from flags (instead of --config)")
    cams.add_argument("--cameras", type=_count, metavar="N", help="how many cameras (default 1)")
    cams.add_argument("--persona", choices=sorted(PERSONAS), help="default: generic")
    cams.add_argument("--host", help="listen address (default 127.0.0.1)")
    cams.add_argument(
        "--spread",
        action="store_true",
        help="one address per camera, counting up from --host (127.0.0.1, .2, ...)",
    )
    cams.add_argument("--user", help="username (default admin)")
    cams.add_argument("--password", help="password (default: a random one, printed)")
    cams.add_argument(
        "--vendor-ports",
        action="store_true",
        help="listen on the persona's usual ONVIF port and RTSP 554 (in a namespace)",
    )
    net = run.add_argument_group("discovery and control")
    net.add_argument("--discovery-port", type=_port, metavar="PORT", help="default 3702")
    net.add_argument("--discovery-interface", metavar="ADDR", help="default 127.0.0.1")
    net.add_argument("--no-discovery", action="store_true", help="do not answer Probes")
    net.add_argument("--no-multicast", action="store_true", help="unicast Probes only")
    net.add_argument("--control-port", type=_port, metavar="PORT", help="default: a free port")
    net.add_argument("--no-control", action="store_true", help="no fault-injection API")
    run.add_argument("--ready-file", type=Path, metavar="FILE", help="write camera URLs as JSON")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    run.set_defaults(func=_run)

    personas = commands.add_parser("personas", help="list the personas cameras can play")
    personas.add_argument("--json", action="store_true", help="machine-readable output")
    personas.set_defaults(func=_personas)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`camsim personas | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# -- camsim personas ---------------------------------------------------------------------------


def _personas(args: argparse.Namespace) -> int:
    if args.json:
        rows = [
            {
                "name": p.name,
                "description": p.description,
                "vendor": p.vendor,
                "model": p.model,
                "firmware": p.firmware,
                "main": f"{p.main.codec} {p.main.width}x{p.main.height}@{p.main.fps}",
                "sub": f"{p.sub.codec} {p.sub.width}x{p.sub.height}@{p.sub.fps}",
                "rtsp": {"main": p.rtsp_main, "sub": p.rtsp_sub},
                "onvif_port": p.onvif_port,
                "quirks": sorted(p.quirks),
                "clock_skew": p.clock_skew,
            }
            for p in PERSONAS.values()
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="camsim personas")
    table.add_column("name", no_wrap=True)
    for column in ("vendor / model", "firmware", "main", "quirks", "description"):
        table.add_column(column)
    for p in PERSONAS.values():
        table.add_row(
            p.name,
            f"{p.vendor} {p.model}",
            p.firmware,
            f"{p.main.codec} {p.main.width}x{p.main.height}",
            "\n".join(sorted(p.quirks)) or "-",
            p.description,
        )
    Console().print(table)
    return 0


# -- camsim run --------------------------------------------------------------------------------


def _configure_logging(level: str) -> None:
    # camsim never imports the agent, so it sets up its own (plain) structlog output.
    numeric = getattr(logging, level.upper())
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _flag_config(args: argparse.Namespace) -> dict[str, Any]:
    count = args.cameras or 1
    persona = args.persona or "generic"
    host = args.host or "127.0.0.1"
    try:
        first = ipaddress.IPv4Address(host)
    except ValueError:
        raise ConfigError("--host", [f"not an IPv4 address: {host!r}"]) from None
    if args.spread and int(first) + count - 1 > int(ipaddress.IPv4Address("255.255.255.254")):
        raise ConfigError("--spread", ["not enough addresses after --host"])
    password = args.password or secrets.token_urlsafe(9)
    cameras = []
    for index in range(count):
        camera: dict[str, Any] = {
            "id": f"cam{index + 1}",
            "persona": persona,
            "host": str(first + index) if args.spread else host,
            "username": args.user or "admin",
            "password": password,
        }
        if args.vendor_ports:
            camera["onvif_port"] = PERSONAS[persona].onvif_port
            camera["rtsp_port"] = RTSP_PORT
        cameras.append(camera)
    return {"cameras": cameras}


def _host_config(args: argparse.Namespace) -> HostConfig:
    if args.config is not None:
        given = [f"--{n.replace('_', '-')}" for n in _CAMERA_FLAGS if getattr(args, n)]
        if given:
            raise ConfigError("usage", [f"{', '.join(given)} cannot be combined with --config"])
        data = load_config(args.config).model_dump(mode="json")
        source = str(args.config)
    else:
        data = _flag_config(args)
        source = "flags"
    discovery = data.setdefault("discovery", {})
    control = data.setdefault("control", {})
    if args.discovery_port is not None:
        discovery["port"] = args.discovery_port
    if args.discovery_interface is not None:
        discovery["interface"] = args.discovery_interface
    if args.no_discovery:
        discovery["enabled"] = False
    if args.no_multicast:
        discovery["multicast"] = False
    if args.control_port is not None:
        control["port"] = args.control_port
    if args.no_control:
        control["enabled"] = False
    return parse_config(data, source=source)


def write_ready_file(path: Path, info: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), readable by the owner only: it holds passwords."""
    directory = path.parent if str(path.parent) else Path()
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(info, out, indent=2)
            out.write("\n")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _print_ready(info: dict[str, Any]) -> None:
    table = Table(title="camsim cameras ready")
    for column in ("id", "persona", "model", "ONVIF", "RTSP main", "RTSP sub"):
        table.add_column(column, overflow="fold")
    for camera in info["cameras"]:
        table.add_row(
            camera["id"],
            camera["persona"],
            f"{camera['vendor']} {camera['model']}",
            camera["onvif_url"],
            camera["rtsp"]["main"],
            camera["rtsp"]["sub"],
        )
    console = Console()
    console.print(table)
    users = sorted({(c["username"], c["password"]) for c in info["cameras"]})
    console.print("credentials: " + ", ".join(f"{u} / {p}" for u, p in users), markup=False)
    discovery = info["discovery"]
    if discovery["enabled"]:
        console.print(f"WS-Discovery: UDP port {discovery['port']}", markup=False)
    if info["control_url"]:
        console.print(f"control API: {info['control_url']}/cameras", markup=False)


async def _serve(config: HostConfig, ready_file: Path | None) -> int:
    host = CameraHost(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await host.start()
    except OSError as exc:
        print(f"camsim: cannot start the cameras: {exc}", file=sys.stderr)
        return 1
    written = False
    try:
        info = host.describe()
        _print_ready(info)
        if ready_file is not None:
            try:
                await asyncio.to_thread(write_ready_file, ready_file, info)
            except OSError as exc:
                print(f"camsim: cannot write {ready_file}: {exc}", file=sys.stderr)
                return 1
            written = True
        await stop.wait()
    finally:
        await host.close()
        if written and ready_file is not None:
            await asyncio.to_thread(ready_file.unlink, missing_ok=True)
    return 0


def _run(args: argparse.Namespace) -> int:
    _configure_logging(args.log_level)
    try:
        config = _host_config(args)
    except ConfigError as exc:
        print(f"camsim: invalid configuration ({exc.source}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(config, args.ready_file))
