"""The hub's database on both backends: migrations, UTC times, idempotent event storage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.db import Database, DatabaseError, EventRow, Site, head_revision


async def test_migrates_to_head_and_again_is_a_no_op(db_url: str) -> None:
    db = await Database.open(db_url)
    try:
        assert await db.revision() == head_revision()
        await db.migrate()
        assert await db.revision() == head_revision()
    finally:
        await db.close()


async def test_times_come_back_in_utc(db_url: str) -> None:
    db = await Database.open(db_url)
    moment = datetime(2026, 11, 22, 10, 30, 15, 250000, tzinfo=UTC)
    try:
        async with db.session() as session:
            session.add(
                Site(
                    id="s1",
                    registry_iat=moment.astimezone(datetime.now().astimezone().tzinfo or UTC),
                )
            )
        async with db.session() as session:
            site = (await session.execute(select(Site))).scalar_one()
        assert site.registry_iat == moment
        assert site.registry_iat is not None and site.registry_iat.tzinfo is not None
    finally:
        await db.close()


async def test_two_processes_migrating_at_once(db_url: str) -> None:
    results = await asyncio.gather(Database.open(db_url), Database.open(db_url))
    try:
        for db in results:
            assert await db.revision() == head_revision()
    finally:
        for db in results:
            await db.close()


async def test_event_unique_by_request_and_seq(db_url: str) -> None:
    db = await Database.open(db_url)
    now = datetime.now(UTC)
    row = {
        "request_id": "r1",
        "seq": 1,
        "site_id": "s1",
        "state": "accepted",
        "iat": now,
        "received": now,
        "claims": {"state": "accepted"},
        "token": "x",
    }
    try:
        async with db.session() as session:
            session.add(EventRow(**row))
        with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
            async with db.session() as session:
                session.add(EventRow(**row))
        async with db.session() as session:
            count = len((await session.execute(select(EventRow))).scalars().all())
        assert count == 1
    finally:
        await db.close()


async def test_unreachable_database_says_so() -> None:
    with pytest.raises(DatabaseError, match="database"):
        await Database.open("postgresql+asyncpg://nobody@127.0.0.1:1/none")


async def test_unsupported_url() -> None:
    with pytest.raises(DatabaseError, match="unsupported database"):
        await Database.open("mysql://x@y/z")


def test_naive_datetimes_are_refused() -> None:
    from hub.db.models import UtcDateTime

    with pytest.raises(ValueError, match="naive"):
        UtcDateTime().process_bind_param(datetime(2026, 1, 1) + timedelta(0), None)  # type: ignore[arg-type]
