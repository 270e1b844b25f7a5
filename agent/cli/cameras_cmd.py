"""`rtcc-edge cameras add`: put a discovered camera into the configuration.

    rtcc-edge discover --scan 192.168.1.0/24
    rtcc-edge cameras add 2 --username rtcc          # the 2nd camera of that discovery
    rtcc-edge cameras add 192.168.1.64:80 --id front-door --name "Front door" --password-stdin

The credentials are checked against the camera first. The password is stored encrypted with the
device's secret key (`enc:v1:…`), never in clear. A `[[cameras]]` table is appended to the
configuration file as text, so its comments and everything else stay exactly as they were; the
result is validated with the configuration loader and only then replaces the file (atomically,
keeping its owner and mode). Exit status: 0 added, 1 the camera refused or is unreachable,
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit

from agent.cli.check_cmd import (
    UsageError,
    add_credential_arguments,
    ask_username,
    parse_address,
    read_password,
)
from agent.cli.common import console, err_console, load_or_report
from agent.cli.discover_cmd import load_cache
from agent.config import (
    ID_PATTERN,
    AgentConfig,
    ConfigError,
    SharingMode,
    load_config,
    resolve_config_path,
)
from agent.onvif import OnvifCamera, OnvifError
from agent.onvif.errors import quoted
from agent.secretbox import SecretBox, SecretError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("cameras", help="add cameras to the configuration")
    sub = parser.add_subparsers(dest="cameras_command", metavar="ACTION", required=True)
    add = sub.add_parser(
        "add",
        help="add a camera (a number from the last `discover`, or an address)",
        description="Check the credentials against the camera, then append a [[cameras]] "
        "table to the configuration with the password encrypted.",
    )
    add.add_argument(
        "target", metavar="N|ADDRESS", help="number from `rtcc-edge discover`, host[:port] or URL"
    )
    add.add_argument(
        "--id", dest="camera_id", metavar="ID", help="camera id (default: from its address)"
    )
    add.add_argument("--name", metavar="NAME", help="camera name (default: maker and model)")
    add.add_argument(
        "--stream", default="main", metavar="main|sub|TOKEN", help="stream to record (main)"
    )
    add.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="per ONVIF call (default 5)"
    )
    sharing = add.add_argument_group(
        "sharing",
        "what the RTCC may see of this camera (default private: nothing); a listed camera "
        "needs its location",
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
        raise UsageError("give the camera's ONVIF address (host[:port]), not an RTSP URL")
    return address.url


def _location(text: str) -> tuple[float, float]:
    try:
        lat_text, lon_text = text.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "give the location as LAT,LON, e.g. 35.0844,-106.6504"
        ) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError("latitude is -90..90 and longitude -180..180")
    return lat, lon


def _sharing_fields(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The camera's sharing keys and its location table, from the command line."""
    fields: dict[str, Any] = {"sharing": args.sharing, "live": bool(args.live)}
    location: dict[str, Any] = {}
    if args.location is not None:
        location = {"lat": args.location[0], "lon": args.location[1]}
        for key in ("heading", "fov", "description"):
            if getattr(args, key) is not None:
                location[key] = getattr(args, key)
    return fields, location


def _default_id(url: str) -> str:
    parts = urlsplit(url)
    host = re.sub(r"[^a-z0-9]+", "-", (parts.hostname or "camera").lower()).strip("-")
    port = parts.port or 80
    suffix = "" if port == 80 else f"-{port}"
    return f"cam-{host}{suffix}"[:63].rstrip("-")


def _same_camera(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.hostname, pa.port or 80) == (pb.hostname, pb.port or 80)


def _toml_block(fields: dict[str, Any], comment: str, location: dict[str, Any]) -> str:
    lines = ["", f"# {comment}", "[[cameras]]"]
    lines += [f"{key} = {tomlkit.item(value).as_string()}" for key, value in fields.items()]
    if location:
        lines.append("[cameras.location]")
        lines += [f"{key} = {tomlkit.item(value).as_string()}" for key, value in location.items()]
    return "\n".join(lines) + "\n"


