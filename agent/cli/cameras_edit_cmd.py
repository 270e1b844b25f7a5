"""`rtcc-edge cameras list|remove|rename|set|passwd`: the cameras already configured, and
changes to them (the work is `agent.cameras.edit`, which the owner page calls too).

    rtcc-edge cameras list
    sudo rtcc-edge cameras rename front-door "Front door (street)"
    sudo rtcc-edge cameras set front-door --sharing registry --location 45.5,-73.6 --fov 90
    sudo rtcc-edge cameras passwd front-door            # prompted, or --password-stdin
    sudo rtcc-edge cameras remove back-yard

Changes are the owner's: root or a member of the owner group. A running daemon records with them
after `systemctl reload rtcc-edge` (unchanged cameras without a gap); what the RTCC is shown
(names, sharing, locations) changes at its next restart. The new password is tried on the camera
before it is stored (`--no-check` skips that). Exit status: 0 done, 1 the camera refused the
new password, 2 bad usage, not the owner, or a configuration that would not be valid (nothing
is written then).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

from rich.text import Text

from agent.cameras.edit import (
    CameraChange,
    EditError,
    camera_with_username,
    change_camera,
    check_password,
    local_owner_refusal,
    remove_camera,
    rename_camera,
    set_password,
)
from agent.cli.check_cmd import read_password
from agent.cli.common import console, err_console, load_or_report, print_json
from agent.config import AgentConfig, ConfigError, SharingMode, resolve_config_path
from agent.secretbox import SecretError
from agent.units import parse_point

_APPLY = (
    "A running rtcc-edge records with it after `sudo systemctl reload rtcc-edge`; what the RTCC "
    "is shown changes after `sudo systemctl restart rtcc-edge`."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = sub.add_parser("list", help="the configured cameras, with their full ids")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)

    remove = sub.add_parser("remove", help="take a camera out of the configuration")
    remove.add_argument("camera_id", metavar="ID")
    remove.set_defaults(func=_owner(_remove))

    rename = sub.add_parser("rename", help="give a camera a new name (its id stays)")
    rename.add_argument("camera_id", metavar="ID")
    rename.add_argument("name", metavar="NAME")
    rename.set_defaults(func=_owner(_rename))

    change = sub.add_parser(
        "set", help="change a camera's location, field of view, sharing, live view or stream"
    )
    change.add_argument("camera_id", metavar="ID")
    change.add_argument("--location", metavar="LAT,LON", type=_location)
    change.add_argument("--heading", type=_degrees, metavar="DEG", help="degrees from north")
    change.add_argument("--fov", type=_degrees, metavar="DEG", help="field of view in degrees")
    change.add_argument("--sharing", choices=[mode.value for mode in SharingMode])
    change.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="allow live view (integrated cameras only)",
    )
    change.add_argument("--rtsp", metavar="URL", help="record this rtsp:// URL (no credentials)")
    change.set_defaults(func=_owner(_set))

    passwd = sub.add_parser("passwd", help="store a camera's new password (encrypted)")
    passwd.add_argument("camera_id", metavar="ID")
    passwd.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (else: prompted)",
    )
    passwd.add_argument(
        "--no-check",
        action="store_true",
        help="store it without logging in to the camera first (a camera that is off now)",
    )
    passwd.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="per camera call (default 5)"
    )
    passwd.set_defaults(func=_owner(_passwd))


def _location(text: str) -> tuple[float, float]:
    try:
        return parse_point(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _degrees(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of degrees") from None
    if not 0 <= value <= 360:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 360 degrees")
    return value


def run_list(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    if args.json:
        print_json(
            [
                camera.model_dump(mode="json", exclude={"secret"})
                | {"has_password": bool(camera.secret)}
                for camera in config.cameras
            ]
        )
        return 0
    if not config.cameras:
        console.print("no cameras configured; add one with `rtcc-edge cameras add`")
        return 0
    # One camera per block, its id alone on the first line and never cut or wrapped, whatever
    # the terminal's width: it is what the next command needs.
    for camera in config.cameras:
        source = camera.rtsp_url or camera.onvif_url or ""
        if camera.channel is not None:
            source += f" channel {camera.channel}"
        sharing = camera.sharing.value + (" + live view" if camera.live else "")
        if not camera.enabled:
            sharing += ", not recording"
        where = "no location"
        if camera.location is not None:
            where = f"at {camera.location.lat:.5f},{camera.location.lon:.5f}"
            if camera.location.fov is not None:
                where += f", field of view {camera.location.fov:g}°"
        console.print(camera.id, style="bold", soft_wrap=True, highlight=False, markup=False)
        details = f"    {camera.name} · {sharing} · {where}\n    {source}"
        console.print(details, soft_wrap=True, highlight=False, markup=False)
    return 0


Edit = Callable[[Path, AgentConfig, argparse.Namespace], str]


def _owner(edit: Edit) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = load_or_report(args)
        if config is None:
            return 2
        refusal = local_owner_refusal(config)
        if refusal is not None:
            err_console.print(Text(refusal, style="red"), highlight=False, soft_wrap=True)
            return 2
        path = resolve_config_path(args.config)
        try:
            done = edit(path, config, args)
        except EditError as exc:
            err_console.print(Text(str(exc), style="red"), highlight=False, soft_wrap=True)
            return 1 if exc.code == "refused" else 2
        except ConfigError as exc:
            err_console.print("[red]not changed: the configuration would not be valid:[/]")
            for problem in exc.problems:
                err_console.print(f"  {problem}", highlight=False, markup=False)
            return 2
        except (SecretError, OSError, UnicodeDecodeError) as exc:
            err_console.print(Text(f"cannot update {path}: {exc}", style="red"), highlight=False)
            return 2
        console.print(f"{done} {_APPLY}", highlight=False, markup=False, soft_wrap=True)
        return 0

    return run


def _remove(path: Path, config: AgentConfig, args: argparse.Namespace) -> str:
    remove_camera(path, args.camera_id)
    return f"removed camera {args.camera_id!r} from {path}; its footage stays until it ages out."


def _rename(path: Path, config: AgentConfig, args: argparse.Namespace) -> str:
    rename_camera(path, args.camera_id, args.name)
    return f"camera {args.camera_id!r} is now called {args.name.strip()!r}."


def _set(path: Path, config: AgentConfig, args: argparse.Namespace) -> str:
    change = CameraChange(
        location=args.location,
        fov=args.fov,
        heading=args.heading,
        sharing=SharingMode(args.sharing) if args.sharing else None,
        live=args.live,
        rtsp_url=args.rtsp,
    )
    change_camera(path, args.camera_id, change)
    return f"camera {args.camera_id!r} changed in {path}."


def _passwd(path: Path, config: AgentConfig, args: argparse.Namespace) -> str:
    camera = camera_with_username(config, args.camera_id)
    password = read_password(args, prompt=f"new password for camera {args.camera_id}: ")
    if password is None:
        raise EditError("give the password with --password-stdin (or run on a terminal)")
    if not password:
        raise EditError("the password is empty")
    checked = "not checked against the camera (--no-check)"
    if not args.no_check:
        err_console.print(f"logging in to {args.camera_id} with the new password …")
        checked = asyncio.run(check_password(camera, password, call_timeout=args.timeout))
    set_password(path, config, args.camera_id, password)
    return f"the new password of camera {args.camera_id!r} is stored, encrypted; {checked}."
