"""run counts: runs by cycle, status and node, and visits by node and edge, kept by triggers; runs searched by key

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:00:00

The launch counts the runs it inserts (core/campaigns/launch.py, the one code that inserts runs: a trigger per
inserted row would double a launch's time); the database counts every later change itself, so that it counts
whichever code path (or plugin) makes it. SQLite: row triggers upsert one row per key (a unique index). PostgreSQL:
statement triggers append one delta row per key and statement from the transition tables, so concurrent workers
never wait on a shared counter row; housekeeping folds the deltas (core/campaigns/counts.py). Existing runs and step
records are counted here once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

RUN_COLUMNS = ['campaign_id', 'launch_id', 'status', 'node']
PATH_COLUMNS = ['campaign_id', 'node_id', 'edge']
RUN_KEY = "campaign_id = old.campaign_id AND launch_id = old.launch_id AND status = old.status " \
          "AND node = coalesce(old.current_node, '')"
PATH_KEY = "campaign_id = (SELECT campaign_id FROM runs WHERE id = old.run_id) AND node_id = old.node_id " \
           "AND edge = coalesce(old.edge, '')"
ADD_RUN = ("INSERT INTO run_counts (campaign_id, launch_id, status, node, runs) VALUES (new.campaign_id, "
           "new.launch_id, new.status, coalesce(new.current_node, ''), 1) "
           "ON CONFLICT (campaign_id, launch_id, status, node) DO UPDATE SET runs = runs + 1;")
ADD_PATH = ("INSERT INTO path_counts (campaign_id, node_id, edge, visits) SELECT campaign_id, new.node_id, "
            "coalesce(new.edge, ''), 1 FROM runs WHERE id = new.run_id "
            "ON CONFLICT (campaign_id, node_id, edge) DO UPDATE SET visits = visits + 1;")

SQLITE = [
    "CREATE TRIGGER ck_run_counts_update AFTER UPDATE OF status, current_node, launch_id ON runs "
    "WHEN old.status IS NOT new.status OR old.current_node IS NOT new.current_node "
    f"OR old.launch_id IS NOT new.launch_id BEGIN\nUPDATE run_counts SET runs = runs - 1 WHERE {RUN_KEY};\n"
    f"{ADD_RUN}\nEND",
    f"CREATE TRIGGER ck_run_counts_delete AFTER DELETE ON runs BEGIN\n"
    f"UPDATE run_counts SET runs = runs - 1 WHERE {RUN_KEY};\nEND",
    f"CREATE TRIGGER ck_path_counts_insert AFTER INSERT ON step_records BEGIN\n{ADD_PATH}\nEND",
    "CREATE TRIGGER ck_path_counts_update AFTER UPDATE OF edge ON step_records WHEN old.edge IS NOT new.edge BEGIN\n"
    f"UPDATE path_counts SET visits = visits - 1 WHERE {PATH_KEY};\n{ADD_PATH}\nEND",
]

POSTGRESQL = [
    """CREATE FUNCTION ck_count_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    INSERT INTO run_counts (campaign_id, launch_id, status, node, runs)
    SELECT campaign_id, launch_id, status, node, sum(d) FROM (
      SELECT campaign_id, launch_id, status, coalesce(current_node, '') AS node, -1 AS d FROM old_rows
      UNION ALL SELECT campaign_id, launch_id, status, coalesce(current_node, ''), 1 FROM new_rows) AS moved
    GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0;
  ELSE
    INSERT INTO run_counts (campaign_id, launch_id, status, node, runs)
    SELECT campaign_id, launch_id, status, coalesce(current_node, ''), -count(*) FROM old_rows GROUP BY 1, 2, 3, 4;
  END IF;
  RETURN NULL;
