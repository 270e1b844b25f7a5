"""`rtcc-edge keys show`: the device's public key, to register the site with an RTCC."""

from __future__ import annotations

import argparse
import json
import sys

from rich.table import Table

from agent.cli.common import console, err_console, load_or_report, print_json
from agent.identity import DeviceKey, DeviceKeyError, device_key_path

__all__ = ["device_key_path", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keys", help="the device key that signs events, status, registry and manifests"
    )
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    show = sub.add_parser(
        "show",
        help="print the device's public JWK and its thumbprint (the key is made on first use)",
    )
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    path = device_key_path(config.state_dir)
    created = not path.exists()
    try:
        key = DeviceKey.load_or_create(path)
    except DeviceKeyError as exc:
        err_console.print(f"[red]{exc}[/]", highlight=False)
        return 2
    except OSError as exc:
        err_console.print(
            f"[red]cannot create the device key {path}: {exc.strerror}[/]", highlight=False
        )
        return 2
    jwk = key.public_jwk
    if args.json:
        print_json(
            {
                "site": config.site.id,
                "kid": key.kid,
                "jwk": jwk,
                "path": str(path),
                "created": created,
            }
        )
        return 0
    table = Table(show_header=False, box=None)
    table.add_row("site", config.site.id)
    table.add_row("key file", f"{path}{' (created now)' if created else ''}")
    table.add_row("thumbprint (kid)", key.kid)
    console.print(table)
    console.print("public JWK (give it to the RTCC; it is not secret):")
    # Plain print: one unwrapped line that survives copy and paste.
    sys.stdout.write(json.dumps(jwk, separators=(",", ":")) + "\n")
    return 0
