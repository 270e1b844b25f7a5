"""Analysts: accounts with a role, passwords (Argon2id), sign-in sessions and the rate limit on
guessing.

Roles, each with everything the one before may do:

- `analyst`: the map, incidents and requests, the evidence locker, the live wall;
- `supervisor`: also the audit log (and its export), and stopping anyone's live view;
- `admin`: also the analysts' accounts.

A session is a random token in an HttpOnly cookie; the database keeps only its SHA-256, with a
CSRF token for the forms of that session. Sessions end after `IDLE` without use or `ABSOLUTE`
after sign-in, whichever comes first (an analyst's shift, not a week).

Sign-in is refused for `LOCKOUT` after `MAX_FAILURES_PER_ACCOUNT` wrong passwords for an
account, or `MAX_FAILURES_PER_ADDRESS` from one address, within that window; the counts are
in the database, so they hold across hub processes. A refusal never says whether the account
exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select

from hub.db import Analyst, Database, LoginFailure, LoginSession

Role = Literal["analyst", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("analyst", "supervisor", "admin")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12
IDLE = timedelta(hours=2)
ABSOLUTE = timedelta(hours=12)
LOCKOUT = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20

_hasher = PasswordHasher()
# Verified against when the account does not exist, so that a wrong name and a wrong password
# take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AnalystError(Exception):
    """An account change that cannot be made (the message says why)."""


def role_at_least(role: str, needed: Role) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise AnalystError(
            f"{username!r} cannot be a user name: 2 to 64 lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AnalystError(f"the password must be at least {MIN_PASSWORD} characters long")
    return password


def new_password() -> str:
    """A random password to hand to a new analyst (changed at first use by policy)."""
    return secrets.token_urlsafe(15)


async def add_user(
    db: Database, username: str, password: str, *, role: Role, display_name: str = ""
) -> Analyst:
    name = check_username(username)
    if role not in ROLES:
        raise AnalystError(f"role must be one of {', '.join(ROLES)}")
    hashed = await asyncio.to_thread(_hasher.hash, check_password(password))
    async with db.session() as session:
        taken = await session.scalar(select(Analyst.id).where(Analyst.username == name))
        if taken is not None:
            raise AnalystError(f"there is already an analyst called {name}")
        analyst = Analyst(
            username=name, display_name=display_name or name, role=role, password_hash=hashed
        )
        session.add(analyst)
    return analyst


async def users(db: Database) -> Sequence[Analyst]:
    async with db.session() as session:
        return (await session.execute(select(Analyst).order_by(Analyst.username))).scalars().all()


async def get_user(db: Database, username: str) -> Analyst | None:
    async with db.session() as session:
        return await session.scalar(select(Analyst).where(Analyst.username == username.lower()))


async def set_password(db: Database, username: str, password: str) -> None:
    hashed = await asyncio.to_thread(_hasher.hash, check_password(password))
    async with db.session() as session:
        analyst = await session.scalar(select(Analyst).where(Analyst.username == username))
        if analyst is None:
            raise AnalystError(f"there is no analyst called {username}")
        analyst.password_hash = hashed
        analyst.password_changed = datetime.now(UTC)
        # Every session signed in with the old password ends.
        await session.execute(delete(LoginSession).where(LoginSession.analyst_id == analyst.id))


async def set_disabled(db: Database, username: str, disabled: bool) -> None:
    async with db.session() as session:
        analyst = await session.scalar(select(Analyst).where(Analyst.username == username))
        if analyst is None:
            raise AnalystError(f"there is no analyst called {username}")
        analyst.disabled = disabled
        if disabled:
            await session.execute(delete(LoginSession).where(LoginSession.analyst_id == analyst.id))


async def set_role(db: Database, username: str, role: Role) -> None:
    if role not in ROLES:
        raise AnalystError(f"role must be one of {', '.join(ROLES)}")
    async with db.session() as session:
        analyst = await session.scalar(select(Analyst).where(Analyst.username == username))
        if analyst is None:
            raise AnalystError(f"there is no analyst called {username}")
        analyst.role = role


# --- signing in -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: a session (with its cookie token), or a refusal."""

    analyst: Analyst | None = None
    token: str | None = None
    session: LoginSession | None = None
    refused: str | None = None  # what the analyst is told
    locked: bool = False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def _failures(db: Database, username: str, ip: str, since: datetime) -> tuple[int, int]:
    async with db.session() as session:
        per_account = await session.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.username == username, LoginFailure.at >= since)
        )
        per_address = await session.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.ip == ip, LoginFailure.at >= since)
        )
    return int(per_account or 0), int(per_address or 0)


async def sign_in(
    db: Database, username: str, password: str, *, ip: str, now: datetime | None = None
) -> SignIn:
    now = now or datetime.now(UTC)
    name = username.strip().lower()[:64]
    per_account, per_address = await _failures(db, name, ip, now - LOCKOUT)
    if per_account >= MAX_FAILURES_PER_ACCOUNT or per_address >= MAX_FAILURES_PER_ADDRESS:
        minutes = int(LOCKOUT.total_seconds() // 60)
        return SignIn(
            refused=f"Too many failed sign-ins. Wait {minutes} minutes and try again, or ask "
            "an administrator to check the account.",
            locked=True,
        )
    analyst = await get_user(db, name)
    stored = analyst.password_hash if analyst is not None else _DUMMY_HASH
    good: bool
    try:
        good = await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        good = False
    if not good or analyst is None or analyst.disabled:
        async with db.session() as session:
            session.add(LoginFailure(username=name, ip=ip, at=now))
        return SignIn(refused="That user name and password do not match an active account.")
    token = secrets.token_urlsafe(32)
    record = LoginSession(
        id=token_hash(token),
        analyst_id=analyst.id,
        csrf=secrets.token_urlsafe(24),
        created=now,
        last_seen=now,
        expires=now + ABSOLUTE,
        ip=ip,
    )
    async with db.session() as session:
        session.add(record)
        # A successful sign-in clears the account's count; old sessions past their end go.
        await session.execute(delete(LoginFailure).where(LoginFailure.username == name))
        await session.execute(delete(LoginSession).where(LoginSession.expires < now))
        if _hasher.check_needs_rehash(analyst.password_hash):
            fresh = await session.get(Analyst, analyst.id)
            if fresh is not None:
                fresh.password_hash = await asyncio.to_thread(_hasher.hash, password)
    return SignIn(analyst=analyst, token=token, session=record)


async def session_for(
    db: Database, token: str | None, *, now: datetime | None = None
) -> tuple[LoginSession, Analyst] | None:
    """The live session of a cookie token, touched; None if unknown, idle too long or over."""
    if not token or len(token) > 128:
        return None
    now = now or datetime.now(UTC)
    async with db.session() as session:
        found = await session.get(LoginSession, token_hash(token))
        if found is None:
            return None
        if found.expires <= now or found.last_seen + IDLE <= now:
            await session.delete(found)
            return None
        analyst = await session.get(Analyst, found.analyst_id)
        if analyst is None or analyst.disabled:
            await session.delete(found)
            return None
        # Touch at most once a minute: a page polling every few seconds must not write each time.
        if now - found.last_seen > timedelta(minutes=1):
            found.last_seen = now
    return found, analyst


async def sign_out(db: Database, token: str | None) -> None:
    if not token:
        return
    async with db.session() as session:
        await session.execute(delete(LoginSession).where(LoginSession.id == token_hash(token)))
