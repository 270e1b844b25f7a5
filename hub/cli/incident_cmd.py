"""`rtcc-hub incident`: ask every shared camera near a place for the footage of a time window.

    rtcc-hub incident new --near 35.0844,-106.6504 --radius 300m \
        --from 2026-11-22T01:40:00Z --to 2026-11-22T01:55:00Z --case 2026-114523 \
        --reason "armed robbery at the corner store"

The registry is read from the broker first (so the command works without `serve`), the
cameras in range are listed (footage at once / owner must approve), a signed clip request goes
to each, and their progress is followed until every one has been taken on (`--until accepted`,
the default: accepted, or waiting for its owner) or has delivered (`--until completed`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta

from rich.table import Table
from rich.text import Text

from agent.units import (
    human_distance,
    parse_distance,
    parse_duration,
    parse_point,
    parse_time,
    site_zone,
)
from agent.wire import EventState, Topics
from hub import evidence
from hub.audit import Actor
from hub.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    UsageError,
    arg_type,
    broker_config,
    console,
    json_line,
    run_with_hub,
)
from hub.core import Hub
from hub.events import SETTLED, record_event
from hub.incidents import IncidentError, IncidentSpec, open_incident, plan_incident
from hub.ingest import ingest_retained
from hub.mqtt import connect_any
from hub.registry import MapCamera
from hub.state import HubHome
from hub.trust import check_message

TAKEN_ON = {
    EventState.ACCEPTED.value,
    EventState.PENDING_APPROVAL.value,
    EventState.APPROVED.value,
    EventState.PROGRESS.value,
}
SAYS = {
    "accepted": "accepted: footage on its way",
    "pending_approval": "waiting for the owner to approve",
    "approved": "approved by the owner: footage on its way",
    "progress": "uploading",
    "completed": "delivered",
    "rejected": "refused",
    "failed": "failed",
    "cancelled": "cancelled",
    "unsent": "not sent",
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    incident = commands.add_parser(
        "incident", help="ask every shared camera near a place for a time window's footage"
    )
    sub = incident.add_subparsers(dest="incident_command", metavar="ACTION", required=True)
    new = sub.add_parser("new", help="open an incident: a request to every camera in range")
    new.add_argument("--near", required=True, type=arg_type(parse_point), metavar="LAT,LON")
    new.add_argument(
        "--radius", required=True, type=arg_type(parse_distance), metavar="DIST", help="e.g. 300m"
    )
    new.add_argument("--from", dest="start", required=True, metavar="TIME", help="or now-30m")
    new.add_argument("--to", dest="end", required=True, metavar="TIME", help="or now")
    new.add_argument("--case", required=True, help="case / incident number")
    new.add_argument("--reason", required=True, help="what happened, for the owners")
    new.add_argument("--requester", help="analyst id for the logs (default: your user name)")
    new.add_argument(
        "--until",
        choices=("accepted", "completed"),
        default="accepted",
        help="follow until every camera took the request on (default) or delivered",
    )
    new.add_argument("--no-wait", action="store_true", help="send and exit")
    new.add_argument(
        "--timeout", type=arg_type(parse_duration), default=timedelta(seconds=60), metavar="DUR"
    )
    new.add_argument("--json", action="store_true", help="JSON lines")
    new.set_defaults(func=cmd_new)


def cmd_new(args: argparse.Namespace, home: HubHome) -> int:
    broker = broker_config(home)
    try:
        zone = site_zone()  # the analyst's own clock: local times are read in it
        start, end = parse_time(args.start, zone=zone), parse_time(args.end, zone=zone)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    lat, lon = args.near
    spec = IncidentSpec(
        case=args.case, reason=args.reason, lat=lat, lon=lon, radius_m=args.radius,
        start=start, end=end,
    )  # fmt: skip
    actor = Actor(args.requester or getpass.getuser())

    async def work(hub: Hub) -> int:
        try:
            spec.check(datetime.now(UTC))
        except IncidentError as exc:
            raise UsageError(str(exc)) from None
        async with connect_any(broker) as client:
            await ingest_retained(hub, client)
            plan = await plan_incident(hub, lat, lon, args.radius)
            _show_plan(plan.integrated, plan.registry, args)
            if not plan.cameras:
                return EXIT_FAILED
            for site in sorted(plan.sites):
                await client.subscribe(Topics(site).evt, qos=1)
            outcome = await open_incident(hub, client, spec, actor)
            sent = {row.id: row for row in outcome.sent}
            states = {row.id: row.state for row in outcome.sent}
            names = {row.id: f"{row.site_id}/{row.camera_id}" for row in outcome.sent}
            if args.json:
                json_line({"type": "incident", "id": outcome.incident.id, "case": args.case})
            else:
                console.print(
                    f"incident {outcome.incident.id}: {len(sent)} request(s) sent for case "
                    f"{args.case}",
                    highlight=False,
                )
            for camera, why in outcome.unsent:
                _line(args, f"{camera.site}/{camera.camera}", "unsent", why)
            if args.no_wait or not sent:
                return EXIT_OK if sent else EXIT_FAILED
            wanted = SETTLED if args.until == "completed" else SETTLED | TAKEN_ON
            try:
                async with asyncio.timeout(args.timeout.total_seconds()):
                    async for message in client.messages:
                        payload = bytes(message.payload) if isinstance(
                            message.payload, bytes | bytearray
                        ) else b""  # fmt: skip
                        checked = check_message(message.topic.value, payload, hub.trusted())
                        recorded = await record_event(
                            hub.db, checked, payload.decode("ascii", "replace")
                        )
                        if recorded is None or recorded.event.req not in sent:
                            continue
                        event, request = recorded.event, recorded.request
                        states[event.req] = request.state if request else event.state.value
                        _line(
                            args, names[event.req], event.state.value, event.message or "",
                            event.req,
                        )  # fmt: skip
                        if (
                            recorded.first
                            and request is not None
                            and event.state is EventState.COMPLETED
                            and event.manifest is not None
                        ):
                            found = await evidence.receive(hub, request, event.manifest)
                            if found is not None:
                                _verified(args, names[event.req], found)
                        if _settled(states.values(), wanted):
                            break
            except TimeoutError:
                waiting = [names[r] for r, s in states.items() if s not in wanted]
                _line(args, ", ".join(waiting), "timeout", "still waiting; see the console")
                return EXIT_TIMEOUT
            failed = [s for s in states.values() if s in ("rejected", "failed")]
            return EXIT_FAILED if failed and len(failed) == len(states) else EXIT_OK

    return run_with_hub(args, home, work)


def _settled(states: Iterable[str], wanted: Collection[str]) -> bool:
    return all(state in wanted for state in states)


def _show_plan(
    integrated: list[MapCamera], registry: list[MapCamera], args: argparse.Namespace
) -> None:
    if args.json:
        for group, cameras in (("integrated", integrated), ("registry", registry)):
            for c in cameras:
                json_line(
                    {
                        "type": "camera",
                        "group": group,
                        "site": c.site,
                        "camera": c.camera,
                        "name": c.name,
                        "distance_m": c.distance_m,
                        "online": c.reachable,
                    }
                )
        return
    if not integrated and not registry:
        console.print(
            f"no shared camera within {human_distance(args.radius)} of "
            f"{args.near[0]},{args.near[1]}: nothing was sent",
            style="yellow",
            highlight=False,
        )
        return
    for title, cameras in (
        ("Footage at once (integrated)", integrated),
        ("Owner must approve (registry)", registry),
    ):
        if not cameras:
            continue
        table = Table(title=title, title_justify="left")
        for column in ("site", "camera", "name", "distance", "online"):
            table.add_column(column)
        for c in cameras:
            table.add_row(
                c.site,
                c.camera,
                c.name,
                human_distance(c.distance_m or 0.0),
                "yes" if c.reachable else "no",
            )
        console.print(table)


def _line(
    args: argparse.Namespace, who: str, state: str, detail: str, request: str | None = None
) -> None:
    if args.json:
        json_line(
            {"type": "event", "camera": who, "state": state, "detail": detail, "request": request}
        )
        return
    style = {"completed": "green", "rejected": "red", "failed": "red", "unsent": "red",
             "timeout": "yellow", "pending_approval": "yellow"}.get(state, "")  # fmt: skip
    text = Text(f"{who}: ") + Text(SAYS.get(state, state), style=style)
    if detail:
        text += Text(f" ({detail})")
    console.print(text)


def _verified(args: argparse.Namespace, who: str, found: evidence.Received) -> None:
    result = found.verification
    if args.json:
        json_line(
            {"type": "evidence", "camera": who, "id": found.evidence_id, "verified": result.ok}
        )
        return
    console.print(
        f"{who}: in the evidence locker (item {found.evidence_id}), {evidence.summary(result)}",
        highlight=False,
    )
