"""`rtcc-edge check CAMERA|URL`: can this camera meet the program's footage bar?

CAMERA is a configured camera id (its address and credentials come from the configuration);
otherwise an address: `host[:port]` or `http://host[:port]/onvif/device_service` for ONVIF, or
`rtsp://host[:port]/path` for a stream alone. Credentials for an address: `--username`, and the
password from `--password-stdin` or a prompt (never on the command line). Exit status: 0 when
nothing failed (warnings allowed), 1 when a check failed, 2 for bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from rich.table import Table
from rich.text import Text

from agent.cameras import AddError, parse_channels
from agent.cli.common import console, err_console, load_or_report, print_json
from agent.cli.discover_cmd import optional_config, optional_profiles
from agent.compat.check import (
    CheckOptions,
    CheckResult,
    Target,
    remember_report,
    storage_facts,
)
from agent.compat.probe import ProbeOptions
from agent.compat.recorder_check import check_device
from agent.compat.report import CameraReport, Check, RecorderReport, Status
from agent.config import AgentConfig, CompatConfig, resolve_config_path
from agent.fsutil import atomic_write
from agent.onvif.addresses import device_service_url

STATUS_STYLE: dict[Status, str] = {
    "pass": "green",
    "warn": "yellow",
    "fail": "bold red",
    "skip": "dim",
}
_HOST_PORT = re.compile(
    r"^(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>\d{1,5}))?$"
)


class UsageError(Exception):
    pass


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.5 <= value <= 120:
        raise argparse.ArgumentTypeError("give 0.5 to 120 seconds")
    return value


def _channels(text: str) -> list[int] | str:
    try:
        return parse_channels(text)
    except AddError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", metavar="NAME", help="the camera's ONVIF/RTSP user")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (else: prompted)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check one camera against the program's footage bar",
        description="Interrogate a camera over ONVIF, open its stream, compare its firmware "
        "with published vulnerabilities and say pass / warn / fail for each check, with the "
        "remedy. Exit 1 if a check failed.",
    )
    parser.add_argument(
        "target",
        metavar="CAMERA|URL",
        help="a configured camera id, host[:port], http://…/onvif/device_service or rtsp://…",
    )
    add_credential_arguments(parser)
    parser.add_argument(
        "--stream", default=None, metavar="main|sub|TOKEN", help="the stream to judge (main)"
    )
    parser.add_argument(
        "--rtsp-port",
        type=_port,
        action="append",
        default=[],
        metavar="PORT",
        help="RTSP port to try with the vendor's known paths if GetStreamUri fails",
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=5.0, metavar="S", help="per ONVIF call (default 5)"
    )
    parser.add_argument(
        "--channel",
        type=_channels,
        default="all",
        metavar="N|all",
        help="a recorder's channel(s) to check (default: all of them)",
    )
    parser.add_argument("--snapshot", type=Path, metavar="FILE", help="save a JPEG snapshot here")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def read_password(args: argparse.Namespace, *, prompt: str) -> str | None:
    """From --password-stdin, or a prompt without echo on a terminal; None if neither."""
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return None


@dataclass(frozen=True)
class Address:
    """An address from the command line, split from any credentials written into it."""

    kind: Literal["onvif", "rtsp"]
    url: str  # the URL to use (an RTSP URL keeps its credentials: rtsp_source takes them out)
    label: str  # without credentials
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_address(text: str) -> Address:
    """host[:port], http://host[:port]/path or rtsp://…; UsageError for anything else."""
    parts = urlsplit(text)
    if parts.scheme in ("http", "https", "rtsp", "rtsps"):
        if not parts.hostname:
            raise UsageError(f"no host in {text!r}")
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise UsageError(f"bad port in {text!r}") from None
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        label = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        if parts.scheme.startswith("rtsp"):
            return Address("rtsp", text, label, username, password)
        if parts.scheme == "https":
            raise UsageError("ONVIF over https is not supported yet: use the http:// address")
        return Address("onvif", label, label, username, password)
    match = _HOST_PORT.match(text)
    if match is None:
        raise UsageError(
            f"{text!r} is neither a configured camera nor an address "
            "(host[:port], http://…, rtsp://…)"
        )
    port = int(match.group("port") or 80)
    if not 0 < port < 65536:
        raise UsageError(f"bad port in {text!r}")
    url = device_service_url(match.group("host").strip("[]"), port)
    return Address("onvif", url, url)


def ask_username(args: argparse.Namespace, given: str | None) -> str:
    username = args.username or given
    if username is None:
        if not sys.stdin.isatty():
            raise UsageError("give --username for the camera")
        username = input("ONVIF username: ").strip()
    return username


def target_from_address(text: str, args: argparse.Namespace) -> Target:
    """A Target for an address given on the command line (UsageError if it is not one)."""
    address = parse_address(text)
    stream = args.stream or "main"
    if address.kind == "rtsp":
        username, password = args.username or address.username, address.password
        if password is None and username is not None:
            password = read_password(args, prompt=f"RTSP password for {username}: ")
        return Target(
            label=address.label,
            rtsp_url=address.url,
            rtsp_url_source="given",
            username=username,
            password=password,
            stream=stream,
        )
    username = ask_username(args, address.username)
    password = address.password
    if password is None:
        password = read_password(args, prompt=f"ONVIF password for {username}: ")
    return Target(
        label=address.label,
        onvif_url=address.url,
        username=username,
        password=password,
        stream=stream,
    )


