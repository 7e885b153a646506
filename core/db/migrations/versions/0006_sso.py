"""single sign-on: users.sso_issuer and users.sso_subject, unique together, for accounts made by OpenID Connect

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns and an index: no table copy, even on SQLite; existing accounts keep NULLs (no single sign-on).
    op.add_column('users', sa.Column('sso_issuer', sa.String(length=300), nullable=True))
    op.add_column('users', sa.Column('sso_subject', sa.String(length=255), nullable=True))
    op.create_index('uq_users_sso_issuer_sso_subject', 'users', ['sso_issuer', 'sso_subject'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_users_sso_issuer_sso_subject', table_name='users')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('sso_subject')
        batch.drop_column('sso_issuer')
