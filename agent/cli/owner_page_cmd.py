"""`rtcc-edge owner passwd`: set the password of the owner's web page (docs/owner-page.md).

The hash goes to the owner directory (`control.owner_dir`), which only root and the owner group
write: run it with sudo. The password is asked twice on the terminal, or read from one line of
standard input with `--stdin` (for the installer).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from agent.cli import owner_cert_cmd
from agent.cli.common import console, err_console, load_or_report
from agent.owner_page.password import PasswordError, check_new_password, set_password


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("owner", help="the owner's web page")
    sub = parser.add_subparsers(dest="owner_command", metavar="ACTION", required=True)
    passwd = sub.add_parser("passwd", help="set the password that opens the owner's page")
    passwd.add_argument(
        "--stdin", action="store_true", help="read the password from one line of standard input"
    )
    passwd.set_defaults(func=run_passwd)
    owner_cert_cmd.register(sub)


def _ask() -> str:
    first = getpass.getpass("New owner password: ")
    check_new_password(first)
    if getpass.getpass("Same password again: ") != first:
        raise PasswordError("the two passwords differ; nothing was changed")
    return first


def run_passwd(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    try:
        password = sys.stdin.readline().rstrip("\n") if args.stdin else _ask()
        path = set_password(config.owner_dir, password)
    except PasswordError as exc:
        err_console.print(f"[red]{exc}[/]", highlight=False)
        return 2
    except (EOFError, KeyboardInterrupt):
        err_console.print("[red]no password given; nothing was changed[/]", highlight=False)
        return 2
    console.print(f"The owner's page password is set ({path}).", highlight=False)
    return 0
