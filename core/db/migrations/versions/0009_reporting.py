"""reporting: report_counts and report_deltas, what happened per campaign, node and hour

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:00:00

Campaign reports (core/campaigns/reporting.py) read per-hour counts, never the ledger. They are kept in the
transaction that writes what they count:

- step records, by the worker, which writes every one of them: it adds its batch's counts in its batch transaction
  (ReportTally). A row trigger would do the same for every writer, but on SQLite it made each step record 40-80 %
  dearer to write; a roll-up from a watermark on step_records.id would miss the waiting and retrying records that
  are later updated to ok or failed in place (they keep their id), and on PostgreSQL the rows whose transaction
  commits after a later id's;
- events, by a trigger: many code paths insert them (the API, the kinds' tracking endpoints, deadlines, plugins), a
  few at a time, and only at that moment is the node their run is at known.

SQLite upserts report_counts (one row per key, its primary key). On PostgreSQL the writers append to report_deltas, so concurrent
workers never wait on a shared row, and the scheduler folds the deltas into report_counts every minute. Existing step
records and events are counted here once (events under no node: where their run was when they arrived is unknown).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

COUNTS = ['entered', 'completed', 'failed', 'sent', 'runs_entered', 'runs_completed', 'runs_failed', 'events']
STEP_COUNTS = COUNTS[:-1]
STEP_COLUMNS = ", ".join(['campaign_id', 'hour', 'node_id', *STEP_COUNTS])
SUMS = ", ".join(f"sum(h.{c})" for c in STEP_COUNTS)
FINAL = "('ok', 'failed')"


def hour(dialect: str, column: str) -> str:
    """The start of the hour, as UTCDateTime stores a time on each database."""
    return f"strftime('%Y-%m-%d %H:00:00.000000', {column})" if dialect == "sqlite" else f"date_trunc('hour', {column})"


def flag(dialect: str, condition: str) -> str:
    return f"({condition})" if dialect == "sqlite" else f"({condition})::int"


def started(dialect: str, s: str) -> str:
    """A step record's start: run_id, node_id, hour and the STEP_COUNTS, as a select list."""
    first = f"NOT EXISTS (SELECT 1 FROM step_records p WHERE p.run_id = {s}.run_id AND p.id < {s}.id)"
    return (f"{s}.run_id AS run_id, {s}.node_id AS node_id, {hour(dialect, f'{s}.started_at')} AS hour, 1 AS entered, "
            f"0 AS completed, 0 AS failed, 0 AS sent, {flag(dialect, first)} AS runs_entered, 0 AS runs_completed, "
            "0 AS runs_failed")


def finished(dialect: str, s: str) -> str:
    """A final step record's end, in the same shape. A message was sent when the step succeeded and its detail names
    the channel or the message id, as every sending step records it (send_message, phishing_send,
    phishing_training); a final record without an edge ended its run."""
    if dialect == "sqlite":
        named = f"json_type({s}.detail, '$.channel') IS NOT NULL OR json_type({s}.detail, '$.message_id') IS NOT NULL"
    else:
        named = f"{s}.detail -> 'channel' IS NOT NULL OR {s}.detail -> 'message_id' IS NOT NULL"
    ok, failed = f"{s}.outcome = 'ok'", f"{s}.outcome = 'failed'"
    counts = [ok, failed, f"{ok} AND ({named})", f"{ok} AND {s}.edge IS NULL", f"{failed} AND {s}.edge IS NULL"]
    completed, failed_, sent, runs_completed, runs_failed = (flag(dialect, c) for c in counts)
    return (f"{s}.run_id AS run_id, {s}.node_id AS node_id, {hour(dialect, f'{s}.finished_at')} AS hour, "
            f"0 AS entered, {completed} AS completed, {failed_} AS failed, {sent} AS sent, 0 AS runs_entered, "
            f"{runs_completed} AS runs_completed, {runs_failed} AS runs_failed")


def steps_of(dialect: str, source: str, s: str) -> str:
    """Every start and final end of the step records in ``source`` (aliased ``s``), in the shape of ``started``."""
    return (f"SELECT {started(dialect, s)} FROM {source} {s} "
            f"UNION ALL SELECT {finished(dialect, s)} FROM {source} {s} WHERE {s}.outcome IN {FINAL}")


def events_of(dialect: str, source: str, node: str) -> str:
    return (f"SELECT r.campaign_id, {hour(dialect, 'e.created_at')}, {node}, count(*) FROM {source} e "
            "JOIN runs r ON r.id = e.run_id GROUP BY 1, 2, 3")


SQLITE = [
    "CREATE TRIGGER ck_report_events_insert AFTER INSERT ON events BEGIN\n"
    f"INSERT INTO report_counts (campaign_id, hour, node_id, events) SELECT campaign_id, "
    f"{hour('sqlite', 'new.created_at')}, coalesce(current_node, ''), 1 FROM runs WHERE id = new.run_id "
    "ON CONFLICT (campaign_id, hour, node_id) DO UPDATE SET events = report_counts.events + 1;\nEND",
]

POSTGRESQL = [
    f"""CREATE FUNCTION ck_report_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO report_deltas (campaign_id, hour, node_id, events)
  {events_of('postgresql', 'new_rows', "coalesce(r.current_node, '')")};
  RETURN NULL;
END $$""",
    "CREATE TRIGGER ck_report_events_insert AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ck_report_events()",
]


def backfill(dialect: str) -> list[str]:
    events = events_of(dialect, "events", "''")
    return [f"INSERT INTO report_counts ({STEP_COLUMNS}) SELECT r.campaign_id, h.hour, h.node_id, {SUMS} "
            f"FROM ({steps_of(dialect, 'step_records', 's')}) h JOIN runs r ON r.id = h.run_id GROUP BY 1, 2, 3",
            f"INSERT INTO report_counts (campaign_id, hour, node_id, events) {events}"]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, *keyed in (('report_counts', sa.PrimaryKeyConstraint('campaign_id', 'hour', 'node_id',
                                                                     name=op.f('pk_report_counts'))),
                          ('report_deltas',)):
        op.create_table(table,
        sa.Column('campaign_id', sa.String(length=36), nullable=False),
        sa.Column('hour', sa.DateTime(), nullable=False),
        sa.Column('node_id', sa.String(length=100), nullable=False),
        *(sa.Column(name, sa.BigInteger(), server_default='0', nullable=False) for name in COUNTS),
        *keyed,
        # A report reads one campaign's hours as one range of the key: on SQLite the rows are stored in key order.
        **({'sqlite_with_rowid': False} if keyed else {}),
        )
    op.create_index('ix_report_deltas_campaign_id_hour', 'report_deltas', ['campaign_id', 'hour'])
    for statement in backfill(dialect):  # before the trigger exists, within this migration's transaction
        op.execute(statement)
    for statement in POSTGRESQL if dialect == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("DROP TRIGGER IF EXISTS ck_report_events_insert" + (" ON events" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS ck_report_events()")
    op.drop_index('ix_report_deltas_campaign_id_hour', table_name='report_deltas')
    op.drop_table('report_deltas')
    op.drop_table('report_counts')
