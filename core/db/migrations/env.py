"""Alembic environment: runs against the connection campaignkit hands in (see core/db/migrate.py)."""

from __future__ import annotations

from alembic import context

from campaignkit.core.db.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `campaignkit db upgrade`, which provides the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
