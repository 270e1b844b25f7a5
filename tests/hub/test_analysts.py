"""Analysts' accounts and sessions (on SQLite and PostgreSQL): passwords, roles, the session
clock, disabling, the rate limit per address; the users command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub import analysts
from hub.analysts import ABSOLUTE, IDLE, MAX_FAILURES_PER_ADDRESS, AnalystError, role_at_least
from hub.db import Database
from tests.hub.conftest import HubRunner

PASSWORD = "a long enough password"


async def test_accounts_and_sessions(db_url: str) -> None:
    db = await Database.open(db_url)
    try:
        await analysts.add_user(db, "J.Rivera", PASSWORD, role="analyst")
        with pytest.raises(AnalystError, match="already"):
            await analysts.add_user(db, "j.rivera", PASSWORD, role="analyst")
        with pytest.raises(AnalystError, match="at least 12"):
            await analysts.add_user(db, "short", "2short", role="analyst")
        with pytest.raises(AnalystError, match="cannot be a user name"):
            await analysts.add_user(db, "../etc", PASSWORD, role="analyst")

        now = datetime.now(UTC)
        signed = await analysts.sign_in(db, "J.RIVERA", PASSWORD, ip="10.0.0.1", now=now)
        assert signed.token is not None and signed.analyst is not None
        assert signed.analyst.username == "j.rivera"
        found = await analysts.session_for(db, signed.token, now=now + IDLE / 2)
        assert found is not None and found[1].role == "analyst"
        # Idle too long: the session is over, and stays over.
        assert await analysts.session_for(db, signed.token, now=now + IDLE * 2) is None
        assert await analysts.session_for(db, signed.token, now=now) is None

        # Kept busy, it still ends at the end of a shift.
        again = await analysts.sign_in(db, "j.rivera", PASSWORD, ip="10.0.0.1", now=now)
        for step in range(1, int(ABSOLUTE / (IDLE / 2))):
            moment = now + step * IDLE / 2
            assert await analysts.session_for(db, again.token, now=moment) is not None
        assert await analysts.session_for(db, again.token, now=now + ABSOLUTE) is None

        # A new password, or disabling the account, ends its sessions.
        third = await analysts.sign_in(db, "j.rivera", PASSWORD, ip="10.0.0.1")
        await analysts.set_password(db, "j.rivera", "another long password")
        assert await analysts.session_for(db, third.token) is None
        fourth = await analysts.sign_in(db, "j.rivera", "another long password", ip="10.0.0.1")
        await analysts.set_disabled(db, "j.rivera", True)
        assert await analysts.session_for(db, fourth.token) is None
        refused = await analysts.sign_in(db, "j.rivera", "another long password", ip="10.0.0.1")
        assert refused.token is None and "do not match an active account" in (refused.refused or "")
    finally:
        await db.close()


async def test_guessing_from_one_address_is_stopped(db_url: str) -> None:
    db = await Database.open(db_url)
    try:
        await analysts.add_user(db, "ana", PASSWORD, role="analyst")
        for number in range(MAX_FAILURES_PER_ADDRESS):
            result = await analysts.sign_in(db, f"user{number}", "guess", ip="203.0.113.9")
            assert not result.locked
        blocked = await analysts.sign_in(db, "ana", PASSWORD, ip="203.0.113.9")
        assert blocked.locked and blocked.token is None
        # Another address is not affected.
        fine = await analysts.sign_in(db, "ana", PASSWORD, ip="198.51.100.7")
        assert fine.token is not None
    finally:
        await db.close()


def test_roles_order() -> None:
    assert role_at_least("admin", "supervisor") and role_at_least("supervisor", "analyst")
    assert not role_at_least("analyst", "supervisor") and not role_at_least("root", "analyst")


async def test_users_command(hub_cli: HubRunner, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    result = await hub_cli.run_async("users", "add", "m.chen", "--role", "supervisor",
                                     "--password-file", str(secret))  # fmt: skip
    assert result.code == 0 and "added m.chen (supervisor)" in result.out
    generated = await hub_cli.run_async("users", "add", "j.doe", "--generate")
    assert generated.code == 0 and "password (shown once):" in generated.out
    duplicate = await hub_cli.run_async("users", "add", "m.chen", "--generate")
    assert duplicate.code == 2 and "already an analyst called m.chen" in duplicate.err
    no_terminal = await hub_cli.run_async("users", "add", "x.y")
    assert no_terminal.code == 2 and "--password-file FILE or --generate" in no_terminal.err
    assert (await hub_cli.run_async("users", "disable", "j.doe")).code == 0
    listing = await hub_cli.run_async("users", "list", "--json")
    rows = {row["username"]: row for row in json.loads(listing.out)}
    assert rows["j.doe"]["disabled"] and rows["m.chen"]["role"] == "supervisor"
    unknown = await hub_cli.run_async("users", "disable", "nobody")
    assert unknown.code == 2 and "no analyst called nobody" in unknown.err


async def test_db_command(hub_cli: HubRunner, db_url: str) -> None:
    status = await hub_cli.run_async("--database", db_url, "db", "status")
    assert status.code == 1 and "needs `rtcc-hub db upgrade`" in status.out
    upgraded = await hub_cli.run_async("--database", db_url, "db", "upgrade")
    assert upgraded.code == 0 and "is at schema" in upgraded.out
    assert "password" not in upgraded.out
    status = await hub_cli.run_async("--database", db_url, "db", "status")
    assert status.code == 0 and "up to date" in status.out
    used = await hub_cli.run_async("db", "use", db_url)
    assert used.code == 0
    assert hub_cli.home.load_config().database is not None
    bad = await hub_cli.run_async("--database", "mysql://x@y/z", "db", "status")
    assert bad.code == 2 and "unsupported database" in bad.err