def checks_table(title: str, checks: Sequence[Check]) -> Table:
    """Checks as the owner or technician reads them: status, why, and what to do."""
    table = Table(title=title, show_lines=True)
    table.add_column("check", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("why")
    table.add_column("what to do")
    for item in checks:
        table.add_row(
            item.title,
            Text(item.status.upper(), style=STATUS_STYLE[item.status]),
            item.reason,
            item.remedy or "",
        )
    return table


def print_report(report: CameraReport) -> None:
    identity = report.identity
    title = report.target
    if identity is not None:
        made = " ".join(x for x in (identity.manufacturer, identity.model) if x)
        title += f" — {made}" + (f", firmware {identity.firmware}" if identity.firmware else "")
    console.print(checks_table(title, report.checks))
    if report.quirks:
        quirks = Table(title="quirks seen")
        for column in ("quirk", "what the camera does", "what the agent does"):
            quirks.add_column(column)
        for quirk in report.quirks:
            quirks.add_row(quirk.id, quirk.detail, quirk.workaround or "reported above")
        console.print(quirks)
    stream = report.stream
    if stream is not None and stream.codec is not None:
        console.print(
            f"stream: {stream.url} — {stream.codec} {stream.profile or ''} "
            f"{stream.width}x{stream.height}, {stream.fps or 0:.1f} fps, keyframe every "
            f"{stream.keyframe_interval_s or stream.keyframe_interval_at_least_s or 0:.1f} s, "
            f"{(stream.bitrate_bps or 0) / 1e6:.1f} Mbit/s",
            highlight=False,
            markup=False,
        )
    console.print(
        Text.assemble("overall: ", (report.status.upper(), STATUS_STYLE[report.status])),
        highlight=False,
    )


def print_recorder(report: RecorderReport) -> None:
    summary = Table(title=f"{report.target} — recorder ({report.recorder.reason})")
    for column in ("channel", "", "stream", "first problem"):
        summary.add_column(column)
    for channel in report.channels:
        stream = channel.stream
        what = (
            f"{stream.codec} {stream.width}x{stream.height}"
            if stream is not None and stream.codec
            else "-"
        )
        problem = next((c for c in channel.checks if c.status == "fail"), None) or next(
            (c for c in channel.checks if c.status == "warn"), None
        )
        summary.add_row(
            str(channel.channel),
            Text(channel.status.upper(), style=STATUS_STYLE[channel.status]),
            what,
            f"{problem.title}: {problem.reason}" if problem is not None else "",
        )
    console.print(summary)
    for channel in report.channels:
        print_report(channel)
    console.print(
        Text.assemble("recorder overall: ", (report.status.upper(), STATUS_STYLE[report.status])),
        highlight=False,
    )


def _config_for(args: argparse.Namespace) -> tuple[AgentConfig | None, bool]:
    """(config, target_is_a_configured_camera). A camera id needs a valid configuration."""
    looks_like_id = re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", args.target) is not None
    if looks_like_id and resolve_config_path(args.config).exists():
        config = load_or_report(args)
        if config is None:
            raise UsageError("the configuration is not valid")
        return config, config.camera(args.target) is not None
    return optional_config(args), False


def run(args: argparse.Namespace) -> int:
    try:
        config, configured = _config_for(args)
        if configured:
            assert config is not None
            camera = config.camera(args.target)
            assert camera is not None
            target = Target.from_config(camera, state_dir=config.state_dir)
            if args.stream:
                target = dataclasses.replace(target, stream=args.stream)
        else:
            target = target_from_address(args.target, args)
    except UsageError as exc:
        err_console.print(f"[red]{exc}[/]", highlight=False)
        return 2
    storage = None
    if config is not None:
        enabled = sum(1 for c in config.cameras if c.enabled)
        storage = storage_facts(config, cameras_sharing=enabled + (0 if configured else 1))
    options = CheckOptions(
        compat=config.compat if config is not None else CompatConfig(),
        storage=storage,
        probe=ProbeOptions(open_timeout=args.timeout, read_timeout=args.timeout),
        onvif_timeout=args.timeout,
        rtsp_ports=tuple(args.rtsp_port),
    )
    if not args.json:
        err_console.print(f"checking {target.label} …", highlight=False)
    try:
        report, results = asyncio.run(
            check_device(
                target, options=options, profiles=optional_profiles(), channels=args.channel
            )
        )
    except ValueError as exc:
        err_console.print(Text(str(exc), style="red"), highlight=False)
        return 2
    result: CheckResult = results[0]
    if args.snapshot is not None:
        if result.snapshot is None:
            err_console.print("[yellow]no snapshot: the stream could not be read[/]")
        else:
            try:
                atomic_write(args.snapshot, result.snapshot, mode=0o600)
            except OSError as exc:
                err_console.print(f"[red]cannot write {args.snapshot}: {exc.strerror}[/]")
                return 2
    if configured and config is not None:
        remember_report(config.state_dir, result.report)
    if args.json:
        print_json(report.model_dump(mode="json"))
    elif isinstance(report, RecorderReport):
        print_recorder(report)
    else:
        print_report(report)
    return 1 if report.status == "fail" else 0
