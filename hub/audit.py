"""The analysts' audit log: every search, request, view, download and live session, with who,
when, the case and the reason. Written by the library functions the console and the command
line share; read by supervisors, exported as CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from hub.csvout import to_csv as csv_text
from hub.db import AuditEntry, Database

# What an entry's `action` may be, in plain words for the page.
ACTIONS = {
    "sign_in": "signed in",
    "sign_in_refused": "sign-in refused",
    "sign_out": "signed out",
    "search": "searched the map",
    "incident": "opened an incident",
    "request": "requested footage",
    "view": "viewed",
    "download": "downloaded",
    "verify": "re-verified evidence",
    "live": "started a live view",
    "live_stop": "stopped a live view",
    "export": "exported",
    "user": "changed an account",
}


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where (the command line: the local user, no address)."""

    username: str
    ip: str | None = None


async def record(
    db: Database,
    actor: Actor,
    action: str,
    *,
    case: str | None = None,
    reason: str | None = None,
    target: str | None = None,
    detail: str = "",
    outcome: str = "ok",
) -> None:
    entry = make_entry(
        actor, action, case=case, reason=reason, target=target, detail=detail, outcome=outcome
    )
    async with db.session() as session:
        session.add(entry)


def make_entry(
    actor: Actor,
    action: str,
    *,
    case: str | None = None,
    reason: str | None = None,
    target: str | None = None,
    detail: str = "",
    outcome: str = "ok",
) -> AuditEntry:
    """An entry to add in a transaction of the caller's (with what it records)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    return AuditEntry(
        at=datetime.now(UTC),
        analyst=actor.username,
        action=action,
        case=case,
        reason=reason,
        target=(target or "")[:200] or None,
        detail=detail[:4000],
        ip=actor.ip,
        outcome=outcome,
    )


async def entries(
    db: Database,
    *,
    analyst: str | None = None,
    case: str | None = None,
    since: datetime | None = None,
    limit: int | None = 500,
) -> Sequence[AuditEntry]:
    """Newest first."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if analyst:
        query = query.where(AuditEntry.analyst == analyst)
    if case:
        query = query.where(AuditEntry.case == case)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if limit is not None:
        query = query.limit(limit)
    async with db.session() as session:
        return (await session.execute(query)).scalars().all()


CSV_COLUMNS = (
    "time (UTC)",
    "analyst",
    "action",
    "case",
    "reason",
    "target",
    "detail",
    "address",
    "outcome",
)


def to_csv(rows: Sequence[AuditEntry]) -> str:
    return csv_text(
        CSV_COLUMNS,
        (
            (
                row.at.isoformat(),
                row.analyst,
                row.action,
                row.case,
                row.reason,
                row.target,
                row.detail,
                row.ip,
                row.outcome,
            )
            for row in rows
        ),
    )
