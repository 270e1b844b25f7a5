"""`rtcc-edge owner passwd`: set the password of the owner's web page; `rtcc-edge owner serve`:
run the page (docs/owner-page.md).

The hash goes to the owner directory (`control.owner_dir`), which only root and the owner group
write: run it with sudo. The password is asked twice on the terminal, or read from one line of
standard input with `--stdin` (for the installer).

`owner serve` is the page's own process (systemd runs it as the user `rtcc-edge-page`, a member
of the rtcc-edge and rtcc-edge-owner groups): it serves on `[owner_page] listen` and acts through
the daemon's control socket as that user. Exit 2 with a sentence if it cannot start (no
password yet, the port taken).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from agent.cli import owner_cert_cmd
from agent.cli.common import console, err_console, load_or_report
from agent.config import resolve_config_path
from agent.owner_page.password import PasswordError, check_new_password, set_password


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("owner", help="the owner's web page")
    sub = parser.add_subparsers(dest="owner_command", metavar="ACTION", required=True)
    passwd = sub.add_parser("passwd", help="set the password that opens the owner's page")
    passwd.add_argument(
        "--stdin", action="store_true", help="read the password from one line of standard input"
    )
    passwd.set_defaults(func=run_passwd)
    serve = sub.add_parser("serve", help="serve the owner's page (systemd runs it)")
    serve.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,  # the global --config otherwise
        help="configuration file (default: $RTCC_EDGE_CONFIG or /etc/rtcc-edge/agent.toml)",
    )
    serve.set_defaults(func=run_serve)
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


def run_serve(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    from agent.owner_page import tls
    from agent.owner_page.serve import PageError, run_page  # the web server, only here

    try:
        # Beyond loopback only over HTTPS (PageTlsError says which setting and what to run).
        context = tls.ssl_context(config)
        asyncio.run(
            run_page(config, config_path=resolve_config_path(args.config), ssl_context=context)
        )
    except (PageError, tls.PageTlsError) as exc:
        err_console.print(f"[red]{exc}[/]", highlight=False)
        return 2
    return 0
