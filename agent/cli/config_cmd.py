"""`rtcc-edge config check|example`."""

from __future__ import annotations

import argparse
from importlib import resources

from agent.cli.common import console, err_console, print_json, print_problems, startup_problems
from agent.config import (
    ConfigError,
    ConfigProblem,
    config_warnings,
    load_config,
    resolve_config_path,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("config", help="check the configuration or print an example")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="print every problem with its field; exit 2 if any")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=run_check)
    example = sub.add_parser("example", help="print a commented example that passes the check")
    example.set_defaults(func=run_example)


def example_text() -> str:
    return resources.files("agent").joinpath("config_example.toml").read_text(encoding="utf-8")


def run_example(args: argparse.Namespace) -> int:
    console.out(example_text(), end="", highlight=False)
    return 0


def run_check(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    problems: list[ConfigProblem]
    try:
        config = load_config(path)
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = startup_problems(config) + config_warnings(config)
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
