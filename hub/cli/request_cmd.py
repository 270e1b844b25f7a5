"""`rtcc-hub request`: sign and send one request, follow its events."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.text import Text

from agent.wire import Event, EventState, Topics
from agent.wire.requests import COMMANDS
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
from hub.keys import load_signing_key
from hub.mqtt import hub_client
from hub.presign import MANIFEST_NAME, MintedUpload, mint_upload
from hub.relay_sessions import MintedSession, SessionStore
from hub.request import (
    SUCCESS_STATES,
    build_claims,
    follow_events,
    send_request,
    sign_request,
)
from hub.server import load_serve_settings
from hub.state import HubHome
from hub.trust import MARKS, Checked
from hub.units import parse_duration, parse_time

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
    request.add_argument("--ttl", type=arg_type(parse_duration), default=timedelta(minutes=10))
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
    config = home.load_config()
    if config.issuer is None:
        raise UsageError("no issuer configured: run `rtcc-hub keys new --issuer URL`")
    broker = broker_config(home)
    key = load_signing_key(home)
    now = datetime.now(UTC)
    try:
        times = {
            name: parse_time(getattr(args, name), now=now) if getattr(args, name) else None
            for name in ("start", "end", "at")
        }
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    minted = _mint_upload(args, home, now) if args.upload_url is None else None
    relay = _mint_relay(args, home) if args.relay_url is None and args.relay_token is None else None
    claims = build_claims(
        args.cmd,
        site=args.site,
        issuer=config.issuer,
        ttl=args.ttl,
        now=now,
        camera=args.camera,
        case=args.case,
        requester=args.requester,
        reason=args.reason,
        upload_url=minted.upload_url if minted else args.upload_url,
        manifest_url=args.manifest_url or (minted.manifest_url if minted else None),
        relay_url=relay.ingest_url if relay else args.relay_url,
        relay_token=relay.publisher_token if relay else args.relay_token,
        max_seconds=args.max_seconds,
        target=args.target,
        **times,
    )
    if minted is not None:
        claims["jti"] = minted.request_id  # the id the upload URLs were minted for
    if relay is not None:
        SessionStore(home).attach_request(relay.record.id, claims["jti"])
    trusted = home.trusted_sites()
    if not args.no_wait and args.site not in trusted:
        raise UsageError(
            f"{args.site} is not a trusted site, so its events cannot be checked: "
            f"`rtcc-hub sites trust {args.site} JWK` (or send with --no-wait)"
        )
    token = sign_request(key, claims)
    until = {EventState(args.until)} if args.until else set()
    follower = _Follower(json_lines=args.json, jti=claims["jti"])

    async def run() -> int:
        async with hub_client(broker) as client:
            if not args.no_wait:
                await client.subscribe(Topics(args.site).evt, qos=1)
            await send_request(client, args.site, token)
            follower.sent(args.site, args.cmd)
            if relay is not None:
                _show_relay(relay, json_lines=args.json)
            if args.no_wait:
                return EXIT_OK
            timeout = args.timeout.total_seconds() if args.timeout else None
            try:
                async with asyncio.timeout(timeout):
                    async for checked in follow_events(client, args.site, claims["jti"], trusted):
                        status = follower.show(checked, until)
                        if status is not None:
                            return status
            except TimeoutError:
                return follower.timed_out()
            raise aiomqtt.MqttError("the broker closed the connection")

    try:
        status = asyncio.run(run())
    finally:
        follower.close()
    if minted is not None and follower.last is EventState.COMPLETED:
        _show_received(minted, json_lines=args.json)
    return status


def _mint_upload(args: argparse.Namespace, home: HubHome, now: datetime) -> MintedUpload | None:
    """Upload URLs on this hub's receiver for a clip or snapshot request without --upload-url.

    None without --case: the URLs are made per case, and `build_claims` then reports the missing
    --case together with anything else missing."""
    if args.cmd not in ("clip", "snapshot") or args.case is None:
        return None
    public_url = load_serve_settings(home).public_url
    if public_url is None:
        raise UsageError(
            "no --upload-url, and this hub's receiver has not run yet: start `rtcc-hub serve` "
            "(it records its public URL) or give --upload-url"
        )
    expires = int(now.timestamp() + args.ttl.total_seconds())
    try:
        return mint_upload(
            home,
            base_url=public_url,
            cmd=args.cmd,
            case=args.case,
            request_id=str(uuid.uuid4()),
            expires=expires,
        )
    except ValueError as exc:
        raise UsageError(f"--case: {exc}") from None


def _mint_relay(args: argparse.Namespace, home: HubHome) -> MintedSession | None:
    """A live session on this hub's relay for a stream request without --relay-url."""
    if args.cmd != "stream":
        return None
    if args.camera is None:
        raise UsageError("stream needs --camera")
    if args.max_seconds is None or args.max_seconds < 1:
        raise UsageError("stream needs --max-seconds (at least 1)")
    public_url = load_serve_settings(home).public_url
    if public_url is None:
        raise UsageError(
            "no --relay-url, and this hub's relay has not run yet: start `rtcc-hub serve` "
            "(it records its public URL) or give --relay-url and --relay-token"
        )
    lifetime = args.ttl + timedelta(seconds=args.max_seconds)
    return SessionStore(home).mint(
        public_url=public_url,
        site=args.site,
        camera=args.camera,
        case=args.case,
        lifetime=lifetime,
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
            line += Text(" (waiting for the site owner)")
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
