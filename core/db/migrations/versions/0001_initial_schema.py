"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 17:44:01.676591
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_chain',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_audit_id', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain'))
    )
    op.bulk_insert(
        sa.table("audit_chain", sa.column("id", sa.Integer), sa.column("last_audit_id", sa.BigInteger),
                 sa.column("last_hash", sa.String)),
        [{"id": 1, "last_audit_id": 0, "last_hash": "0" * 64}],
    )
    op.create_table('audit_history',
    sa.Column('audit_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('user_name', sa.String(length=200), nullable=False),
    sa.Column('computer_name', sa.String(length=200), nullable=True),
    sa.Column('computer_ip', sa.String(length=64), nullable=True),
    sa.Column('server_name', sa.String(length=200), nullable=True),
    sa.Column('audit_timestamp', sa.DateTime(), nullable=False),
    sa.Column('object_id', sa.String(length=36), nullable=True),
    sa.Column('object_name', sa.String(length=300), nullable=True),
    sa.Column('object_folder', sa.String(length=300), nullable=True),
    sa.Column('version_major', sa.Integer(), nullable=True),
    sa.Column('version_minor', sa.Integer(), nullable=True),
    sa.Column('audit_type', sa.String(length=100), nullable=False),
    sa.Column('audit_sub_type', sa.String(length=100), nullable=False),
    sa.Column('details', sa.Text(), nullable=True),
    sa.Column('class_name', sa.String(length=300), nullable=True),
    sa.Column('assembly_name', sa.String(length=300), nullable=True),
    sa.Column('record_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('audit_id', name=op.f('pk_audit_history'))
    )
    with op.batch_alter_table('audit_history', schema=None) as batch_op:
        batch_op.create_index('ix_audit_history_audit_timestamp', ['audit_timestamp'], unique=False)
        batch_op.create_index('ix_audit_history_audit_type_audit_timestamp', ['audit_type', 'audit_timestamp'], unique=False)
        batch_op.create_index('ix_audit_history_object_id_audit_timestamp', ['object_id', 'audit_timestamp'], unique=False)
        batch_op.create_index('ix_audit_history_user_name_audit_timestamp', ['user_name', 'audit_timestamp'], unique=False)

    op.create_table('audit_sink_state',
    sa.Column('sink', sa.String(length=100), nullable=False),
    sa.Column('last_audit_id', sa.BigInteger(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('last_success_at', sa.DateTime(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('sink', name=op.f('pk_audit_sink_state'))
    )
    op.create_table('campaigns',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('folder', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('current_version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('folder', 'name', name=op.f('uq_campaigns_folder_name'))
    )
    op.create_table('targets',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('custom_fields', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_targets'))
    )
    op.create_table('campaign_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('major', sa.Integer(), nullable=False),
    sa.Column('minor', sa.Integer(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_versions_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_versions')),
    sa.UniqueConstraint('campaign_id', 'major', 'minor', name=op.f('uq_campaign_versions_campaign_id_major_minor'))
    )
    op.create_table('launches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('cycle_at', sa.DateTime(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('target_count', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('launched_at', sa.DateTime(), nullable=True),
    sa.Column('deadline_at', sa.DateTime(), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_launches_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['version_id'], ['campaign_versions.id'], name=op.f('fk_launches_version_id_campaign_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_launches')),
    sa.UniqueConstraint('campaign_id', 'cycle_at', name=op.f('uq_launches_campaign_id_cycle_at'))
    )
    with op.batch_alter_table('launches', schema=None) as batch_op:
        batch_op.create_index('ix_launches_status_cycle_at', ['status', 'cycle_at'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('launch_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('target_key', sa.String(length=300), nullable=False),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('current_node', sa.String(length=100), nullable=True),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=True),
    sa.Column('paused_due_at', sa.DateTime(), nullable=True),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_token', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('assignee', sa.String(length=320), nullable=True),
    sa.Column('response', sa.String(length=40), nullable=True),
    sa.Column('response_at', sa.DateTime(), nullable=True),
    sa.Column('result', sa.String(length=20), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_runs_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['launch_id'], ['launches.id'], name=op.f('fk_runs_launch_id_launches')),
    sa.ForeignKeyConstraint(['version_id'], ['campaign_versions.id'], name=op.f('fk_runs_version_id_campaign_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('launch_id', 'target_key', name=op.f('uq_runs_launch_id_target_key'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_campaign_id_status', ['campaign_id', 'status'], unique=False)
        batch_op.create_index('ix_runs_campaign_id_response_target_key', ['campaign_id', 'response', 'target_key'], unique=False)
        batch_op.create_index('ix_runs_campaign_id_target_key', ['campaign_id', 'target_key'], unique=False)
        batch_op.create_index('ix_runs_campaign_id_assignee', ['campaign_id', 'assignee'], unique=False)
        batch_op.create_index('ix_runs_campaign_id_response_at', ['campaign_id', 'response_at'], unique=False)
        batch_op.create_index('ix_runs_due_at', ['due_at'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('consumed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_events_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_run_id_consumed_at', ['run_id', 'consumed_at'], unique=False)

    op.create_table('step_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=False),
    sa.Column('node_id', sa.String(length=100), nullable=False),
    sa.Column('visit', sa.Integer(), nullable=False),
    sa.Column('step_type', sa.String(length=100), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('edge', sa.String(length=100), nullable=True),
    sa.Column('detail', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_step_records_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step_records')),
    sa.UniqueConstraint('run_id', 'node_id', 'visit', name=op.f('uq_step_records_run_id_node_id_visit'))
    )


def downgrade() -> None:
    op.drop_table('step_records')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_run_id_consumed_at')

    op.drop_table('events')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_due_at')
        batch_op.drop_index('ix_runs_campaign_id_response_target_key')
        batch_op.drop_index('ix_runs_campaign_id_target_key')
        batch_op.drop_index('ix_runs_campaign_id_assignee')
        batch_op.drop_index('ix_runs_campaign_id_response_at')
        batch_op.drop_index('ix_runs_campaign_id_status')

    op.drop_table('runs')
    with op.batch_alter_table('launches', schema=None) as batch_op:
        batch_op.drop_index('ix_launches_status_cycle_at')

    op.drop_table('launches')
    op.drop_table('campaign_versions')
    op.drop_table('targets')
    op.drop_table('campaigns')
    op.drop_table('audit_sink_state')
    with op.batch_alter_table('audit_history', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_history_user_name_audit_timestamp')
        batch_op.drop_index('ix_audit_history_object_id_audit_timestamp')
        batch_op.drop_index('ix_audit_history_audit_type_audit_timestamp')
        batch_op.drop_index('ix_audit_history_audit_timestamp')

    op.drop_table('audit_history')
    op.drop_table('audit_chain')
