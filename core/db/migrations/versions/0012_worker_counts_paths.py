"""path counts: the worker counts the visits by node and edge of the step records it writes; their triggers go

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-11 10:00:00

Only the worker writes step records, so it adds what a batch's records count to path_counts in the batch's
transaction (core/engine/report_tally.py), as it already does for the report counts. On PostgreSQL the statement
triggers of migration 0005 were most of the server's work for a step record: a transition table of every inserted or
upserted record, and a join to runs for its campaign. The counts already kept stay as they are; the runs' own count
triggers stay (runs are changed by many code paths).
"""

from __future__ import annotations

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

TRIGGERS = ("ck_path_counts_insert", "ck_path_counts_update")

# As migration 0005 created them.
PATH_KEY = "campaign_id = (SELECT campaign_id FROM runs WHERE id = old.run_id) AND node_id = old.node_id " \
           "AND edge = coalesce(old.edge, '')"
ADD_PATH = ("INSERT INTO path_counts (campaign_id, node_id, edge, visits) SELECT campaign_id, new.node_id, "
            "coalesce(new.edge, ''), 1 FROM runs WHERE id = new.run_id "
            "ON CONFLICT (campaign_id, node_id, edge) DO UPDATE SET visits = visits + 1;")
SQLITE = [
    f"CREATE TRIGGER ck_path_counts_insert AFTER INSERT ON step_records BEGIN\n{ADD_PATH}\nEND",
    "CREATE TRIGGER ck_path_counts_update AFTER UPDATE OF edge ON step_records WHEN old.edge IS NOT new.edge BEGIN\n"
    f"UPDATE path_counts SET visits = visits - 1 WHERE {PATH_KEY};\n{ADD_PATH}\nEND",
]
POSTGRESQL = [
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
    "CREATE TRIGGER ck_path_counts_insert AFTER INSERT ON step_records REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ck_count_paths()",
    "CREATE TRIGGER ck_path_counts_update AFTER UPDATE ON step_records REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_count_paths()",
]


def _postgres() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    postgres = _postgres()
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (" ON step_records" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS ck_count_paths()")


def downgrade() -> None:
    for statement in POSTGRESQL if _postgres() else SQLITE:
        op.execute(statement)
