"""`rtcc-hub sites`: the camera map from every site's retained registry; `sites trust`;
`sites retire` (certificate revoked at the broker, presence withdrawn from the map)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from datetime import timedelta
from pathlib import Path

import aiomqtt
from rich.table import Table
from rich.text import Text

from agent.units import human_distance, parse_distance, parse_duration, parse_point
from hub.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    arg_type,
    broker_config,
    console,
    err,
    json_line,
    read_jwk_argument,
    run_with_hub,
    site_id_arg,
    yes_no,
)
from hub.core import Hub
from hub.mqtt import connect_any, hub_client
from hub.registry import withdraw_site
from hub.revocation import Retirement, revoke_site, withdraw_presence
from hub.sites import CameraRow, camera_rows, collect_sites
from hub.state import HubHome, HubStateError
from hub.trust import MARKS, Verdict


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
    retire = sites_sub.add_parser(
        "retire",
        help="revoke a site's broker certificate (CRL) and withdraw it from the map",
    )
    retire.add_argument("site", type=arg_type(site_id_arg))
    retire.add_argument(
        "--cert",
        type=Path,
        action="append",
        default=[],
        metavar="PEM",
        help="also revoke this certificate of the site (one issued before the hub kept a record)",
    )
    retire.add_argument(
        "--reload-pid",
        type=int,
        metavar="PID",
        help="send the broker (mosquitto) SIGHUP so it reads the new CRL at once",
    )
    retire.add_argument(
        "--timeout", type=arg_type(parse_duration), default=timedelta(seconds=15), metavar="DUR"
    )
    retire.set_defaults(func=cmd_sites_retire)


def cmd_sites_retire(args: argparse.Namespace, home: HubHome) -> int:
    try:
        retirement = revoke_site(home, args.site, certificates=args.cert)
    except HubStateError as exc:
        raise UsageError(str(exc)) from None
    broker = broker_config(home)

    async def withdraw(hub: Hub) -> int:
        try:
            async with hub_client(broker, timeout=args.timeout.total_seconds()) as client:
                async with asyncio.timeout(args.timeout.total_seconds()):
                    cleared = await withdraw_presence(client, args.site)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            err.print(
                f"the certificate is revoked, but the broker at {broker.url} could not be "
                f"reached to withdraw {args.site} from the map ({exc or 'timed out'}); "
                "run this command again once it is up",
                highlight=False,
            )
            return EXIT_FAILED
        # The console's map, at once (a running `serve` also sees the deletions live).
        await withdraw_site(hub.db, args.site)
        console.print(
            f"withdrawn from the map: {', '.join(cleared)} (empty retained messages)",
            highlight=False,
        )
        return EXIT_OK

    _report_revocation(retirement)
    status = run_with_hub(args, home, withdraw)
    if args.reload_pid is not None:
        try:
            os.kill(args.reload_pid, signal.SIGHUP)
        except OSError as exc:
            err.print(f"could not signal the broker (pid {args.reload_pid}): {exc.strerror}")
            return EXIT_FAILED
        console.print(f"sent SIGHUP to the broker (pid {args.reload_pid}): CRL reloaded")
    else:
        console.print(
            "mosquitto reads the CRL only when it starts or reloads: run "
            "`systemctl reload mosquitto` (or `kill -HUP <mosquitto pid>`) now. A connection "
            "the site already has stays open until it ends; `systemctl restart mosquitto` "
            "drops it at once.",
            highlight=False,
        )
    return status


def _report_revocation(retirement: Retirement) -> None:
    site = retirement.site
    if retirement.revoked:
        serials = ", ".join(format(s, "x") for s in retirement.revoked)
        console.print(f"revoked {site}'s broker certificate(s): serial {serials}", highlight=False)
    if retirement.already:
        console.print(f"already revoked: {len(retirement.already)} certificate(s)")
    if not retirement.revoked and not retirement.already:
        err.print(
            f"no certificate of {site} is on record (enrolled before the hub kept them): "
            "pass --cert with its client certificate (the site's /etc/rtcc-edge/client.pem)",
            highlight=False,
        )
    for path in retirement.crl_files:
        console.print(f"CRL written: {path}", highlight=False)


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
