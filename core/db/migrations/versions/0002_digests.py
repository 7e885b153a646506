"""digests: runs.notify, the digests and digest_items tables; audit_history indexed by object name

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify', sa.String(length=20), nullable=True))
        batch_op.create_index('ix_runs_notify', ['notify'], unique=False)

    op.create_table('digests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('launch_id', sa.Integer(), nullable=False),
    sa.Column('assignee', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('item_count', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_digests_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['launch_id'], ['launches.id'], name=op.f('fk_digests_launch_id_launches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digests'))
    )
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.create_index('ix_digests_launch_id_assignee', ['launch_id', 'assignee'], unique=False)

    op.create_table('digest_items',
    sa.Column('digest_id', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], name=op.f('fk_digest_items_digest_id_digests')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_digest_items_run_id_runs')),
    sa.PrimaryKeyConstraint('digest_id', 'run_id', name=op.f('pk_digest_items'))
    )
    with op.batch_alter_table('digest_items', schema=None) as batch_op:
        batch_op.create_index('ix_digest_items_run_id', ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('digest_items', schema=None) as batch_op:
        batch_op.drop_index('ix_digest_items_run_id')
    op.drop_table('digest_items')
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_index('ix_digests_launch_id_assignee')
    op.drop_table('digests')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_notify')
        batch_op.drop_column('notify')
