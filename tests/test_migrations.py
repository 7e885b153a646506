"""Alembic's migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from campaignkit.core.db.migrate import current_revision, head_revision, is_up_to_date, upgrade
from campaignkit.core.db.schema import metadata


def test_upgrade_matches_the_declared_schema(runtime: Any) -> None:
    with runtime.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []
    assert current_revision(runtime.engine) == head_revision() and is_up_to_date(runtime.engine)


def test_upgrade_is_idempotent(runtime: Any) -> None:
    upgrade(runtime.engine)
    assert is_up_to_date(runtime.engine)
