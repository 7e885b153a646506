"""database: stores custom fields on targets in campaignkit's own database."""

from __future__ import annotations

from campaignkit.core import FieldUpdate, FieldUpdater


class DatabaseFieldUpdater(FieldUpdater):
    name = "database"

    def update(self, update: FieldUpdate) -> None:
        # Imported here: the plugin module loads with every command (even --help), the database only when used.
        from sqlalchemy import select

        from campaignkit.core.db import writing
        from campaignkit.core.db.schema import targets

        entry = {"value": update.value, "at": update.at.isoformat(), "run_id": update.run_id,
                 "campaign_id": update.campaign_id, **dict(update.metadata)}
        with writing(self.runtime.engine) as conn:
            row = conn.execute(select(targets.c.custom_fields).where(targets.c.key == update.target_key)).first()
            if row is None:
                conn.execute(targets.insert().values(
                    key=update.target_key, custom_fields={update.field: entry}, updated_at=update.at))
            else:
                fields = {**row.custom_fields, update.field: entry}
                conn.execute(targets.update().where(targets.c.key == update.target_key).values(
                    custom_fields=fields, updated_at=update.at))
