"""`rtcc-edge cameras add`: put a camera, a recorder's channels, or an RTSP-only camera into the
configuration.

    rtcc-edge discover --scan 192.168.1.0/24
    rtcc-edge cameras add 2 --username rtcc          # the 2nd device of that discovery
    rtcc-edge cameras add 192.168.1.64:80 --id front-door --name "Front door" --password-stdin
    rtcc-edge cameras add 3 --channels 1-8 --username rtcc   # a recorder: one camera per channel
    rtcc-edge cameras add --rtsp rtsp://192.168.1.70/stream1 --username admin --password-stdin

Everything is verified first (an ONVIF login, a recorder's channel list, or the RTSP stream
opened) and the password is stored encrypted with the device's secret key (`enc:v1:…`), never
in clear and never in a URL; the work is `agent.cameras`. Exit status: 0 added, 1 the camera
refused or is unreachable, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import re

from rich.text import Text

from agent.cameras import (
    AddError,
    Location,
    Login,
    Plan,
    Sharing,
    parse_channels,
    plan_onvif,
    plan_rtsp,
    split_rtsp_url,
    write_cameras,
)
from agent.cli import cameras_edit_cmd
from agent.cli.check_cmd import (
    UsageError,
    add_credential_arguments,
    ask_username,
    parse_address,
    read_password,
)
from agent.cli.common import console, err_console, load_or_report
from agent.cli.discover_cmd import optional_profiles
from agent.compat.discovery_cache import load_cache
from agent.config import ID_PATTERN, AgentConfig, ConfigError, SharingMode, resolve_config_path
from agent.secretbox import SecretError
from agent.units import parse_point


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cameras", help="list, add, change or remove the configured cameras"
    )
    sub = parser.add_subparsers(dest="cameras_command", metavar="ACTION", required=True)
    add = sub.add_parser(
        "add",
        help="add a camera or a recorder's channels (a number from the last `discover`, an "
        "address, or --rtsp URL)",
        description="Verify the camera (ONVIF login, or the RTSP stream opened), then append a "
        "[[cameras]] table to the configuration with the password encrypted. A recorder "
        "(NVR/DVR) becomes one camera per channel with --channels.",
    )
    add.add_argument(
        "target",
        nargs="?",
        metavar="N|ADDRESS",
        help="number from `rtcc-edge discover`, host[:port] or http:// URL (ONVIF)",
    )
    add.add_argument(
        "--rtsp",
        metavar="URL",
        help="a camera without ONVIF: its rtsp:// URL (credentials in it are taken out and "
        "stored encrypted)",
    )
    add.add_argument(
        "--channels",
        type=_channels,
        metavar="1-8|all",
        help="a recorder's channels to add, each as its own camera (e.g. 1-8, 1,3,5, all)",
    )
    add.add_argument(
        "--id",
        dest="camera_id",
        metavar="ID",
        help="camera id (default: from its address; a recorder's channels get -ch<N>)",
    )
    add.add_argument("--name", metavar="NAME", help="camera name (default: maker and model)")
    add.add_argument(
        "--stream", default="main", metavar="main|sub|TOKEN", help="stream to record (main)"
    )
    add.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="per ONVIF call (default 5)"
    )
    add.add_argument(
        "--rtsp-port",
        type=int,
        action="append",
        default=[],
        metavar="PORT",
        help="RTSP port to try with the vendor's channel paths when ONVIF gives no stream URI",
    )
    sharing = add.add_argument_group(
        "sharing",
        "what the RTCC may see of this camera (default private: nothing); a listed camera "
        "needs its location. With --channels, every channel gets these; change one later with "
        "`rtcc-edge sharing set`.",
    )
    sharing.add_argument(
        "--sharing",
        choices=[mode.value for mode in SharingMode],
        default=SharingMode.PRIVATE.value,
        help="private: never listed; registry: listed, every request waits for your approval; "
        "integrated: clips delivered at once within your limits",
    )
    sharing.add_argument(
        "--live", action="store_true", help="allow live view (integrated cameras only)"
    )
    sharing.add_argument(
        "--location", metavar="LAT,LON", type=_location, help="where the camera is, for the map"
    )
    sharing.add_argument("--heading", type=float, metavar="DEG", help="degrees from north")
    sharing.add_argument("--fov", type=float, metavar="DEG", help="field of view in degrees")
    sharing.add_argument("--description", metavar="TEXT", help="what it looks at, in words")
    add_credential_arguments(add)
    add.set_defaults(func=run_add)
    cameras_edit_cmd.register(sub)


def _channels(text: str) -> list[int] | str:
    try:
        return parse_channels(text)
    except AddError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _location(text: str) -> tuple[float, float]:
    try:
        return parse_point(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sharing(args: argparse.Namespace) -> Sharing:
    location = None
    if args.location is not None:
        location = Location(
            lat=args.location[0],
            lon=args.location[1],
            heading=args.heading,
            fov=args.fov,
            description=args.description,
        )
    sharing = Sharing(SharingMode(args.sharing), bool(args.live), location)
    problem = sharing.problem()
    if problem is not None:
        raise UsageError(problem)
    return sharing


def _device_url(args: argparse.Namespace, config: AgentConfig) -> str:
    if args.target.isdigit():
        try:
            report = load_cache(config.state_dir)
        except (OSError, ValueError):
            raise UsageError(
                "no discovery result to pick from: run `rtcc-edge discover` first, "
                "or give the camera's address"
            ) from None
        found = next((c for c in report.cameras if c.index == int(args.target)), None)
        if found is None:
            raise UsageError(
                f"the last discovery found {len(report.cameras)} camera(s); no number {args.target}"
            )
        return found.device_url
    address = parse_address(args.target)
    if address.kind != "onvif":
        raise UsageError(
            "give the camera's ONVIF address (host[:port]); for an RTSP URL use --rtsp URL"
        )
    return address.url


def _plan(args: argparse.Namespace, config: AgentConfig) -> tuple[Plan, Login | None]:
    """Parse what was asked, read the password, verify the camera(s); UsageError / AddError."""
    if (args.target is None) == (args.rtsp is None):
        raise UsageError("give either a camera (N or ADDRESS) or --rtsp URL")
    if args.camera_id is not None and not re.fullmatch(ID_PATTERN, args.camera_id):
        raise UsageError(
            f"camera id {args.camera_id!r}: use lower-case letters, digits, - and _ (max 63)"
        )
    profiles = optional_profiles()
    channels = args.channels
    if args.rtsp is not None:
        bare, url_user, url_password = split_rtsp_url(args.rtsp)
        username = args.username or url_user
        password = url_password
        if username is not None and password is None:
            password = read_password(args, prompt=f"RTSP password for {username}: ")
            if password is None:
                raise UsageError("give the password with --password-stdin (or run on a terminal)")
        login = Login(username, password or "") if username is not None else None
        err_console.print(f"opening {bare} …", highlight=False)
        plan = asyncio.run(
            plan_rtsp(
                args.rtsp,
                login,
                config=config,
                profiles=profiles,
                camera_id=args.camera_id,
                name=args.name,
                channels=channels,
                call_timeout=args.timeout,
            )
        )
        return plan, login
    url = _device_url(args, config)
    username = ask_username(args, None)
    password = read_password(args, prompt=f"ONVIF password for {username}: ")
    if password is None:
        raise UsageError("give the password with --password-stdin (or run on a terminal)")
    login = Login(username, password)
    err_console.print(f"checking the credentials against {url} …", highlight=False)
    plan = asyncio.run(
        plan_onvif(
            url,
            login,
            config=config,
            profiles=profiles,
            camera_id=args.camera_id,
            name=args.name,
            stream=args.stream,
            channels=channels,
            rtsp_ports=args.rtsp_port,
            call_timeout=args.timeout,
        )
    )
    return plan, login


def run_add(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    path = resolve_config_path(args.config)
    try:
        sharing = _sharing(args)
        plan, login = _plan(args, config)
    except UsageError as exc:
        err_console.print(Text(str(exc), style="red"), highlight=False)
        return 2
    except AddError as exc:
        err_console.print(Text(str(exc), style="red"), highlight=False)
        return 2 if exc.code == "usage" else 1
    try:
        write_cameras(path, config, plan, login, sharing)
    except (SecretError, OSError) as exc:
        err_console.print(f"[red]cannot store the camera: {exc}[/]", highlight=False)
        return 2
    except ConfigError as exc:
        err_console.print("[red]not added: the configuration would not be valid:[/]")
        for problem in exc.problems:
            err_console.print(f"  {problem}", highlight=False, markup=False)
        return 2
    except UnicodeDecodeError as exc:
        err_console.print(f"[red]cannot update {path}: {exc}[/]", highlight=False)
        return 2
    for camera in plan.cameras:
        what = plan.made or camera.rtsp_url or camera.onvif_url
        console.print(
            f"added camera {camera.id!r} ({what}) to {path}; {camera.verified}. "
            f"Check it with `rtcc-edge check {camera.id}`.",
            highlight=False,
            markup=False,
        )
    for skipped in plan.skipped:
        err_console.print(
            f"channel {skipped.channel} not added: {skipped.reason}",
            highlight=False,
            markup=False,
        )
    return 0
