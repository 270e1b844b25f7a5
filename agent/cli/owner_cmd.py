"""The owner's commands, sent to the running daemon over its control socket:
`requests`, `approve ID`, `deny ID [--reason]`, `sharing [set CAMERA MODE [--live/--no-live]]`,
`pause [--for 2h]`, `resume`, `status`, `live stop ID`.

The commands that change something (approve, deny, sharing set, pause, resume, live stop) are
the owner's: root or a member of the owner group (`control.owner_group`). They go through the
owner's library (`agent.control.owner_client.OwnerClient`, which the owner's page uses too):
the owner's choice recorded in the owner directory (`control.owner_dir`, which the service
cannot write), then the daemon told, which checks the caller's identity and adopts the choice.

Exit status: 0 done, 1 the daemon refused (unknown id, not pending, not allowed), 2 bad usage
or configuration, the daemon not running, not the owner, or no permission on its socket.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rich.table import Table

from agent.cli.common import console, err_console, load_or_report, print_json
from agent.cli.owner_cert_cmd import page_status_lines, say
from agent.cli.recording_view import link_line, recorders_table
from agent.config import SharingMode
from agent.control import ControlClient, ControlError, DaemonNotRunning
from agent.control.owner_client import OwnerClient
from agent.policy import NotOwnerError, OwnerStateError, PolicyError
from agent.units import parse_duration

_NOT_ALLOWED_TO_REACH = {"permission_denied", "not_owner"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    requests = subparsers.add_parser("requests", help="pending and recent RTCC requests")
    requests.add_argument("--all", action="store_true", help="every recent request, not only open")
    requests.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    requests.add_argument("--json", action="store_true", help="machine-readable output")
    requests.set_defaults(func=_command(_requests))

    approve = subparsers.add_parser("approve", help="approve a pending request")
    approve.add_argument("id", help="request id (or its first characters)")
    approve.add_argument("--json", action="store_true", help="machine-readable output")
    approve.set_defaults(func=_owner_command(_approve))

    deny = subparsers.add_parser("deny", help="deny a pending request")
    deny.add_argument("id", help="request id (or its first characters)")
    deny.add_argument("--reason", default="", help="told to the RTCC")
    deny.add_argument("--json", action="store_true", help="machine-readable output")
    deny.set_defaults(func=_owner_command(_deny))

    sharing = subparsers.add_parser("sharing", help="show or change what each camera shares")
    sharing.add_argument("--json", action="store_true", help="machine-readable output")
    sharing.set_defaults(func=_command(_sharing_show))
    sharing_sub = sharing.add_subparsers(dest="sharing_command", metavar="ACTION")
    sharing_set = sharing_sub.add_parser("set", help="change one camera's sharing")
    sharing_set.add_argument("camera", help="camera id")
    sharing_set.add_argument("mode", choices=[m.value for m in SharingMode])
    sharing_set.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="allow live view (integrated cameras only)",
    )
    sharing_set.add_argument("--json", action="store_true", help="machine-readable output")
    sharing_set.set_defaults(func=_owner_command(_sharing_set))

    pause = subparsers.add_parser("pause", help="refuse all footage requests for a while")
    pause.add_argument(
        "--for", dest="duration", metavar="DURATION", help="e.g. 2h; default: until resume"
    )
    pause.add_argument("--json", action="store_true", help="machine-readable output")
    pause.set_defaults(func=_owner_command(_pause))

    resume = subparsers.add_parser("resume", help="end a pause")
    resume.add_argument("--json", action="store_true", help="machine-readable output")
    resume.set_defaults(func=_owner_command(_resume))

    live = subparsers.add_parser("live", help="live sessions in progress (see status)")
    live_sub = live.add_subparsers(dest="live_command", metavar="ACTION", required=True)
    live_stop = live_sub.add_parser("stop", help="end a live session now")
    live_stop.add_argument("id", help="request id (or its first characters)")
    live_stop.add_argument("--json", action="store_true", help="machine-readable output")
    live_stop.set_defaults(func=_owner_command(_live_stop))

    status = subparsers.add_parser(
        "status", help="each camera's recording, the RTCC link, sharing and pending requests"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_command(_status))


Action = Callable[[ControlClient, argparse.Namespace], Any]
OwnerAction = Callable[[OwnerClient, argparse.Namespace], Any]


def _owner_command(action: OwnerAction) -> Callable[[argparse.Namespace], int]:
    return _command(
        lambda client, args: action(OwnerClient(args.loaded_config, client=client), args)
    )


def _command(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = load_or_report(args)
        if config is None:
            return 2
        args.loaded_config = config
        client = ControlClient(config.control.socket)
        try:
            result = action(client, args)
        except DaemonNotRunning as exc:
            err_console.print(str(exc), highlight=False)
            return 2
        except ControlError as exc:
            err_console.print(f"[red]{exc.message}[/]", highlight=False)
            return 2 if exc.code in _NOT_ALLOWED_TO_REACH else 1
        except NotOwnerError as exc:
            err_console.print(f"[red]{exc}[/]", highlight=False)
            return 2
        except PolicyError as exc:
            err_console.print(f"[red]{exc}[/]", highlight=False)
            return 1
        except OwnerStateError as exc:
            err_console.print(str(exc), highlight=False)
            return 2
        except ValueError as exc:
            err_console.print(str(exc), highlight=False)
            return 2
        if args.json:
            print_json(result)
        return 0

    return run


def _short_time(text: str | None) -> str:
    return text[5:16].replace("T", " ") if text else ""


def _requests_table(records: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, caption="id: type its first characters to approve or deny")
    for column in ("id", "state"):
        table.add_column(column, no_wrap=True)
    for column in ("cmd", "camera", "case", "requester", "received", "expires"):
        table.add_column(column, overflow="fold")
    for record in records:
        state = record["state"] + (f" ({record['code']})" if record.get("code") else "")
        table.add_row(
            record["id"][:8],
            state,
            record.get("cmd") or "",
            record.get("camera") or "",
            record.get("case") or "",
            record.get("requester") or "",
            _short_time(record.get("received")),
            _short_time(record.get("expires")),
        )
    return table


def _requests(client: ControlClient, args: argparse.Namespace) -> Any:
    if args.limit < 1:
        raise ValueError("--limit must be at least 1")
    records = client.call("requests", all=args.all, limit=min(args.limit, 1000))
    if not args.json:
        if records:
            console.print(_requests_table(records, "requests"))
        else:
            console.print("no requests")
        for record in records:
            if record["state"] == "pending_approval":
                window = record.get("window")
                span = f" window {window[0]} – {window[1]}" if window else ""
                console.print(
                    f"{record['id'][:8]}: {record.get('cmd')} of {record.get('camera')} for case "
                    f"{record.get('case')} by {record.get('requester') or record['issuer']}{span}; "
                    f"reason: {record.get('reason') or '-'}",
                    highlight=False,
                    markup=False,
                )
    return records


def _approve(owner: OwnerClient, args: argparse.Namespace) -> Any:
    record = owner.approve(args.id)
    if not args.json:
        console.print(f"approved {record['id']} ({record.get('cmd')} of {record.get('camera')})")
    return record


def _deny(owner: OwnerClient, args: argparse.Namespace) -> Any:
    record = owner.deny(args.id, reason=args.reason)
    if not args.json:
        console.print(f"denied {record['id']} ({record.get('cmd')} of {record.get('camera')})")
    return record


def _sharing_rows(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="sharing")
    for column in ("camera", "name", "mode", "live", "set by"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["camera"],
            row["name"],
            row["mode"],
            "yes" if row["live"] else "no",
            "owner" if row["source"] == "owner" else "config file",
        )
    return table


def _sharing_show(client: ControlClient, args: argparse.Namespace) -> Any:
    rows = client.call("sharing")
    if not args.json:
        console.print(_sharing_rows(rows))
    return rows


def _sharing_set(owner: OwnerClient, args: argparse.Namespace) -> Any:
    row = owner.set_sharing(args.camera, SharingMode(args.mode), live=args.live)
    if not args.json:
        live = ", live view allowed" if row["live"] else ""
        console.print(f"{row['camera']}: {row['mode']}{live}", highlight=False)
    return row


def _pause(owner: OwnerClient, args: argparse.Namespace) -> Any:
    seconds = None
    if args.duration is not None:
        try:
            seconds = parse_duration(args.duration).total_seconds()
        except ValueError as exc:
            raise ValueError(f"--for: {exc}") from None
        if seconds <= 0:
            raise ValueError("--for must be longer than zero")
    result = owner.pause(seconds=seconds)
    if not args.json:
        until = result.get("until")
        console.print(
            f"sharing paused until {until}" if until else "sharing paused until `rtcc-edge resume`",
            highlight=False,
        )
        if result.get("live_stopped"):
            console.print(f"ended {result['live_stopped']} live session(s)")
    return result


def _resume(owner: OwnerClient, args: argparse.Namespace) -> Any:
    result = owner.resume()
    if not args.json:
        console.print("sharing resumed" if result["was_paused"] else "sharing was not paused")
    return result


def _live_stop(owner: OwnerClient, args: argparse.Namespace) -> Any:
    session = owner.live_stop(args.id)
    if not args.json:
        console.print(
            f"ended live session {session['id']} ({session['camera']}, "
            f"{session['seconds']:.0f} s, {session['bytes_sent']} bytes sent)",
            highlight=False,
        )
    return session


def _live_table(sessions: list[dict[str, Any]]) -> Table:
    table = Table(title="live sessions", caption="end one with `rtcc-edge live stop ID`")
    table.add_column("id", no_wrap=True)
    for column in ("camera", "state", "case", "requester", "time", "sent"):
        table.add_column(column, overflow="fold")
    for session in sessions:
        sent = f"{session['bytes_sent'] / 1e6:.1f} MB"
        if session["skipped"]:
            sent += f", {session['skipped']} skipped"
        table.add_row(
            session["id"][:8],
            session["camera"] + (" (sub)" if session["profile"] == "sub" else ""),
            session["state"],
            session.get("case") or "",
            session.get("requester") or session.get("issuer") or "",
            f"{session['seconds']:.0f}/{session['max_seconds']} s",
            sent,
        )
    return table


def _status(client: ControlClient, args: argparse.Namespace) -> Any:
    status = client.call("status")
    if not args.json and not status.get("enrolled", True):
        console.print(f"site {status['site']}: recording only", highlight=False)
        console.print(link_line(status.get("link")))
        console.print(recorders_table(status.get("recorders") or []))
    elif not args.json:
        if status["paused"]:
            until = status.get("paused_until") or "`rtcc-edge resume`"
            paused = f"[bold yellow]paused[/] until {until}"
        else:
            paused = "sharing"
        console.print(f"site {status['site']}: {paused}", highlight=False)
        console.print(
            f"pending approval: {status['pending']}, in delivery: {status['in_delivery']}",
            highlight=False,
        )
        ledger = status["ledger"]
        console.print(f"ledger head: entry {ledger['seq']} {ledger['hash'][:16]}…", highlight=False)
        since = status["since_start"]
        console.print(
            f"since start: {since['handled']} requests handled, "
            f"{since['unparseable']} unreadable, rejected: {since['rejected'] or 'none'}",
            highlight=False,
            markup=False,
        )
        if status.get("link"):
            console.print(link_line(status["link"]))
        console.print(_sharing_rows(status["cameras"]))
        if status.get("recorders") is not None:
            console.print(recorders_table(status["recorders"]))
        live = status.get("live") or []
        if live:
            console.print(_live_table(live))
        else:
            console.print("no live session in progress")
    if not args.json:
        for line in page_status_lines(args.loaded_config):
            say(line)
    return status
