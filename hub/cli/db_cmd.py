"""`rtcc-hub db`: the hub's database (where it is, its schema)."""

from __future__ import annotations

import argparse
import asyncio

from hub.cli.common import EXIT_FAILED, EXIT_OK, console, json_line
from hub.db import Database, database_url, head_revision, redacted
from hub.db.engine import normalise_url
from hub.state import HubHome


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser("db", help="the hub's database: where it is, its schema")
    sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = sub.add_parser("upgrade", help="bring the schema to this version's (migrations)")
    upgrade.set_defaults(func=cmd_upgrade)
    status = sub.add_parser("status", help="which database, which schema")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    use = sub.add_parser("use", help="record the database URL in hub.toml (and migrate it)")
    use.add_argument("url", help="postgresql+asyncpg://USER@HOST/NAME, or sqlite+aiosqlite:///FILE")
    use.set_defaults(func=cmd_use)


def cmd_upgrade(args: argparse.Namespace, home: HubHome) -> int:
    url = database_url(home, args.database)
    revision = asyncio.run(_revision(url, migrate=True))
    console.print(f"{redacted(url)} is at schema {revision}", highlight=False)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, home: HubHome) -> int:
    url = database_url(home, args.database)
    current = asyncio.run(_revision(url, migrate=False))
    head = head_revision()
    if args.json:
        json_line({"database": redacted(url), "schema": current, "latest": head})
    else:
        state = "up to date" if current == head else "needs `rtcc-hub db upgrade`"
        console.print(f"{redacted(url)}: schema {current or 'none'} ({state})", highlight=False)
    return EXIT_OK if current == head else EXIT_FAILED


def cmd_use(args: argparse.Namespace, home: HubHome) -> int:
    url = str(normalise_url(args.url).render_as_string(hide_password=False))
    revision = asyncio.run(_revision(url, migrate=True))
    config = home.load_config()
    home.save_config(config.model_copy(update={"database": url}))
    console.print(f"the hub now uses {redacted(url)} (schema {revision})", highlight=False)
    return EXIT_OK


async def _revision(url: str, *, migrate: bool) -> str | None:
    """The schema revision of the database at `url` (brought to the latest with `migrate`)."""
    db = await Database.open(url, migrate=migrate, check=False)
    try:
        return await db.revision()
    finally:
        await db.close()
