"""`rtcc-hub sites`: the camera map from every site's retained registry; `sites trust`."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from rich.table import Table
from rich.text import Text

from hub.cli.common import (
    EXIT_OK,
    UsageError,
    arg_type,
    broker_config,
    console,
    json_line,
    read_jwk_argument,
    site_id_arg,
    yes_no,
)
from hub.mqtt import connect_any
from hub.sites import CameraRow, camera_rows, collect_sites
from hub.state import HubHome
from hub.trust import MARKS, Verdict
from hub.units import human_distance, parse_distance, parse_duration, parse_point


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sites = commands.add_parser(
        "sites", help="list cameras from every site's retained registry (or: sites trust)"
    )
    sites.add_argument("--near", type=arg_type(parse_point), metavar="LAT,LON")
    sites.add_argument("--radius", type=arg_type(parse_distance), metavar="DIST", help="e.g. 300m")
    sites.add_argument("--json", action="store_true")
    sites.add_argument(
        "--timeout", type=arg_type(parse_duration), default=timedelta(seconds=15), metavar="DUR"
    )
    sites.set_defaults(func=cmd_sites)
    sites_sub = sites.add_subparsers(dest="sites_command", metavar="ACTION")
    trust = sites_sub.add_parser("trust", help="register a site's device key (JWK)")
    trust.add_argument("site", type=arg_type(site_id_arg))
    trust.add_argument("jwk", help="the JWK as JSON text, or a file holding it")
    trust.set_defaults(func=cmd_sites_trust)


def cmd_sites_trust(args: argparse.Namespace, home: HubHome) -> int:
    entry = home.trust_site(args.site, read_jwk_argument(args.jwk))
    console.print(f"trusting {args.site}: device key {entry.kid}", highlight=False)
    return EXIT_OK


def cmd_sites(args: argparse.Namespace, home: HubHome) -> int:
    if args.radius is not None and args.near is None:
        raise UsageError("--radius needs --near LAT,LON")
    broker = broker_config(home)
    trusted = home.trusted_sites()

    async def gather() -> list[CameraRow]:
        async with connect_any(broker) as client:
            async with asyncio.timeout(args.timeout.total_seconds()):
                views = await collect_sites(client, trusted)
        return camera_rows(views, near=args.near, radius_m=args.radius)

    rows = asyncio.run(gather())
    if args.json:
        json_line([row.to_json() for row in rows])
        return EXIT_OK
    _print_rows(rows, near=args.near is not None)
    return EXIT_OK


def _print_rows(rows: list[CameraRow], *, near: bool) -> None:
    table = Table(title="Registered cameras", title_justify="left")
    for column in ("site", "camera", "name"):
        table.add_column(column)
    if near:
        table.add_column("distance", justify="right")
    for column in ("sharing", "live", "verdict", "online", "hours", "signature"):
        table.add_column(column, justify="right" if column == "hours" else "left")
    for row in rows:
        verdict = Verdict(row.signature)
        good = verdict is Verdict.VERIFIED
        mark = Text(f"{MARKS[verdict]} {verdict.value}", style="green" if good else "bold red")
        cells: list[str | Text]
        if row.camera is None:
            cells = [row.site, "—", Text(row.note, style="red")]
            cells += [""] if near else []
            cells += ["", "", "", _site_online(row), "", mark]
        else:
            cells = [row.site, row.camera, row.name]
            if near:
                cells.append(human_distance(row.distance_m) if row.distance_m is not None else "—")
            cells += [
                row.sharing,
                yes_no(row.live),
                row.verdict,
                _camera_online(row),
                f"{row.footage_hours:.1f}" if row.footage_hours is not None else "",
                mark,
            ]
        table.add_row(*cells)
    console.print(table)
    if not rows:
        console.print("no registered cameras found", style="yellow")


def _site_online(row: CameraRow) -> str:
    return "site " + ("offline" if row.site_online is False else yes_no(row.site_online))


def _camera_online(row: CameraRow) -> str:
    if row.site_online is False:
        return "site offline"
    return yes_no(row.online)
