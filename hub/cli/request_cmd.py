"""`rtcc-hub request`: sign and send one request, follow its events."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.text import Text

from agent.units import parse_duration, parse_time, site_zone
from agent.wire import Event, EventState, Topics
from agent.wire.requests import COMMANDS
from hub import audit, evidence
from hub.audit import Actor
from hub.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    UsageError,
    arg_type,
    broker_config,
    console,
    err,
    json_line,
    site_id_arg,
    yes_no,
)
from hub.core import Hub
from hub.db import DatabaseError
from hub.events import Recorded, record_event
from hub.mqtt import connect_any
from hub.presign import MANIFEST_NAME, MintedUpload
from hub.relay_sessions import MintedSession
from hub.request import SUCCESS_STATES, follow_events
from hub.state import HubHome
from hub.trust import MARKS, Checked
from hub.workflow import (
    PreparedRequest,
    RequestSpec,
    default_ttl,
    prepare_request,
    publish,
    record_request,
)

# States worth stopping at before the end (--until): the site took the request on.
UNTIL_STATES = (
    EventState.ACCEPTED,
    EventState.PENDING_APPROVAL,
    EventState.APPROVED,
    EventState.STREAMING,
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    request = commands.add_parser("request", help="sign and send a request, follow its events")
    request.add_argument("cmd", choices=COMMANDS)
    request.add_argument("--site", required=True, type=arg_type(site_id_arg))
    request.add_argument("--camera")
    request.add_argument("--case", help="case / incident number")
    request.add_argument("--requester", help="analyst id (for the owner's ledger)")
    request.add_argument("--reason", help="free text for the owner")
    request.add_argument("--from", dest="start", metavar="TIME", help="RFC 3339, or now-15m")
    request.add_argument("--to", dest="end", metavar="TIME", help="RFC 3339, now, or now-1m")
    request.add_argument("--at", metavar="TIME", help="snapshot time (default: now)")
    request.add_argument(
        "--upload-url", metavar="URL", help="default: minted on this hub's receiver (`serve`)"
    )
    request.add_argument("--manifest-url", metavar="URL")
    request.add_argument("--relay-url", metavar="URL")
    request.add_argument("--relay-token", metavar="TOKEN")
    request.add_argument("--max-seconds", type=int, metavar="N")
    request.add_argument("--target", metavar="JTI", help="the request to cancel")
    request.add_argument(
        "--ttl",
        type=arg_type(parse_duration),
        metavar="DUR",
        help="how long the request stays valid (default: 2d for clip and snapshot, so that an "
        "owner can approve it; 10m otherwise)",
    )
    request.add_argument("--no-wait", action="store_true", help="send and exit")
    request.add_argument(
        "--until",
        choices=[s.value for s in UNTIL_STATES],
        help="also stop (exit 0) at this state, e.g. accepted",
    )
    request.add_argument("--timeout", type=arg_type(parse_duration), metavar="DUR")
    request.add_argument("--json", action="store_true", help="JSON lines")
    request.set_defaults(func=cmd_request)


def cmd_request(args: argparse.Namespace, home: HubHome) -> int:
    broker = broker_config(home)
    now = datetime.now(UTC)
    try:
        times = {
            name: parse_time(getattr(args, name), now=now, zone=site_zone())
            if getattr(args, name)
            else None
            for name in ("start", "end", "at")
        }
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    spec = RequestSpec(
        cmd=args.cmd,
        site=args.site,
        camera=args.camera,
        case=args.case,
        requester=args.requester,
        reason=args.reason,
        upload_url=args.upload_url,
        manifest_url=args.manifest_url,
        relay_url=args.relay_url,
        relay_token=args.relay_token,
        max_seconds=args.max_seconds,
        target=args.target,
        ttl=args.ttl or default_ttl(args.cmd),
        **times,
    )
    until = {EventState(args.until)} if args.until else set()

    async def run(follower: _Follower) -> int:
        hub = await Hub.open(home, database=args.database)
        try:
            prepared = prepare_request(home, hub.signing_key(), hub.issuer(), spec, now=now)
            follower.jti = prepared.jti
            trusted = hub.trusted()
            if not args.no_wait and args.site not in trusted:
                raise UsageError(
                    f"{args.site} is not a trusted site, so its events cannot be checked: "
                    f"`rtcc-hub sites trust {args.site} JWK` (or send with --no-wait)"
                )
            await record_request(hub.db, prepared)
            await audit.record(
                hub.db,
                Actor(args.requester or f"cli:{getpass.getuser()}"),
                "live" if args.cmd == "stream" else "request",
                case=args.case,
                reason=args.reason,
                target=f"{args.site}/{args.camera}" if args.camera else args.site,
                detail=f"{args.cmd} request {prepared.jti} from the command line",
            )
            async with connect_any(broker) as client:
                if not args.no_wait:
                    await client.subscribe(Topics(args.site).evt, qos=1)
                await publish(client, prepared)
                follower.sent(args.site, args.cmd)
                if prepared.relay is not None:
                    _show_relay(prepared.relay, json_lines=args.json)
                if args.no_wait:
                    return EXIT_OK
                timeout = args.timeout.total_seconds() if args.timeout else None
                try:
                    async with asyncio.timeout(timeout):
                        async for checked, token in follow_events(
                            client, args.site, prepared.jti, trusted
                        ):
                            recorded = await record_event(hub.db, checked, token)
                            status = follower.show(checked, until)
                            if status is None:
                                continue
                            if recorded is not None and recorded.request is not None:
                                await _receive(hub, recorded, prepared, json_lines=args.json)
                            return status
                except TimeoutError:
                    return follower.timed_out()
                raise aiomqtt.MqttError("the broker closed the connection")
        finally:
            await hub.close()

    follower = _Follower(json_lines=args.json, jti="")
    try:
        return asyncio.run(run(follower))
    except DatabaseError as exc:
        raise UsageError(str(exc)) from None
    finally:
        follower.close()


async def _receive(
    hub: Hub, recorded: Recorded, prepared: PreparedRequest, *, json_lines: bool
) -> None:
    """A completed clip or snapshot: into the evidence locker (verified there), and say where."""
    event, request = recorded.event, recorded.request
    if event.state is not EventState.COMPLETED or prepared.upload is None or request is None:
        return
    received = None
    if recorded.first and event.manifest is not None:
        received = await evidence.receive(hub, request, event.manifest)
    _show_received(prepared.upload, json_lines=json_lines)
    if received is not None and not json_lines:
        console.print(
            f"in the evidence locker (item {received.evidence_id}): "
            f"{evidence.summary(received.verification)}",
            highlight=False,
        )


def _show_relay(relay: MintedSession, *, json_lines: bool) -> None:
    if json_lines:
        json_line(
            {
                "type": "relay",
                "session": relay.record.id,
                "viewer_url": relay.viewer_url,
                "page_url": relay.page_url,
                "expires": relay.record.expires.isoformat(),
            }
        )
        return
    console.print(f"watch it: {relay.page_url}", highlight=False)
    console.print(f"  (video: {relay.viewer_url} — ffplay, VLC)", highlight=False)


def _show_received(minted: MintedUpload, *, json_lines: bool) -> None:
    received = minted.directory / minted.object_name
    manifest = minted.directory / MANIFEST_NAME
    if json_lines:
        json_line({"type": "received", "file": str(received), "manifest": str(manifest)})
        return
    console.print(f"received {received}", highlight=False)
    console.print(f"check it with: rtcc-hub verify {received} {manifest}", highlight=False)


class _Follower:
    """Shows one request's events as they come: a line per state, a bar for progress."""

    def __init__(self, *, json_lines: bool, jti: str) -> None:
        self.json_lines = json_lines
        self.jti = jti
        self.last: EventState | None = None
        self._progress: Progress | None = None
        self._bar: Any = None

    def sent(self, site: str, cmd: str) -> None:
        if self.json_lines:
            json_line({"type": "sent", "jti": self.jti, "site": site, "cmd": cmd})
        else:
            console.print(f"sent {cmd} request {self.jti} to {site}", highlight=False)

    def show(self, checked: Checked, until: set[EventState]) -> int | None:
        """Print one checked message; the exit status once the request is settled."""
        if not checked.ok or not isinstance(checked.model, Event):
            if self.json_lines:
                json_line(
                    {"type": "ignored", "verdict": checked.verdict.value, "reason": checked.reason}
                )
            else:
                err.print(
                    f"[bold red]{MARKS[checked.verdict]} ignored a {checked.verdict.value} "
                    f"message on the event topic:[/] {checked.reason}",
                    highlight=False,
                )
            return None
        event = checked.model
        self.last = event.state
        if self.json_lines:
            json_line({"type": "event", "verdict": "verified", **(checked.claims or {})})
        else:
            self._print_event(event)
        if event.final:
            return EXIT_OK if event.state in SUCCESS_STATES else EXIT_FAILED
        if event.state in until:
            return EXIT_OK
        return None

    def _print_event(self, event: Event) -> None:
        if event.state is EventState.PROGRESS and event.bytes_total is not None:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("uploading"), BarColumn(), DownloadColumn(), console=console
                )
                self._progress.start()
                self._bar = self._progress.add_task("upload", total=event.bytes_total)
            self._progress.update(self._bar, completed=event.bytes_sent, total=event.bytes_total)
            return
        self.close()
        style = {
            EventState.REJECTED: "bold red",
            EventState.FAILED: "bold red",
            EventState.COMPLETED: "bold green",
            EventState.PENDING_APPROVAL: "yellow",
        }.get(event.state, "")
        line = Text(f"#{event.seq} ", style="dim") + Text(event.state.value, style=style)
        if event.code is not None:
            line += Text(f" {event.code.value}: {event.message}")
        if event.state is EventState.PENDING_APPROVAL:
            # It may wait days now (its --ttl): say how to stop following it.
            line += Text(" (waiting for the site owner; Ctrl-C leaves it waiting)")
        if event.started is not None:
            line += Text(f" since {event.started.isoformat()}")
        if event.reason is not None:
            line += Text(f" ({event.reason})")
        if event.manifest is not None:
            line += Text(" with a signed manifest")
        console.print(line)
        for camera in event.cameras or []:
            console.print(
                f"  {camera.id} {camera.name!r} {camera.sharing} live={yes_no(camera.live)} "
                f"online={yes_no(camera.online)} hours={camera.footage_hours:.1f}",
                highlight=False,
            )

    def timed_out(self) -> int:
        self.close()
        state = self.last.value if self.last else "no event yet"
        if self.json_lines:
            json_line({"type": "timeout", "jti": self.jti, "last": state})
        else:
            err.print(f"still waiting ({state}) for {self.jti}; follow with `rtcc-hub watch`")
        return EXIT_TIMEOUT

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
