"""security and keyed side effects: runs.assignment, digest_items.assignment and new, events.sent_by,
audit_history.key_id, step_starts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignment', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('digest_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignment', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('new', sa.Boolean(), nullable=True))
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_by', sa.String(length=200), nullable=True))
    with op.batch_alter_table('audit_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=16), nullable=True))
    op.create_table('step_starts',
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('node_id', sa.String(length=100), nullable=False),
    sa.Column('visit', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'node_id', 'visit', name=op.f('pk_step_starts'))
    )


def downgrade() -> None:
    op.drop_table('step_starts')
    with op.batch_alter_table('audit_history', schema=None) as batch_op:
        batch_op.drop_column('key_id')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('sent_by')
    with op.batch_alter_table('digest_items', schema=None) as batch_op:
        batch_op.drop_column('new')
        batch_op.drop_column('assignment')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('assignment')
