"""Statements the two backends spell differently."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


async def insert_ignore(
    session: AsyncSession, model: type[DeclarativeBase], values: dict[str, Any]
) -> bool:
    """INSERT … ON CONFLICT DO NOTHING: True if this call inserted the row. With several hub
    processes on one PostgreSQL, exactly one of them gets True for the same row (a concurrent
    insert of the same key waits for the other transaction, then does nothing)."""
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = builder(model).values(**values).on_conflict_do_nothing()
    primary = list(inspect(model).primary_key)
    result = await session.execute(statement.returning(*primary))
    return result.first() is not None
