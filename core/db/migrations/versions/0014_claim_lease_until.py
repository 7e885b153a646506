"""runs.lease_until: a claim sets only unindexed columns; on PostgreSQL runs pages keep room for that update

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-13 10:00:00

A claim used to move the run's due time to the lease's expiry. due_at is indexed, so on PostgreSQL every claim wrote
a new row version with an entry in each of the table's eleven indexes: the costliest statement of a step's share of
the server's work (about 40 µs a run, benchmarks/engine.py). The lease's expiry is now a column of its own and the
due time stays; the claim skips runs someone holds. An update that changes no indexed column, with room on the row's
page, is a HOT update: the new version goes beside the old one and no index is touched (a tenth of the cost).
Fillfactor 50 leaves that room in the pages runs are launched into; the table takes more pages for it.

Runs held at the upgrade keep their hold: its expiry was their due time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

FILLFACTOR = 50


def upgrade() -> None:
    op.add_column('runs', sa.Column('lease_until', sa.DateTime(), nullable=True))
    op.execute("UPDATE runs SET lease_until = due_at WHERE lease_owner IS NOT NULL")
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"ALTER TABLE runs SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE runs RESET (fillfactor)")
    op.execute("UPDATE runs SET due_at = lease_until WHERE lease_owner IS NOT NULL")
    op.drop_column('runs', 'lease_until')  # in place, not batch: a copy of runs would lose its count triggers
