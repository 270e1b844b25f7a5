"""`rtcc-edge config check|example|store-size|encrypt`."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from importlib import resources
from pathlib import Path

from agent.cli.common import (
    console,
    err_console,
    load_or_report,
    print_json,
    print_problems,
    startup_problems,
)
from agent.config import (
    DEFAULT_STATE_DIR,
    AgentConfig,
    ConfigError,
    ConfigProblem,
    config_warnings,
    load_config,
    resolve_config_path,
)
from agent.owner_page.tls import config_problems as page_problems
from agent.secretbox import SecretBox, SecretError
from agent.store.sizing import ESTIMATED_CAMERA_BPS, StoreSize, size_store, store_problems


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("config", help="check the configuration or print an example")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="print every problem with its field; exit 2 if any")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=run_check)
    example = sub.add_parser(
        "example",
        help="print a commented example that passes the check, its store sized for this disk",
    )
    _sizing_arguments(example)
    example.set_defaults(func=run_example)
    size = sub.add_parser(
        "store-size",
        help="print [store] max_bytes and min_free sized for the disk the store is on",
    )
    _sizing_arguments(size)
    size.add_argument("--json", action="store_true", help="machine-readable output")
    size.set_defaults(func=run_store_size)
    encrypt = sub.add_parser(
        "encrypt",
        help="encrypt a password for the configuration (e.g. [notify.email] password): read "
        "from the terminal or stdin, printed as enc:v1:…",
    )
    encrypt.set_defaults(func=run_encrypt)


def _sizing_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="DIR",
        help="the store directory (default: the configured one, else "
        f"{DEFAULT_STATE_DIR / 'store'}); measured at its nearest existing parent",
    )
    parser.add_argument(
        "--cameras",
        type=int,
        metavar="N",
        help="cameras to size for (default: the configured ones, at least 1)",
    )
    parser.add_argument(
        "--mbps",
        type=float,
        default=ESTIMATED_CAMERA_BPS / 1e6,
        metavar="MBIT",
        help="each camera's bitrate (default: %(default)s, a 1080p camera)",
    )


def example_text() -> str:
    return resources.files("agent").joinpath("config_example.toml").read_text(encoding="utf-8")


def _sizing(args: argparse.Namespace) -> StoreSize:
    """Size the store from the disk and, where a configuration loads, its cameras."""
    config: AgentConfig | None = None
    try:
        config = load_config(resolve_config_path(args.config))
    except (ConfigError, OSError):
        config = None
    if args.store is not None:
        store = Path(args.store)
    elif config is not None:
        store = config.store_path
    else:
        store = DEFAULT_STATE_DIR / "store"
    if args.cameras is not None:
        cameras = args.cameras
    else:
        cameras = sum(1 for c in config.cameras if c.enabled) if config is not None else 1
    if cameras < 1 or args.mbps <= 0:
        raise SystemExit("rtcc-edge: --cameras and --mbps must be positive")
    return size_store(store, cameras=cameras, bitrate_bps=args.mbps * 1e6)


def sized_example(size: StoreSize) -> str:
    """The example, its [store] budget and reserve replaced by what this disk can give."""
    text = example_text()
    text, budget = re.subn(r'(?m)^max_bytes = "[^"]*".*\n', "", text)
    text, reserve = re.subn(r'(?m)^min_free = "[^"]*".*\n', "", text)
    assert budget == 1 and reserve == 1, "the example lost its store keys"
    return text.replace("[store]\n", "[store]\n" + size.toml(), 1)


def run_example(args: argparse.Namespace) -> int:
    console.out(sized_example(_sizing(args)), end="", highlight=False)
    return 0


def run_store_size(args: argparse.Namespace) -> int:
    size = _sizing(args)
    if args.json:
        print_json(
            {
                "measured": str(size.measured),
                "disk_total": size.disk_total,
                "disk_free": size.disk_free,
                "cameras": size.cameras,
                "bitrate_bps": size.bitrate_bps,
                "max_bytes": size.max_bytes,
                "min_free": size.min_free,
                "hours": round(size.hours, 1),
            }
        )
    else:
        console.out(size.toml(), end="", highlight=False)
    return 0


def run_check(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    problems: list[ConfigProblem]
    try:
        config = load_config(path)
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = startup_problems(config) + store_problems(config) + page_problems(config)
        problems += config_warnings(config)
    errors = [p for p in problems if p.severity == "error"]
    if args.json:
        print_json(
            {"path": str(path), "ok": not errors, "problems": [p.model_dump() for p in problems]}
        )
    else:
        print_problems(problems)
        if not errors:
            console.print(f"{path}: OK", highlight=False)
        else:
            err_console.print(f"{path}: {len(errors)} error(s)", highlight=False)
    return 2 if errors else 0


def run_encrypt(args: argparse.Namespace) -> int:
    """Print `enc:v1:…` for a secret typed (or piped) in: never taken as an argument, so that it
    stays out of the shell's history and the process list."""
    config = load_or_report(args)
    if config is None:
        return 2
    if sys.stdin.isatty():
        secret = getpass.getpass("password to encrypt: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        err_console.print("[red]nothing to encrypt: the password is empty[/]", highlight=False)
        return 2
    try:
        box = SecretBox.load_or_create(config.state_dir)
    except (SecretError, OSError) as exc:
        err_console.print(f"[red]cannot use the site's secret key: {exc}[/]", highlight=False)
        return 2
    sys.stdout.write(box.encrypt(secret) + "\n")
    return 0
