"""Opening the hub's database: SQLite in the hub's home by default, PostgreSQL for a city.

    db = await Database.open(database_url(home))      # migrated to the latest schema
    async with db.session() as session: ...
    await db.close()

The URL is the one given (`--database`, `$RTCC_HUB_DATABASE`, or `database` in `hub.toml`),
else `sqlite+aiosqlite:///<home>/hub.db`. Only the async drivers are accepted:
`sqlite+aiosqlite://` and `postgresql+asyncpg://` (a plain `postgresql://` is taken to mean
asyncpg). Opening runs the Alembic migrations up to the latest revision; on PostgreSQL under an
advisory lock, so several hub processes starting at once migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hub.state import HubHome

DATABASE_ENV = "RTCC_HUB_DATABASE"
DB_FILE = "hub.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant both processes agree on: the key of the advisory lock taken while migrating.
_MIGRATION_LOCK = 0x72746363  # "rtcc"
_SQLITE_BUSY_MS = 15_000
# Alembic says what it does at INFO on every start; the hub reports migrations itself.
logging.getLogger("alembic").setLevel(logging.WARNING)


class DatabaseError(Exception):
    """The database cannot be opened, reached or migrated (the message says which and why)."""


def database_url(home: HubHome, explicit: str | None = None) -> str:
    """The URL to use: `explicit`, `$RTCC_HUB_DATABASE`, `hub.toml`'s `database`, or SQLite."""
    chosen = explicit or os.environ.get(DATABASE_ENV) or home.load_config().database
    if chosen:
        return chosen
    return f"sqlite+aiosqlite:///{home.root / DB_FILE}"


def normalise_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {url!r}") from exc
    if parsed.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername in ("sqlite", "sqlite+aiosqlite"):
        return parsed.set(drivername="sqlite+aiosqlite")
    raise DatabaseError(
        f"unsupported database {parsed.drivername!r}: use sqlite+aiosqlite:///FILE or "
        "postgresql+asyncpg://USER@HOST/NAME"
    )


def redacted(url: str | URL) -> str:
    """The URL without its password, for messages and logs."""
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def _make_parent(database: str) -> None:
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


class Database:
    """An async engine and its session factory."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return redacted(self.engine.url)

    @classmethod
    async def open(
        cls, url: str, *, migrate: bool = True, check: bool = True, pool_size: int = 5
    ) -> Database:
        """Connect; migrate to the latest schema (`migrate`), or else insist it is there
        (`check`)."""
        parsed = normalise_url(url)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.drivername.startswith("sqlite"):
            database = parsed.database
            if database and database != ":memory:":
                await asyncio.to_thread(_make_parent, database)
        else:
            options.update(pool_size=pool_size, max_overflow=pool_size * 2)
        engine = create_async_engine(parsed, **options)
        if parsed.drivername.startswith("sqlite"):
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        db = cls(engine)
        try:
            if migrate:
                await db.migrate()
            elif check:
                await db.check_current()
        except BaseException:
            await engine.dispose()
            raise
        return db

    async def migrate(self) -> None:
        """Bring the schema to the latest revision (a no-op when it is there)."""
        try:
            async with self._migration_lock(), self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
                await conn.run_sync(_upgrade)
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseError(f"database {self.url}: {_explain(exc)}") from exc

    @contextlib.asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        """SQLite has no advisory lock: a lock file beside the database serves."""
        database = self.engine.url.database
        if self.dialect != "sqlite" or not database or database == ":memory:":
            yield
            return
        handle = await asyncio.to_thread(Path(f"{database}.migrate-lock").open, "a")
        try:
            await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            handle.close()  # closing releases the lock

    async def revision(self) -> str | None:
        try:
            async with self.engine.connect() as conn:
                return await conn.run_sync(_current)
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseError(f"database {self.url}: {_explain(exc)}") from exc

    async def check_current(self) -> None:
        current, head = await self.revision(), head_revision()
        if current != head:
            raise DatabaseError(
                f"database {self.url} is at schema {current or 'none'}, this hub needs {head}: "
                "run `rtcc-hub db upgrade`"
            )

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed at the end, rolled back on an exception."""
        async with self.sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()


def _explain(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}".strip()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@contextlib.asynccontextmanager
async def opened(url: str, *, migrate: bool = True) -> AsyncIterator[Database]:
    db = await Database.open(url, migrate=migrate)
    try:
        yield db
    finally:
        await db.close()
