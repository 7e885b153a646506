"""An inventory: a SQLite file in tmp_path with awkward identifiers, read back with plain sqlite3."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

# A table name with a space and a key column named after an SQL keyword: SQLAlchemy must quote them.
SCHEMA = ('CREATE TABLE "asset inventory" ("user" TEXT PRIMARY KEY, "approval status" TEXT, owner TEXT, '
          "note TEXT)")
ROWS = [("alice", None, "it", "laptop"), ("bob", "Pending", "it", "phone"), ("zoe", "Revoked", "hr", "badge")]


def make_inventory(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute(SCHEMA)
        db.executemany('INSERT INTO "asset inventory" VALUES (?, ?, ?, ?)', ROWS)
    db.close()


def read_inventory(path: Path) -> dict[str, tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return {row[0]: row[1:] for row in db.execute('SELECT * FROM "asset inventory" ORDER BY "user"')}
    finally:
        db.close()


def table_changes(**changes: Any) -> dict[str, Any]:
    """The ``plugins`` settings for ck_make_campaign that change these keys of ck_settings' sql_inventory table."""
    return {"config": {"sql_inventory": changes}}


def inventory_config(path: Path, **changes: Any) -> dict[str, Any]:
    return {"url": f"sqlite:///{path}", "table": "asset inventory", "key_column": "user",
            "fields": {"Campaigns Approval": "approval status", "Owner": "owner"}, "timeout_seconds": 0.2, **changes}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.db"
    make_inventory(path)
    return path


@pytest.fixture
def ck_settings(inventory: Path) -> dict[str, Any]:
    return {"plugins": {"config": {"sql_inventory": inventory_config(inventory)}}}
