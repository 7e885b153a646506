"""runs indexes: the due-time and notify indexes partial, the approver index in key order

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 10:00:00

Every index of runs serves a query (tests/test_runs_indexes.py shows which); three are reshaped:

- ix_runs_due_at and ix_runs_notify hold only the runs that have a value: the worker's claim and the repair scan
  read due runs (``due_at <= now`` implies a due time), the digests runs with something to notify. Finished runs and
  open-ended waits have no due time, and most runs nothing to notify, so both shrink to the live few, and a step write
  leaving the column empty has nothing to add to them. SQLite, which this product never ANALYZEs, did not read
  ``notify IS NOT NULL`` from the full index at all: it scanned runs for every digest round;
- (campaign_id, assignee) becomes (campaign_id, assignee, target_key): an approver's history page and a digest's
  items are read in key order straight from it. Without statistics SQLite walked the campaign's (campaign_id,
  target_key) or (campaign_id, response, target_key) index instead, to skip the sort, reading every run of the
  campaign for one approver.

Rebuilding the three indexes reads the table once each: seconds per million runs.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

PARTIAL = ('due_at', 'notify')


def _not_null(column: str) -> dict[str, Any]:
    return {'sqlite_where': sa.text(f'{column} IS NOT NULL'), 'postgresql_where': sa.text(f'{column} IS NOT NULL')}


def upgrade() -> None:
    for column in PARTIAL:
        op.drop_index(f'ix_runs_{column}', table_name='runs')
        op.create_index(f'ix_runs_{column}', 'runs', [column], **_not_null(column))
    op.create_index('ix_runs_campaign_id_assignee_target_key', 'runs', ['campaign_id', 'assignee', 'target_key'])
    op.drop_index('ix_runs_campaign_id_assignee', table_name='runs')


def downgrade() -> None:
    op.create_index('ix_runs_campaign_id_assignee', 'runs', ['campaign_id', 'assignee'])
    op.drop_index('ix_runs_campaign_id_assignee_target_key', table_name='runs')
    for column in PARTIAL:
        op.drop_index(f'ix_runs_{column}', table_name='runs')
        op.create_index(f'ix_runs_{column}', 'runs', [column])
