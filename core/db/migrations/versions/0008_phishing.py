"""phishing: bounced_mailboxes, phishing_results and phishing_groups

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00

The phishing kind's results, one row per run, with its groups; and the bounced mailboxes later campaigns skip.
New tables only: nothing existing is copied or changed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'bounced_mailboxes',
        sa.Column('address', sa.String(length=320), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('first_seen', sa.DateTime(), nullable=False),
        sa.Column('last_seen', sa.DateTime(), nullable=False),
        sa.Column('campaign_id', sa.String(length=36), nullable=True),
        sa.Column('run_id', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('address', name=op.f('pk_bounced_mailboxes')),
    )
    op.create_table(
        'phishing_results',
        sa.Column('run_id', sa.BigInteger(), nullable=False),
        sa.Column('campaign_id', sa.String(length=36), nullable=False),
        sa.Column('launch_id', sa.Integer(), nullable=False),
        sa.Column('target_key', sa.String(length=300), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('attack', sa.String(length=100), nullable=False),
        sa.Column('groups', sa.JSON(), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('send_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('delivery', sa.String(length=20), nullable=True),
        sa.Column('delivery_at', sa.DateTime(), nullable=True),
        sa.Column('delivery_detail', sa.JSON(), nullable=True),
        sa.Column('opened_at', sa.DateTime(), nullable=True),
        sa.Column('reported_at', sa.DateTime(), nullable=True),
        sa.Column('clicked_at', sa.DateTime(), nullable=True),
        sa.Column('submitted_at', sa.DateTime(), nullable=True),
        sa.Column('training_started_at', sa.DateTime(), nullable=True),
        sa.Column('training_finished_at', sa.DateTime(), nullable=True),
        sa.Column('filtered_hits', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_phishing_results_run_id_runs')),
        sa.PrimaryKeyConstraint('run_id', name=op.f('pk_phishing_results')),
        sa.UniqueConstraint('token', name=op.f('uq_phishing_results_token')),
    )
    op.create_index('ix_phishing_results_campaign_id_target_key', 'phishing_results', ['campaign_id', 'target_key'])
    op.create_index('ix_phishing_results_campaign_id_attack', 'phishing_results', ['campaign_id', 'attack'])
    op.create_index('ix_phishing_results_campaign_id_delivery', 'phishing_results', ['campaign_id', 'delivery'])
    op.create_table(
        'phishing_groups',
        sa.Column('campaign_id', sa.String(length=36), nullable=False),
        sa.Column('group_name', sa.String(length=200), nullable=False),
        sa.Column('run_id', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('campaign_id', 'group_name', 'run_id', name=op.f('pk_phishing_groups')),
    )


def downgrade() -> None:
    op.drop_table('phishing_groups')
    op.drop_index('ix_phishing_results_campaign_id_delivery', table_name='phishing_results')
    op.drop_index('ix_phishing_results_campaign_id_attack', table_name='phishing_results')
    op.drop_index('ix_phishing_results_campaign_id_target_key', table_name='phishing_results')
    op.drop_table('phishing_results')
    op.drop_table('bounced_mailboxes')
