"""definition text: campaign_versions.source_text keeps each version's definition as written (YAML or JSON)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:00:00

The console's "Edit definition" and GET /api/campaigns/{id}/definition give back what was written, comments and the
settings a kind expands included, not the expanded model. Versions written before it have none (NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: no table copy, even on SQLite.
    op.add_column('campaign_versions', sa.Column('source_text', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaign_versions') as batch:
        batch.drop_column('source_text')
