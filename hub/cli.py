"""`rtcc-hub`: the reference RTCC side: keys, trusted sites, the camera map, requests, watching.

Exit status: 0 done; 1 the request was rejected, failed or cancelled; 2 bad usage, configuration
or an unreachable broker; 3 still waiting when `--timeout` ran out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from agent.wire import Event, EventState, Topics
from agent.wire.requests import COMMANDS
from hub import __version__
from hub.broker_config import default_owner, write_broker_config
from hub.ca import CaError
from hub.keys import HubKeyError, load_signing_key, new_signing_key, read_jwks
from hub.mqtt import HubConnectionError, hub_client
from hub.presign import MANIFEST_NAME, MintedUpload, mint_upload
from hub.relay_sessions import MintedSession, SessionStore
from hub.request import (
    SUCCESS_STATES,
    RequestError,
    build_claims,
    follow_events,
    send_request,
    sign_request,
)
from hub.server import HubServer, load_serve_settings
from hub.sites import CameraRow, camera_rows, collect_sites
from hub.state import (
    SITE_ID,
    BrokerConfig,
    HubConfig,
    HubHome,
    HubStateError,
    TrustedSitesFile,
    write_atomic,
)
from hub.tokens import Location, TokenRecord, TokenStore
from hub.trust import MARKS, Checked, Verdict
from hub.units import human_distance, parse_distance, parse_duration, parse_point, parse_time
from hub.verify import Verification, read_manifest_text, verify_files
from hub.watch import summary, watch

# soft_wrap: a long line (a path, a JWK) stays one line that can be copied and grepped.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
# States worth stopping at before the end (--until): the site took the request on.
UNTIL_STATES = (
    EventState.ACCEPTED,
    EventState.PENDING_APPROVAL,
    EventState.APPROVED,
    EventState.STREAMING,
)


class UsageError(Exception):
    """Bad arguments or configuration: printed in one line, exit 2."""


def _arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap a parser so argparse reports its ValueError message."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _site_id(text: str) -> str:
    if not SITE_ID.match(text):
        raise ValueError(f"not a site id: {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtcc-hub",
        description="Reference RTCC side of rtcc-edge: keys, sites, signed requests, events.",
        epilog="exit status: 0 done, 1 rejected/failed/cancelled, 2 usage or configuration "
        "error or broker unreachable, 3 still waiting at --timeout",
    )
    parser.add_argument("--version", action="version", version=f"rtcc-hub {__version__}")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="state directory (default: $RTCC_HUB_HOME or ~/.local/share/rtcc-hub)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = commands.add_parser("init", help="set the broker connection (and issuer)")
    init.add_argument("--broker", required=True, metavar="URL", help="mqtts://host:8883")
    init.add_argument("--ca", type=Path, metavar="FILE", help="CA certificate of the broker")
    init.add_argument("--cert", type=Path, metavar="FILE", help="hub client certificate")
    init.add_argument("--key", type=Path, metavar="FILE", help="hub client key")
    init.add_argument("--username", help="broker username (instead of a certificate)")
    init.add_argument("--password-file", type=Path, metavar="FILE", help="broker password")
    init.add_argument("--issuer", metavar="URL", help="the RTCC's issuer id (iss)")
    init.set_defaults(func=cmd_init)

    keys = commands.add_parser("keys", help="the request-signing key and its JWKS")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    new = keys_sub.add_parser("new", help="make the signing key and jwks.json")
    new.add_argument("--issuer", metavar="URL", help="the RTCC's issuer id (iss)")
    new.add_argument("--rotate", action="store_true", help="replace an existing key")
    new.set_defaults(func=cmd_keys_new)
    show = keys_sub.add_parser("show", help="print the issuer, kid and JWKS")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_keys_show)

    sites = commands.add_parser(
        "sites", help="list cameras from every site's retained registry (or: sites trust)"
    )
    sites.add_argument("--near", type=_arg(parse_point), metavar="LAT,LON")
    sites.add_argument("--radius", type=_arg(parse_distance), metavar="DIST", help="e.g. 300m")
    sites.add_argument("--json", action="store_true")
    sites.add_argument(
        "--timeout", type=_arg(parse_duration), default=timedelta(seconds=15), metavar="DUR"
    )
    sites.set_defaults(func=cmd_sites)
    sites_sub = sites.add_subparsers(dest="sites_command", metavar="ACTION")
    trust = sites_sub.add_parser("trust", help="register a site's device key (JWK)")
    trust.add_argument("site", type=_arg(_site_id))
    trust.add_argument("jwk", help="the JWK as JSON text, or a file holding it")
    trust.set_defaults(func=cmd_sites_trust)

    request = commands.add_parser("request", help="sign and send a request, follow its events")
    request.add_argument("cmd", choices=COMMANDS)
    request.add_argument("--site", required=True, type=_arg(_site_id))
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
    request.add_argument("--ttl", type=_arg(parse_duration), default=timedelta(minutes=10))
    request.add_argument("--no-wait", action="store_true", help="send and exit")
    request.add_argument(
        "--until",
        choices=[s.value for s in UNTIL_STATES],
        help="also stop (exit 0) at this state, e.g. accepted",
    )
    request.add_argument("--timeout", type=_arg(parse_duration), metavar="DUR")
    request.add_argument("--json", action="store_true", help="JSON lines")
    request.set_defaults(func=cmd_request)

    watcher = commands.add_parser("watch", help="every event, status and registry, checked")
    watcher.add_argument("--site", type=_arg(_site_id))
    watcher.add_argument("--json", action="store_true", help="JSON lines")
    watcher.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    watcher.set_defaults(func=cmd_watch)

    verify = commands.add_parser(
        "verify", help="check a received clip or snapshot against its signed manifest (offline)"
    )
    verify.add_argument("clip", type=Path, help="the clip (MP4) or snapshot (JPEG)")
    verify.add_argument("manifest", type=Path, help="its manifest (the JWS the site signed)")
    verify.add_argument(
        "--site-key", metavar="JWK", help="the site's device key (JSON or a file) to check with"
    )
    verify.add_argument("--from", dest="start", metavar="TIME", help="the window asked for")
    verify.add_argument("--to", dest="end", metavar="TIME")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=cmd_verify)

    serve = commands.add_parser(
        "serve", help="the HTTPS server: enrollment, the upload receiver (and more routes)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8443, help="port (0: any free port)")
    serve.add_argument("--public-url", metavar="URL", help="how sites reach it (default: own)")
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="its key (default: hub CA)")
    serve.add_argument("--ready-file", type=Path, metavar="FILE", help="write JSON when up")
    serve.set_defaults(func=cmd_serve)

    tokens = commands.add_parser("tokens", help="one-time enrollment tokens for new sites")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    token_new = tokens_sub.add_parser("new", help="make a token (shown once)")
    token_new.add_argument("--site-name", metavar="NAME", help="the business, as the RTCC knows it")
    token_new.add_argument("--location", type=_arg(parse_point), metavar="LAT,LON")
    token_new.add_argument(
        "--site", type=_arg(_site_id), help="enroll this existing site again (renew, rotate keys)"
    )
    token_new.add_argument(
        "--ttl", type=_arg(parse_duration), default=timedelta(hours=24), metavar="DUR"
    )
    token_new.add_argument("--json", action="store_true")
    token_new.set_defaults(func=cmd_tokens_new)
    token_list = tokens_sub.add_parser("list", help="tokens made, and whether each was used")
    token_list.add_argument("--json", action="store_true")
    token_list.set_defaults(func=cmd_tokens_list)

    brokercfg = commands.add_parser(
        "broker-config", help="write a mosquitto configuration for the sites (TLS, ACL)"
    )
    brokercfg.add_argument("--out", required=True, type=Path, metavar="DIR")
    brokercfg.add_argument("--host", required=True, help="the broker's name as sites reach it")
    brokercfg.add_argument("--name", action="append", default=[], help="another name/address")
    brokercfg.add_argument("--port", type=int, default=8883, help="site listener port")
    brokercfg.add_argument("--bind", default="0.0.0.0", help="site listener address")  # noqa: S104
    brokercfg.add_argument("--hub-port", type=int, default=8884, help="hub listener port")
    brokercfg.add_argument("--hub-bind", default="127.0.0.1", help="hub listener address")
    brokercfg.add_argument(
        "--no-hub-client", action="store_true", help="leave hub.toml's broker section alone"
    )
    brokercfg.add_argument(
        "--user", help="owner of the files (default: mosquitto, as root; '' for nobody)"
    )
    brokercfg.set_defaults(func=cmd_broker_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    home = HubHome.resolve(args.home)
    try:
        return int(handler(args, home))
    except (UsageError, HubStateError, HubKeyError, HubConnectionError, RequestError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return EXIT_USAGE
    except aiomqtt.MqttError as exc:
        err.print(f"[red]broker:[/] {exc}", highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def _broker(home: HubHome) -> BrokerConfig:
    config = home.load_config()
    if config.broker is None:
        raise UsageError(f"no broker configured in {home.root}: run `rtcc-hub init --broker URL`")
    return config.broker


# --- init and keys -------------------------------------------------------------------------


def _readable(path: Path | None, what: str) -> Path | None:
    if path is None:
        return None
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise UsageError(f"{what} {path}: no such file")
    return resolved


def cmd_init(args: argparse.Namespace, home: HubHome) -> int:
    if (args.cert is None) != (args.key is None):
        raise UsageError("--cert and --key go together")
    if (args.username is None) != (args.password_file is None):
        raise UsageError("--username and --password-file go together")
    if args.cert is None and args.username is None:
        raise UsageError("give --cert/--key (client certificate) or --username/--password-file")
    password = None
    if args.password_file is not None:
        try:
            password = SecretStr(args.password_file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise UsageError(f"--password-file {args.password_file}: {exc.strerror}") from None
    config = home.load_config()
    try:
        broker = BrokerConfig(
            url=args.broker,
            ca_file=_readable(args.ca, "--ca"),
            cert_file=_readable(args.cert, "--cert"),
            key_file=_readable(args.key, "--key"),
            username=args.username,
            password=password,
        )
    except ValidationError as exc:
        raise UsageError(f"--broker: {exc.errors()[0]['msg']}") from None
    updated = HubConfig(issuer=args.issuer or config.issuer, broker=broker)
    home.save_config(updated)
    console.print(f"wrote {home.config_path}", highlight=False)
    return EXIT_OK


def cmd_keys_new(args: argparse.Namespace, home: HubHome) -> int:
    config = home.load_config()
    issuer = args.issuer or config.issuer
    if issuer is None:
        raise UsageError("give --issuer URL: the id every request carries as iss")
    key = new_signing_key(home, rotate=args.rotate)
    home.save_config(config.model_copy(update={"issuer": issuer}))
    console.print(f"signing key {key.kid} for issuer {issuer}", highlight=False)
    console.print(f"sites trust the JWKS in {home.jwks_path}", highlight=False)
    return EXIT_OK


def cmd_keys_show(args: argparse.Namespace, home: HubHome) -> int:
    config = home.load_config()
    key = load_signing_key(home)
    jwks = read_jwks(home)
    if args.json:
        _json_line(
            {
                "issuer": config.issuer,
                "kid": key.kid,
                "jwks_path": str(home.jwks_path),
                "jwks": jwks,
            }
        )
        return EXIT_OK
    table = Table(show_header=False, box=None)
    table.add_row("issuer", config.issuer or "(not set)")
    table.add_row("signing kid", key.kid)
    table.add_row("JWKS file", str(home.jwks_path))
    table.add_row("keys in JWKS", ", ".join(k.get("kid", "?") for k in jwks["keys"]))
    console.print(table)
    return EXIT_OK


# --- sites ---------------------------------------------------------------------------------


def _read_jwk_argument(text: str) -> dict[str, Any]:
    source = text
    if not text.lstrip().startswith(("{", "[")):
        try:
            source = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{text}: not JSON and not a readable file ({exc.strerror})") from None
    try:
        data = json.loads(source)
    except ValueError as exc:
        raise UsageError(f"the JWK is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("jwk"), dict):
        data = data["jwk"]  # the whole output of `rtcc-edge keys show --json`
    if not isinstance(data, dict):
        raise UsageError("the JWK must be a JSON object")
    return data


def cmd_sites_trust(args: argparse.Namespace, home: HubHome) -> int:
    entry = home.trust_site(args.site, _read_jwk_argument(args.jwk))
    console.print(f"trusting {args.site}: device key {entry.kid}", highlight=False)
    return EXIT_OK


def cmd_sites(args: argparse.Namespace, home: HubHome) -> int:
    if args.radius is not None and args.near is None:
        raise UsageError("--radius needs --near LAT,LON")
    broker = _broker(home)
    trusted = home.trusted_sites()

    async def gather() -> list[CameraRow]:
        async with hub_client(broker) as client:
            async with asyncio.timeout(args.timeout.total_seconds()):
                views = await collect_sites(client, trusted)
        return camera_rows(views, near=args.near, radius_m=args.radius)

    rows = asyncio.run(gather())
    if args.json:
        _json_line([row.to_json() for row in rows])
        return EXIT_OK
    _print_rows(rows, near=args.near is not None)
    return EXIT_OK


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else "yes" if value else "no"


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
                _yes_no(row.live),
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
    return "site " + ("offline" if row.site_online is False else _yes_no(row.site_online))


def _camera_online(row: CameraRow) -> str:
    if row.site_online is False:
        return "site offline"
    return _yes_no(row.online)


# --- request -------------------------------------------------------------------------------


def cmd_request(args: argparse.Namespace, home: HubHome) -> int:
    config = home.load_config()
    if config.issuer is None:
        raise UsageError("no issuer configured: run `rtcc-hub keys new --issuer URL`")
    broker = _broker(home)
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
        _json_line(
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
        _json_line({"type": "received", "file": str(received), "manifest": str(manifest)})
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
            _json_line({"type": "sent", "jti": self.jti, "site": site, "cmd": cmd})
        else:
            console.print(f"sent {cmd} request {self.jti} to {site}", highlight=False)

    def show(self, checked: Checked, until: set[EventState]) -> int | None:
        """Print one checked message; the exit status once the request is settled."""
        if not checked.ok or not isinstance(checked.model, Event):
            if self.json_lines:
                _json_line(
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
            _json_line({"type": "event", "verdict": "verified", **(checked.claims or {})})
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
                f"  {camera.id} {camera.name!r} {camera.sharing} live={_yes_no(camera.live)} "
                f"online={_yes_no(camera.online)} hours={camera.footage_hours:.1f}",
                highlight=False,
            )

    def timed_out(self) -> int:
        self.close()
        state = self.last.value if self.last else "no event yet"
        if self.json_lines:
            _json_line({"type": "timeout", "jti": self.jti, "last": state})
        else:
            err.print(f"still waiting ({state}) for {self.jti}; follow with `rtcc-hub watch`")
        return EXIT_TIMEOUT

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# --- watch ---------------------------------------------------------------------------------


def cmd_watch(args: argparse.Namespace, home: HubHome) -> int:
    broker = _broker(home)
    trusted = TrustedSitesFile(home)
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")

    async def run() -> int:
        seen = 0
        async with hub_client(broker) as client:
            async for checked in watch(client, trusted, site=args.site):
                _print_watched(checked, json_lines=args.json)
                seen += 1
                if args.count is not None and seen >= args.count:
                    return EXIT_OK
        return EXIT_OK

    return asyncio.run(run())


def _print_watched(checked: Checked, *, json_lines: bool) -> None:
    now = datetime.now(UTC)
    if json_lines:
        _json_line(
            {
                "time": now.isoformat(),
                "topic": checked.topic,
                "site": checked.site,
                "kind": checked.kind,
                "verdict": checked.verdict.value,
                "reason": checked.reason,
                "claims": checked.claims,
            }
        )
        return
    style = "green" if checked.ok else "bold red"
    line = Text(f"{now:%H:%M:%S} ") + Text(f"{checked.site or '?'} {checked.kind:<8} ")
    line += Text(f"{MARKS[checked.verdict]} {checked.verdict.value:<9} ", style=style)
    line += Text(summary(checked) if checked.ok else checked.reason)
    console.print(line)


# --- verify --------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace, home: HubHome) -> int:
    if (args.start is None) != (args.end is None):
        raise UsageError("--from and --to go together")
    window = None
    if args.start is not None:
        try:
            window = (parse_time(args.start), parse_time(args.end))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not args.clip.is_file():
        raise UsageError(f"{args.clip}: no such file")
    try:
        token = read_manifest_text(args.manifest)
    except OSError as exc:
        raise UsageError(f"{args.manifest}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    site_key = _read_jwk_argument(args.site_key) if args.site_key else None
    trusted = home.trusted_sites() if site_key is None else {}
    result = verify_files(
        args.clip, token, trusted=trusted, site_key=site_key, expect_window=window
    )
    if args.json:
        _json_line(result.to_json())
    else:
        _print_verification(result)
    return EXIT_OK if result.ok else EXIT_FAILED


def _print_verification(result: Verification) -> None:
    styles = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    marks = {"ok": "✓", "warn": "!", "fail": "✗"}
    table = Table(title="Verification", title_justify="left")
    for column in ("check", "", "detail"):
        table.add_column(column)
    for check in result.checks:
        mark = Text(f"{marks[check.status]} {check.status}", style=styles[check.status])
        table.add_row(check.name, mark, check.detail)
    console.print(table)
    if result.ok:
        console.print(Text("verified", style="bold green"))
    else:
        console.print(Text("NOT verified", style="bold red"))


# --- serve, tokens, broker-config ------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, home: HubHome) -> int:
    server = HubServer(
        home,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        tls_cert=_readable(args.tls_cert, "--tls-cert"),
        tls_key=_readable(args.tls_key, "--tls-key"),
    )

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        listening = await server.start()
        try:
            console.print(f"serving {listening.url} (Ctrl-C stops)", highlight=False)
            if args.ready_file is not None:
                ready = {"url": listening.url, "host": listening.host, "port": listening.port}
                write_atomic(args.ready_file, json.dumps(ready) + "\n")
            await stop.wait()
        finally:
            await server.close()
        return EXIT_OK

    return asyncio.run(run())


def cmd_tokens_new(args: argparse.Namespace, home: HubHome) -> int:
    store = TokenStore(home)
    name, point = args.site_name, args.location
    if args.site is not None and (previous := store.latest(args.site)) is not None:
        name = name or previous.site_name
        point = point or (previous.location.lat, previous.location.lon)
    if name is None or point is None:
        raise UsageError("give --site-name NAME and --location LAT,LON")
    try:
        token, record = store.create(
            site_name=name,
            location=Location(lat=point[0], lon=point[1]),
            ttl=args.ttl,
            site_id=args.site,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    public_url = load_serve_settings(home).public_url
    install = (
        f"curl -fsSL {public_url}/install.sh | sudo sh -s -- --hub {public_url} --token {token}"
        if public_url
        else None
    )
    if args.json:
        _json_line(
            {
                "token": token,
                "site": record.site_id,
                "site_name": record.site_name,
                "expires": record.expires.isoformat(),
                "install": install,
            }
        )
        return EXIT_OK
    table = Table(show_header=False, box=None)
    table.add_row("site id", record.site_id)
    table.add_row("site name", record.site_name)
    table.add_row("expires", f"{record.expires:%Y-%m-%d %H:%M} UTC")
    table.add_row("token", token)
    console.print(table)
    console.print("the token is shown once and works once; give it to the site owner")
    if install:
        console.print(f"install line:\n  {install}", highlight=False, soft_wrap=True)
    return EXIT_OK


def cmd_tokens_list(args: argparse.Namespace, home: HubHome) -> int:
    now = datetime.now(UTC)
    records = TokenStore(home).records()

    def state(record: TokenRecord) -> str:
        if record.used_at is not None:
            return f"used {record.used_at:%Y-%m-%d %H:%M}"
        return "expired" if record.expired(now) else "unused"

    if args.json:
        _json_line(
            [
                {
                    "site": r.site_id,
                    "site_name": r.site_name,
                    "created": r.created.isoformat(),
                    "expires": r.expires.isoformat(),
                    "used_at": r.used_at.isoformat() if r.used_at else None,
                    "device_kid": r.device_kid,
                }
                for r in records
            ]
        )
        return EXIT_OK
    table = Table(title="Enrollment tokens", title_justify="left")
    for column in ("site", "name", "expires", "state"):
        table.add_column(column)
    for record in records:
        table.add_row(
            record.site_id, record.site_name, f"{record.expires:%Y-%m-%d %H:%M}", state(record)
        )
    console.print(table)
    return EXIT_OK


def cmd_broker_config(args: argparse.Namespace, home: HubHome) -> int:
    try:
        files = write_broker_config(
            home,
            args.out,
            host=args.host,
            names=args.name,
            port=args.port,
            bind=args.bind,
            hub_port=args.hub_port,
            hub_bind=args.hub_bind,
            hub_client=not args.no_hub_client,
            run_as=(args.user or None) if args.user is not None else default_owner(),
        )
    except CaError as exc:
        raise UsageError(str(exc)) from None
    console.print(f"wrote {files.config}", highlight=False)
    console.print(f"sites connect to {files.site_url}; the hub to {files.hub_url}", highlight=False)
    console.print(f"run it with: mosquitto -c {files.config}", highlight=False)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
