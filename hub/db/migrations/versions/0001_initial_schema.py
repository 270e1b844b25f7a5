"""The initial schema: sites, cameras, incidents, requests, events, evidence, custody,
analysts, their sessions and sign-in failures, the audit log.

Revision ID: 0001
Revises:

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "analysts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("analyst", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("case", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audit_analyst"), "audit", ["analyst"], unique=False)
    op.create_index("ix_audit_at", "audit", ["at"], unique=False)
    op.create_index(op.f("ix_audit_case"), "audit", ["case"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(length=63), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("iat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "seq", name="uq_events_request_seq"),
    )
    op.create_index(op.f("ix_events_site_id"), "events", ["site_id"], unique=False)

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_incidents_case"), "incidents", ["case"], unique=False)

    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_failures_ip_at", "login_failures", ["ip", "at"], unique=False)
    op.create_index(
        "ix_login_failures_username_at", "login_failures", ["username", "at"], unique=False
    )

    op.create_table(
        "sites",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=400), nullable=False),
        sa.Column("contact", sa.String(length=400), nullable=False),
        sa.Column("registry_verdict", sa.String(length=16), nullable=True),
        sa.Column("registry_reason", sa.Text(), nullable=False),
        sa.Column("registry_iat", sa.DateTime(timezone=True), nullable=True),
        sa.Column("registry_received", sa.DateTime(timezone=True), nullable=True),
        sa.Column("registry_token", sa.Text(), nullable=True),
        sa.Column("status_verdict", sa.String(length=16), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("status_iat", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_received", sa.DateTime(timezone=True), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("version", sa.String(length=40), nullable=True),
        sa.Column("uptime_s", sa.Float(), nullable=True),
        sa.Column("cameras_online", sa.Integer(), nullable=True),
        sa.Column("cameras_total", sa.Integer(), nullable=True),
        sa.Column("clock_synced", sa.Boolean(), nullable=True),
        sa.Column("clock_source", sa.String(length=80), nullable=True),
        sa.Column("clock_drift_s", sa.Float(), nullable=True),
        sa.Column("store_used", sa.BigInteger(), nullable=True),
        sa.Column("store_budget", sa.BigInteger(), nullable=True),
        sa.Column("disk_free", sa.BigInteger(), nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "cameras",
        sa.Column("site_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("heading", sa.Float(), nullable=True),
        sa.Column("fov", sa.Float(), nullable=True),
        sa.Column("description", sa.String(length=400), nullable=False),
        sa.Column("sharing", sa.String(length=16), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("footage_hours", sa.Float(), nullable=False),
        sa.Column("vendor", sa.String(length=128), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("firmware", sa.String(length=128), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", "id"),
    )
    op.create_index("ix_cameras_lat_lon", "cameras", ["lat", "lon"], unique=False)

    op.create_table(
        "login_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("analyst_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["analyst_id"], ["analysts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_login_sessions_analyst_id"), "login_sessions", ["analyst_id"], unique=False
    )

    op.create_table(
        "requests",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.String(length=63), nullable=False),
        sa.Column("camera_id", sa.String(length=63), nullable=True),
        sa.Column("cmd", sa.String(length=16), nullable=False),
        sa.Column("case", sa.String(length=128), nullable=True),
        sa.Column("requester", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_seconds", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(length=64), nullable=True),
        sa.Column("relay_session", sa.String(length=32), nullable=True),
        sa.Column("sharing", sa.String(length=16), nullable=True),
        sa.Column("issued", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=True),
        sa.Column("bytes_total", sa.BigInteger(), nullable=True),
        sa.Column("started", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=64), nullable=True),
        sa.Column("first_event", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_requests_case"), "requests", ["case"], unique=False)
    op.create_index(op.f("ix_requests_incident_id"), "requests", ["incident_id"], unique=False)
    op.create_index(op.f("ix_requests_relay_session"), "requests", ["relay_session"], unique=False)
    op.create_index("ix_requests_site_camera", "requests", ["site_id", "camera_id"], unique=False)

    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("case", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.String(length=63), nullable=False),
        sa.Column("camera_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_ok", sa.Boolean(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verification", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    op.create_index(op.f("ix_evidence_case"), "evidence", ["case"], unique=False)

    op.create_table(
        "custody",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("evidence_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["evidence_id"], ["evidence.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_custody_evidence_id"), "custody", ["evidence_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_custody_evidence_id"), table_name="custody")

    op.drop_table("custody")
    op.drop_index(op.f("ix_evidence_case"), table_name="evidence")

    op.drop_table("evidence")
    op.drop_index("ix_requests_site_camera", table_name="requests")
    op.drop_index(op.f("ix_requests_relay_session"), table_name="requests")
    op.drop_index(op.f("ix_requests_incident_id"), table_name="requests")
    op.drop_index(op.f("ix_requests_case"), table_name="requests")

    op.drop_table("requests")
    op.drop_index(op.f("ix_login_sessions_analyst_id"), table_name="login_sessions")

    op.drop_table("login_sessions")
    op.drop_index("ix_cameras_lat_lon", table_name="cameras")

    op.drop_table("cameras")
    op.drop_table("sites")
    op.drop_index("ix_login_failures_username_at", table_name="login_failures")
    op.drop_index("ix_login_failures_ip_at", table_name="login_failures")

    op.drop_table("login_failures")
    op.drop_index(op.f("ix_incidents_case"), table_name="incidents")

    op.drop_table("incidents")
    op.drop_index(op.f("ix_events_site_id"), table_name="events")

    op.drop_table("events")
    op.drop_index(op.f("ix_audit_case"), table_name="audit")
    op.drop_index("ix_audit_at", table_name="audit")
    op.drop_index(op.f("ix_audit_analyst"), table_name="audit")

    op.drop_table("audit")
    op.drop_table("analysts")