def _replace_config(path: Path, text: str) -> None:
    """Validate `text` as the configuration, then put it in place of `path` atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        info = path.stat()
        temporary.chmod(info.st_mode & 0o7777)
        with contextlib.suppress(PermissionError):  # only root may give files away
            os.chown(temporary, info.st_uid, info.st_gid)
        load_config(temporary)  # ConfigError: the original stays untouched
        temporary.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        temporary.unlink(missing_ok=True)


async def _verify(url: str, username: str, password: str, call_timeout: float) -> OnvifCamera:
    camera = OnvifCamera.from_url(url, username=username, password=password, timeout=call_timeout)
    async with camera:
        return camera


def run_add(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    path = resolve_config_path(args.config)
    try:
        url = _device_url(args, config)
        for existing in config.cameras:
            if existing.onvif_url is not None and _same_camera(existing.onvif_url, url):
                raise UsageError(f"{url} is already configured as camera {existing.id!r}")
        camera_id = args.camera_id or _default_id(url)
        if not re.fullmatch(ID_PATTERN, camera_id):
            raise UsageError(
                f"camera id {camera_id!r}: use lower-case letters, digits, - and _ (max 63)"
            )
        if config.camera(camera_id) is not None:
            raise UsageError(f"camera id {camera_id!r} is already used; pick another with --id")
        if args.live and args.sharing != SharingMode.INTEGRATED.value:
            raise UsageError("--live needs --sharing integrated")
        if args.sharing != SharingMode.PRIVATE.value and args.location is None:
            raise UsageError(f"a {args.sharing} camera is shown on a map: give --location LAT,LON")
        username = ask_username(args, None)
        password = read_password(args, prompt=f"ONVIF password for {username}: ")
        if password is None:
            raise UsageError("give the password with --password-stdin (or run on a terminal)")
    except UsageError as exc:
        err_console.print(f"[red]{exc}[/]", highlight=False)
        return 2
    err_console.print(f"checking the credentials against {url} …", highlight=False)
    try:
        camera = asyncio.run(_verify(url, username, password, args.timeout))
    except OnvifError as exc:
        err_console.print(f"[red]not added: {exc}[/]", highlight=False)
        return 1
    info = camera.info
    made = " ".join(x for x in (info.manufacturer, info.model) if x) if info else ""
    name = args.name or quoted(made or camera_id, 64)
    try:
        secret = SecretBox.load_or_create(config.state_dir).encrypt(password)
    except (SecretError, OSError) as exc:
        err_console.print(f"[red]cannot store the password encrypted: {exc}[/]", highlight=False)
        return 2
    fields = {
        "id": camera_id,
        "name": name,
        "onvif_url": url,
        "username": username,
        "secret": secret,
        "stream": args.stream,
    }
    sharing_fields, location = _sharing_fields(args)
    fields.update(sharing_fields)
    firmware = f", firmware {info.firmware}" if info and info.firmware else ""
    comment = quoted(
        f"Added by `rtcc-edge cameras add` on {datetime.now(UTC):%Y-%m-%d}"
        f" ({made or 'unknown model'}{firmware})",
        200,
    )
    try:
        original = path.read_text(encoding="utf-8")
        text = original if original.endswith("\n") or not original else original + "\n"
        _replace_config(path, text + _toml_block(fields, comment, location))
    except ConfigError as exc:
        err_console.print("[red]not added: the configuration would not be valid:[/]")
        for problem in exc.problems:
            err_console.print(f"  {problem}", highlight=False, markup=False)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        err_console.print(f"[red]cannot update {path}: {exc}[/]", highlight=False)
        return 2
    console.print(
        f"added camera {camera_id!r} ({made or url}) to {path}; authentication: {camera.auth}. "
        f"Check it with `rtcc-edge check {camera_id}`.",
        highlight=False,
        markup=False,
    )
    return 0
