"""The hub's database: SQLAlchemy 2 (async) models and Alembic migrations.

SQLite (aiosqlite) in the hub's home by default, PostgreSQL (asyncpg) for a city. The hub's
keys stay files; everything else the hub knows lives here: sites and cameras from the signed
registries, requests and every event, incidents, evidence and its chain of custody, analysts,
their sessions and the audit log.
"""

from hub.db.engine import (
    DATABASE_ENV,
    Database,
    DatabaseError,
    database_url,
    head_revision,
    opened,
    redacted,
)
from hub.db.models import (
    Analyst,
    AuditEntry,
    Base,
    Camera,
    Custody,
    EventRow,
    Evidence,
    Incident,
    LoginFailure,
    LoginSession,
    RequestRow,
    Site,
    utcnow,
)

__all__ = [
    "DATABASE_ENV",
    "Analyst",
    "AuditEntry",
    "Base",
    "Camera",
    "Custody",
    "Database",
    "DatabaseError",
    "EventRow",
    "Evidence",
    "Incident",
    "LoginFailure",
    "LoginSession",
    "RequestRow",
    "Site",
    "database_url",
    "head_revision",
    "opened",
    "redacted",
    "utcnow",
]
