"""campaignkit plugin: the ``sql_inventory`` custom-field updater (a table in an external SQL database)."""

from __future__ import annotations

from campaignkit.core import FieldUpdater, hookimpl

from .config import SqlInventoryConfig
from .updater import SqlInventoryUpdater

__all__ = ["SqlInventoryConfig", "SqlInventoryUpdater", "register_field_updaters"]


@hookimpl
def register_field_updaters() -> list[type[FieldUpdater]]:
    return [SqlInventoryUpdater]
