"""simulations: the stored summaries of `campaign simulate`

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09 10:00:00

One row per simulation of a campaign, its summary as JSON, kept apart from runs (no history, result or export reads
it). A new table only: nothing existing is copied or changed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'simulations',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('campaign_id', sa.String(length=36), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('targets', sa.Integer(), nullable=False),
        sa.Column('sample', sa.Integer(), nullable=True),
        sa.Column('fast_forward', sa.Boolean(), nullable=False),
        sa.Column('summary', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_simulations_campaign_id_campaigns')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_simulations')),
    )
    op.create_index('ix_simulations_campaign_id_id', 'simulations', ['campaign_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_simulations_campaign_id_id', table_name='simulations')
    op.drop_table('simulations')
