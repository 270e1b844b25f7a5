"""Helpers shared by the command modules of `rtcc-hub`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from hub.core import Hub
from hub.state import SITE_ID, BrokerConfig, HubHome

# soft_wrap: a long line (a path, a JWK) stays one line that can be copied and grepped.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3


class UsageError(Exception):
    """Bad arguments or configuration: printed in one line, exit 2."""


def arg_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap a parser so argparse reports its ValueError message."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def site_id_arg(text: str) -> str:
    if not SITE_ID.match(text):
        raise ValueError(f"not a site id: {text!r}")
    return text


def json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def broker_config(home: HubHome) -> BrokerConfig:
    config = home.load_config()
    if config.broker is None:
        raise UsageError(f"no broker configured in {home.root}: run `rtcc-hub init --broker URL`")
    return config.broker


def readable_file(path: Path | None, what: str) -> Path | None:
    if path is None:
        return None
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise UsageError(f"{what} {path}: no such file")
    return resolved


def read_jwk_argument(text: str) -> dict[str, Any]:
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


def yes_no(value: bool | None) -> str:
    return "?" if value is None else "yes" if value else "no"


def run_with_hub(
    args: argparse.Namespace, home: HubHome, work: Callable[[Hub], Awaitable[int]]
) -> int:
    """Open the hub (its database migrated), run `work`, close it; exit status of `work`."""

    async def run() -> int:
        hub = await Hub.open(home, database=args.database)
        try:
            return await work(hub)
        finally:
            await hub.close()

    return asyncio.run(run())
