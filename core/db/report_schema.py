"""The campaign reports' tables (core/campaigns/reporting.py), declared here and made part of the schema by
core/db/schema.py: what happened per campaign, hour (UTC) and node, counted in the transaction that writes it — by
the worker for its batch's step records (core/engine/report_tally.py), by a trigger for events (migration 0009).

A report reads a campaign's hour rows, never its millions of step records. SQLite upserts report_counts directly;
PostgreSQL's writers append to report_deltas (no shared row to wait on) and the scheduler folds them into
report_counts every minute; readers add both up, in one statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Index, MetaData, PrimaryKeyConstraint, String, Table

# Visits that started at the node, finished ok, failed (their last attempt), sent a message (of those ok); runs whose
# first step this was, that ended completed here, that ended failed here; events that arrived while a run was here.
REPORT_COUNTS = ("entered", "completed", "failed", "sent", "runs_entered", "runs_completed", "runs_failed", "events")


def report_tables(metadata: MetaData, time_type: Any) -> tuple[Table, Table]:
    """report_counts and report_deltas in ``metadata``, their hours of ``time_type`` (schema.UTCDateTime)."""
    def table(name: str, *extra: Any, **options: Any) -> Table:
        return Table(
            name,
            metadata,
            Column("campaign_id", String(36), nullable=False),
            Column("hour", time_type, nullable=False),  # the hour's start
            Column("node_id", String(100), nullable=False),  # '' for events of a run at no node yet
            *(Column(count, BigInteger, nullable=False, server_default="0") for count in REPORT_COUNTS),
            *extra,
            **options,
        )

    # Keyed (and on SQLite stored, WITHOUT ROWID) in key order: a report reads one campaign's hours as one range.
    return (table("report_counts", PrimaryKeyConstraint("campaign_id", "hour", "node_id"), sqlite_with_rowid=False),
            table("report_deltas", Index("ix_report_deltas_campaign_id_hour", "campaign_id", "hour")))
