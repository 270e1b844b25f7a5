"""`rtcc-hub users`: the analysts' accounts (add, list, disable, enable, password, role)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.table import Table

from hub import analysts, audit
from hub.analysts import ROLES, AnalystError
from hub.audit import Actor
from hub.cli.common import EXIT_OK, UsageError, console, json_line, run_with_hub
from hub.core import Hub
from hub.state import HubHome


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser("users", help="the analysts' accounts for the console")
    sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="a new account")
    add.add_argument("username", help="sign-in name, e.g. j.rivera")
    add.add_argument("--role", choices=ROLES, default="analyst")
    add.add_argument("--name", default="", help="the name shown in the console and the log")
    _password_options(add)
    add.set_defaults(func=cmd_add)
    listing = sub.add_parser("list", help="every account")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    for action, text in (("disable", "sign-in refused, sessions ended"), ("enable", "allowed")):
        toggle = sub.add_parser(action, help=f"an account's sign-in {text}")
        toggle.add_argument("username")
        toggle.set_defaults(func=cmd_disable if action == "disable" else cmd_enable)
    passwd = sub.add_parser("password", help="set a new password (ends the account's sessions)")
    passwd.add_argument("username")
    _password_options(passwd)
    passwd.set_defaults(func=cmd_password)
    role = sub.add_parser("role", help="change an account's role")
    role.add_argument("username")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(func=cmd_role)


def _password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-file", type=Path, metavar="FILE", help="read it from FILE")
    group.add_argument(
        "--generate", action="store_true", help="make a random one and print it once"
    )


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated)."""
    if args.generate:
        return analysts.new_password(), True
    if args.password_file is not None:
        try:
            text = args.password_file.read_text(encoding="utf-8").strip("\n")
        except OSError as exc:
            raise UsageError(f"--password-file {args.password_file}: {exc.strerror}") from None
        return text, False
    if not sys.stdin.isatty():
        raise UsageError("give --password-file FILE or --generate (no terminal to ask on)")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise UsageError("the two passwords differ")
    return first, False


def _operator() -> Actor:
    return Actor(f"cli:{getpass.getuser()}")


def cmd_add(args: argparse.Namespace, home: HubHome) -> int:
    password, generated = _password(args)

    async def work(hub: Hub) -> int:
        try:
            analyst = await analysts.add_user(
                hub.db, args.username, password, role=args.role, display_name=args.name
            )
        except AnalystError as exc:
            raise UsageError(str(exc)) from None
        await audit.record(
            hub.db, _operator(), "user", target=analyst.username, detail=f"added as {args.role}"
        )
        console.print(f"added {analyst.username} ({analyst.role})", highlight=False)
        if generated:
            console.print(f"password (shown once): {password}", highlight=False)
        return EXIT_OK

    return run_with_hub(args, home, work)


def cmd_list(args: argparse.Namespace, home: HubHome) -> int:
    async def work(hub: Hub) -> int:
        found = await analysts.users(hub.db)
        if args.json:
            json_line(
                [
                    {
                        "username": a.username,
                        "name": a.display_name,
                        "role": a.role,
                        "disabled": a.disabled,
                        "created": a.created.isoformat(),
                    }
                    for a in found
                ]
            )
            return EXIT_OK
        table = Table(title="Analysts", title_justify="left")
        for column in ("user", "name", "role", "state", "since"):
            table.add_column(column)
        for a in found:
            state = "disabled" if a.disabled else "active"
            table.add_row(a.username, a.display_name, a.role, state, f"{a.created:%Y-%m-%d}")
        console.print(table)
        if not found:
            console.print("no analysts yet: `rtcc-hub users add NAME --role admin`")
        return EXIT_OK

    return run_with_hub(args, home, work)


def _change(
    args: argparse.Namespace, home: HubHome, what: str, change: Callable[[Hub], Awaitable[None]]
) -> int:
    async def work(hub: Hub) -> int:
        try:
            await change(hub)
        except AnalystError as exc:
            raise UsageError(str(exc)) from None
        await audit.record(hub.db, _operator(), "user", target=args.username, detail=what)
        console.print(f"{args.username}: {what}", highlight=False)
        return EXIT_OK

    return run_with_hub(args, home, work)


def cmd_disable(args: argparse.Namespace, home: HubHome) -> int:
    return _change(
        args, home, "disabled", lambda hub: analysts.set_disabled(hub.db, args.username, True)
    )


def cmd_enable(args: argparse.Namespace, home: HubHome) -> int:
    return _change(
        args, home, "enabled", lambda hub: analysts.set_disabled(hub.db, args.username, False)
    )


def cmd_password(args: argparse.Namespace, home: HubHome) -> int:
    password, generated = _password(args)
    status = _change(
        args,
        home,
        "password changed",
        lambda hub: analysts.set_password(hub.db, args.username, password),
    )
    if generated:
        console.print(f"password (shown once): {password}", highlight=False)
    return status


def cmd_role(args: argparse.Namespace, home: HubHome) -> int:
    return _change(
        args,
        home,
        f"role {args.role}",
        lambda hub: analysts.set_role(hub.db, args.username, args.role),
    )
