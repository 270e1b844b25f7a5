"""Alembic environment: migrations always run on a connection the hub opened
(`hub.db.engine.Database.migrate`), never from a URL in an ini file."""

from __future__ import annotations

from alembic import context

from hub.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `rtcc-hub db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
