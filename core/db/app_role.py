"""A PostgreSQL role for running campaignkit that can add to the audit trail but never rewrite or remove it.

The owner of the tables (the role `campaignkit init` and `db upgrade` connect as) keeps running migrations; the
workers, scheduler and web app connect as the application role, which gets what they need and no more: on
audit_history only SELECT and INSERT, on audit_chain SELECT and UPDATE (appending moves the head), on alembic_version
SELECT, on every other table SELECT, INSERT, UPDATE and DELETE, and USAGE and SELECT on the tables' sequences.
TRUNCATE is granted on nothing. Someone holding the application role's password can still append records, but not
edit, delete or truncate the existing ones.
"""

from __future__ import annotations

import re

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import Connection, Table, text
from sqlalchemy.schema import CreateIndex, CreateTable

from ..errors import CampaignkitError
from . import is_postgres
from .schema import SCHEDULER_JOB_TABLE as JOB_TABLE
from .schema import audit_chain, audit_history, metadata

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Deliberately short of what the others get: the audit trail is append-only for the application.
SPECIAL = {audit_history.name: "SELECT, INSERT", audit_chain.name: "SELECT, UPDATE", "alembic_version": "SELECT"}
FULL = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCES = text("""
    SELECT DISTINCT s.relname FROM pg_class s
    JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
    JOIN pg_class t ON t.oid = d.refobjid
    WHERE s.relkind = 'S' AND t.relname = ANY(:tables)
      AND t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
    ORDER BY s.relname
""")


def _job_table() -> Table:
    """APScheduler's job table, created by the owner here because the application role may not create tables."""
    return SQLAlchemyJobStore(url="sqlite://", tablename=JOB_TABLE).jobs_t


def app_role_sql(conn: Connection, role: str) -> list[str]:
    """The statements, in order, that let ``role`` (an existing login role) run campaignkit on this database."""
    if not is_postgres(conn):
        raise CampaignkitError("db app-role is for PostgreSQL: SQLite has no roles; keep the database file "
                               "writable by the service account only")
    if not ROLE_NAME.fullmatch(role):
        raise CampaignkitError(f"{role!r}: a role name here is lower-case letters, digits and _ (at most 63)")
    found = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :role"), {"role": role}).first()
    if found is None:
        raise CampaignkitError(f"no role named {role!r}: create it first (CREATE ROLE {role} LOGIN PASSWORD '...')")
    if found.rolsuper:
        raise CampaignkitError(f"{role!r} is a superuser, which no privilege binds: use an ordinary role")
    owner = conn.execute(text("SELECT tableowner FROM pg_tables WHERE tablename = :t AND schemaname = "
                              "current_schema()"), {"t": audit_history.name}).scalar()
    if owner is None:
        raise CampaignkitError("the database is not initialised: run `campaignkit init` as the owner first")
    if owner == role:
        raise CampaignkitError(f"{role!r} owns the tables, and an owner can always rewrite them: create another "
                               "role for the application")
    quote = conn.dialect.identifier_preparer.quote_identifier
    database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
    jobs = _job_table()
    tables = sorted({*metadata.tables, jobs.name, "alembic_version"})
    statements = [
        str(CreateTable(jobs, if_not_exists=True).compile(dialect=conn.dialect)).strip(),
        *(str(CreateIndex(index, if_not_exists=True).compile(dialect=conn.dialect)) for index in jobs.indexes),
        f"GRANT CONNECT ON DATABASE {quote(database)} TO {quote(role)}",
        f"GRANT USAGE ON SCHEMA {quote(schema)} TO {quote(role)}",
    ]
    for table in tables:
        # Revoked first, so that running this again after a change never leaves a privilege granted before.
        statements.append(f"REVOKE ALL ON TABLE {quote(table)} FROM {quote(role)}")
        statements.append(f"GRANT {SPECIAL.get(table, FULL)} ON TABLE {quote(table)} TO {quote(role)}")
    for sequence in conn.execute(SEQUENCES, {"tables": tables}).scalars():
        statements.append(f"GRANT USAGE, SELECT ON SEQUENCE {quote(sequence)} TO {quote(role)}")
    return statements


def apply_app_role(conn: Connection, statements: list[str]) -> None:
    """Run the statements as this connection's role, which must own the tables (the role migrations run as)."""
    for statement in statements:
        conn.exec_driver_sql(statement)