END $$""",
    """CREATE FUNCTION ck_count_paths() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO path_counts (campaign_id, node_id, edge, visits)
    SELECT r.campaign_id, s.node_id, coalesce(s.edge, ''), count(*) FROM new_rows s JOIN runs r ON r.id = s.run_id
    GROUP BY 1, 2, 3;
  ELSE
    INSERT INTO path_counts (campaign_id, node_id, edge, visits)
    SELECT r.campaign_id, m.node_id, m.edge, sum(m.d) FROM (
      SELECT run_id, node_id, coalesce(edge, '') AS edge, -1 AS d FROM old_rows
      UNION ALL SELECT run_id, node_id, coalesce(edge, ''), 1 FROM new_rows) AS m JOIN runs r ON r.id = m.run_id
    GROUP BY 1, 2, 3 HAVING sum(m.d) <> 0;
  END IF;
  RETURN NULL;
END $$""",
    "CREATE TRIGGER ck_run_counts_update AFTER UPDATE ON runs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ck_count_runs()",
    "CREATE TRIGGER ck_run_counts_delete AFTER DELETE ON runs REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ck_count_runs()",
    "CREATE TRIGGER ck_path_counts_insert AFTER INSERT ON step_records REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ck_count_paths()",
    "CREATE TRIGGER ck_path_counts_update AFTER UPDATE ON step_records REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_count_paths()",
]
TRIGGERS = (("ck_run_counts_update", "runs"), ("ck_run_counts_delete", "runs"),
            ("ck_path_counts_insert", "step_records"), ("ck_path_counts_update", "step_records"))

BACKFILL = [
    "INSERT INTO run_counts (campaign_id, launch_id, status, node, runs) SELECT campaign_id, launch_id, status, "
    "coalesce(current_node, ''), count(*) FROM runs "
    "GROUP BY campaign_id, launch_id, status, coalesce(current_node, '')",
    "INSERT INTO path_counts (campaign_id, node_id, edge, visits) SELECT r.campaign_id, s.node_id, "
    "coalesce(s.edge, ''), count(*) FROM step_records s JOIN runs r ON r.id = s.run_id "
    "GROUP BY r.campaign_id, s.node_id, coalesce(s.edge, '')",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table('run_counts',
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('launch_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('node', sa.String(length=100), nullable=False),
    sa.Column('runs', sa.BigInteger(), nullable=False),
    )
    op.create_table('path_counts',
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('node_id', sa.String(length=100), nullable=False),
    sa.Column('edge', sa.String(length=100), nullable=False),
    sa.Column('visits', sa.BigInteger(), nullable=False),
    )
    prefix = "ix" if postgres else "uq"  # SQLite's one row per key is upserted: a unique key
    op.create_index(f'{prefix}_run_counts_campaign_id_launch_id_status_node', 'run_counts', RUN_COLUMNS,
                    unique=not postgres)
    op.create_index(f'{prefix}_path_counts_campaign_id_node_id_edge', 'path_counts', PATH_COLUMNS,
                    unique=not postgres)
    if postgres:
        op.create_index('ix_runs_campaign_id_lower_target_key', 'runs',
                        ['campaign_id', sa.text('lower(target_key) text_pattern_ops')])
    else:
        op.create_index('ix_runs_campaign_id_target_key_nocase', 'runs',
                        ['campaign_id', sa.text('target_key COLLATE NOCASE')])
    for statement in BACKFILL:  # before the triggers exist, within this migration's transaction
        op.execute(statement)
    for statement in POSTGRESQL if postgres else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for trigger, table in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}" if postgres else f"DROP TRIGGER IF EXISTS {trigger}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS ck_count_runs()")
        op.execute("DROP FUNCTION IF EXISTS ck_count_paths()")
    op.drop_index('ix_runs_campaign_id_lower_target_key' if postgres else 'ix_runs_campaign_id_target_key_nocase',
                  table_name='runs')
    prefix = "ix" if postgres else "uq"
    op.drop_index(f'{prefix}_path_counts_campaign_id_node_id_edge', table_name='path_counts')
    op.drop_table('path_counts')
    op.drop_index(f'{prefix}_run_counts_campaign_id_launch_id_status_node', table_name='run_counts')
    op.drop_table('run_counts')
