"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console

from agent.config import AgentConfig, ConfigError, load_config
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


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
