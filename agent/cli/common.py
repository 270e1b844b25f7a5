"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from agent.config import AgentConfig, ConfigError, ConfigProblem, config_file_problems, load_config
from agent.log import configure_logging

console = Console()
err_console = Console(stderr=True)


def load_or_report(args: argparse.Namespace) -> AgentConfig | None:
    """Load the configuration named by --config; print every problem and return None if bad."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        err_console.print(f"[bold red]configuration {exc.path} is not valid:[/]", highlight=False)
        for problem in exc.problems:
            err_console.print(f"  {problem}", highlight=False, markup=False)
        return None
    configure_logging(args.log_level or config.log.level, fmt=config.log.format)
    return config


def startup_problems(config: AgentConfig) -> list[ConfigProblem]:
    """What keeps the daemon from starting although the configuration loads: files it names that
    are missing or unreadable, and an RTCC key set that holds no usable key. `config check` and
    `run` report the same list the same way."""
    problems = config_file_problems(config)
    jwks = config.rtcc.jwks_file
    if jwks is not None and not any(p.field == "rtcc.jwks_file" for p in problems):
        from agent.link.verify import JwksError, KeyRing  # the link is not needed otherwise

        try:
            KeyRing(jwks)
        except JwksError as exc:
            problems.append(ConfigProblem(field="rtcc.jwks_file", message=str(exc)))
    return problems


def print_problems(problems: list[ConfigProblem]) -> None:
    for problem in problems:
        style = "red" if problem.severity == "error" else "yellow"
        line = Text.assemble(
            (problem.severity, style), ": ", (problem.field, "bold"), ": ", problem.message
        )
        err_console.print(line, highlight=False)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
