"""The hub's tables (SQLAlchemy 2 declarative models). Alembic migrations under
`hub/db/migrations/versions/` create and change them; a change here needs a migration there.

Every time is stored in UTC and read back timezone-aware (`UtcDateTime`), on SQLite as on
PostgreSQL. Ids the sites see (request ids, site and camera ids) are strings; the hub's own
records (incidents, evidence, analysts, audit entries) have integer ids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        moment = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        int: Integer,
    }


class Site(Base):
    """A site as its signed retained registry and status describe it."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(400), default="")
    contact: Mapped[str] = mapped_column(String(400), default="")
    # The latest registry message: its verdict ("verified", "forged", "untrusted", "malformed")
    # and, when it did not verify, why. Cameras are listed only from a verified one.
    registry_verdict: Mapped[str | None] = mapped_column(String(16))
    registry_reason: Mapped[str] = mapped_column(Text, default="")
    registry_iat: Mapped[datetime | None]
    registry_received: Mapped[datetime | None]
    registry_token: Mapped[str | None] = mapped_column(Text)
    status_verdict: Mapped[str | None] = mapped_column(String(16))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_iat: Mapped[datetime | None]
    status_received: Mapped[datetime | None]
    online: Mapped[bool | None] = mapped_column(Boolean)
    version: Mapped[str | None] = mapped_column(String(40))
    uptime_s: Mapped[float | None] = mapped_column(Float)
    cameras_online: Mapped[int | None]
    cameras_total: Mapped[int | None]
    clock_synced: Mapped[bool | None] = mapped_column(Boolean)
    clock_source: Mapped[str | None] = mapped_column(String(80))
    # Hub receipt time minus the site's signing time of a message received live (not a retained
    # copy): how far the site's clock is behind (positive) or ahead (negative), plus transit.
    clock_drift_s: Mapped[float | None] = mapped_column(Float)
    store_used: Mapped[int | None] = mapped_column(BigInteger)
    store_budget: Mapped[int | None] = mapped_column(BigInteger)
    disk_free: Mapped[int | None] = mapped_column(BigInteger)
    paused_until: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]


class Camera(Base):
    """A camera listed in its site's last verified registry."""

    __tablename__ = "cameras"
    __table_args__ = (Index("ix_cameras_lat_lon", "lat", "lon"),)

    site_id: Mapped[str] = mapped_column(
        String(63), ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    heading: Mapped[float | None] = mapped_column(Float)
    fov: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(String(400), default="")
    sharing: Mapped[str] = mapped_column(String(16))
    live: Mapped[bool] = mapped_column(Boolean, default=False)
    verdict: Mapped[str] = mapped_column(String(16), default="unknown")
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    footage_hours: Mapped[float] = mapped_column(Float, default=0.0)
    vendor: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(128))
    firmware: Mapped[str | None] = mapped_column(String(128))
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class Incident(Base):
    """An area and a time window an analyst asked every shared camera about (the DC alert)."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    case: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    start: Mapped[datetime]
    end: Mapped[datetime]
    created: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))


class RequestRow(Base):
    """A signed request the hub sent, and where its events have taken it."""

    __tablename__ = "requests"
    __table_args__ = (Index("ix_requests_site_camera", "site_id", "camera_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the jti
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    site_id: Mapped[str] = mapped_column(String(63))
    camera_id: Mapped[str | None] = mapped_column(String(63))
    cmd: Mapped[str] = mapped_column(String(16))
    case: Mapped[str | None] = mapped_column(String(128), index=True)
    requester: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    start: Mapped[datetime | None]
    end: Mapped[datetime | None]
    at: Mapped[datetime | None]
    max_seconds: Mapped[int | None]
    target: Mapped[str | None] = mapped_column(String(64))
    relay_session: Mapped[str | None] = mapped_column(String(32), index=True)
    sharing: Mapped[str | None] = mapped_column(String(16))  # as listed when it was sent
    issued: Mapped[datetime]
    expires: Mapped[datetime]
    token: Mapped[str] = mapped_column(Text)
    # "sent" until the first event; then the state of the latest event (by seq).
    state: Mapped[str] = mapped_column(String(24), default="sent")
    last_seq: Mapped[int] = mapped_column(default=0)
    code: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    bytes_sent: Mapped[int | None] = mapped_column(BigInteger)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    started: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(64))
    first_event: Mapped[datetime | None]  # when the first event arrived (latency figures)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class EventRow(Base):
    """Every verified event, once: (request, seq) is unique, so two hub processes reading the
    same broker store it once and only the one whose insert succeeded acts on it."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("request_id", "seq", name="uq_events_request_seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int]
    site_id: Mapped[str] = mapped_column(String(63), index=True)
    state: Mapped[str] = mapped_column(String(24))
    iat: Mapped[datetime]
    received: Mapped[datetime]
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    token: Mapped[str] = mapped_column(Text)


class Evidence(Base):
    """A clip or snapshot a site delivered for a request, and its verification."""

    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        ForeignKey("requests.id", ondelete="CASCADE"), unique=True
    )
    case: Mapped[str] = mapped_column(String(128), index=True)
    site_id: Mapped[str] = mapped_column(String(63))
    camera_id: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))  # clip | snapshot
    path: Mapped[str | None] = mapped_column(Text)  # under the hub's home; None: not here
    manifest: Mapped[str] = mapped_column(Text)  # the signed manifest (JWS)
    sha256: Mapped[str | None] = mapped_column(String(64))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    received: Mapped[datetime] = mapped_column(default=utcnow)
    verified_ok: Mapped[bool | None] = mapped_column(Boolean)
    verified_at: Mapped[datetime | None]
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Custody(Base):
    """Chain of custody: who did what with a piece of evidence, and when."""

    __tablename__ = "custody"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    evidence_id: Mapped[int] = mapped_column(
        ForeignKey("evidence.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # an analyst, or "hub" for automatic steps
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class Analyst(Base):
    __tablename__ = "analysts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed: Mapped[datetime] = mapped_column(default=utcnow)


class LoginSession(Base):
    """A signed-in browser. Only the SHA-256 of the cookie's token is kept."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    analyst_id: Mapped[int] = mapped_column(
        ForeignKey("analysts.id", ondelete="CASCADE"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    expires: Mapped[datetime]
    ip: Mapped[str] = mapped_column(String(64), default="")


class LoginFailure(Base):
    """A refused sign-in, counted per account and per address to rate-limit guessing."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_username_at", "username", "at"),
        Index("ix_login_failures_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """The analysts' audit log: who did what, when, for which case and why."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    analyst: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))
    case: Mapped[str | None] = mapped_column(String(128), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
