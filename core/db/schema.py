"""The database schema as SQLAlchemy Core tables; Alembic migrations create exactly this."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from .report_schema import report_tables
from .types import BigId, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("folder", String(200), nullable=False, default=""),
    Column("kind", String(50), nullable=False, default="journey"),
    Column("state", String(20), nullable=False, default="draft"),
    Column("current_version_id", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("folder", "name"),
)

campaign_versions = Table(
    "campaign_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False),
    Column("major", Integer, nullable=False),
    Column("minor", Integer, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("source", String(500), nullable=True),
    Column("source_text", Text, nullable=True),  # the definition as written (YAML or JSON); None before 0007
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("campaign_id", "major", "minor"),
)

# One row per cycle of a campaign; the unique key is what stops two schedulers launching a cycle twice.
ENTRIES = "entries"  # the status of the launch rows targets entered from outside go into (campaigns/entries.py)

launches = Table(
    "launches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False),
    Column("cycle_at", UTCDateTime, nullable=False),
    Column("version_id", Integer, ForeignKey("campaign_versions.id"), nullable=False),
    Column("status", String(20), nullable=False),  # scheduled, launched, missed, failed, cancelled; ENTRIES
    Column("target_count", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("launched_at", UTCDateTime, nullable=True),
    Column("deadline_at", UTCDateTime, nullable=True),  # cycle_at + schedule.end_after
    Column("ended_at", UTCDateTime, nullable=True),  # when the deadline was applied
    UniqueConstraint("campaign_id", "cycle_at"),
    Index("ix_launches_status_cycle_at", "status", "cycle_at"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False),
    Column("launch_id", Integer, ForeignKey("launches.id"), nullable=False),
    Column("version_id", Integer, ForeignKey("campaign_versions.id"), nullable=False),
    Column("target_key", String(300), nullable=False),
    Column("target", JSON, nullable=False),
    # pending, active, waiting, completed, failed, terminated
    Column("status", String(20), nullable=False),
    Column("current_node", String(100), nullable=True),
    Column("context", JSON, nullable=False),
    # When the run next needs a worker; finished runs and open-ended waits have none.
    Column("due_at", UTCDateTime, nullable=True),
    Column("paused_due_at", UTCDateTime, nullable=True),  # due_at kept aside while the campaign is paused
    # The worker holding the run, until when (a dead worker's runs are due again once it passes), and the hold's
    # number: a worker writes its results only while both are still its own. A claim sets only these, so that on
    # PostgreSQL it is a HOT update, which touches none of the table's indexes (migration 0014).
    Column("lease_owner", String(100), nullable=True),
    Column("lease_token", Integer, nullable=False, default=0),
    Column("lease_until", UTCDateTime, nullable=True),  # meaningful while lease_owner is set
    Column("attempt", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    # Facets a campaign family reports per run (set by steps): who must act, what they answered and when,
    # and what acting on it achieved. Access reviews: approver, Approved/Revoked, action time, Success/Failure.
    Column("assignee", String(320), nullable=True),
    Column("response", String(40), nullable=True),
    Column("response_at", UTCDateTime, nullable=True),
    Column("result", String(20), nullable=True),
    # What the assignee must be told in their next digest (request, reminder); cleared when a digest goes out.
    Column("notify", String(20), nullable=True),
    # Bumped whenever the assignee changes (first assignment, escalation, hand-over): a decision link names the
    # assignment it was sent for, so a link outlives neither its recipient nor the assignment.
    Column("assignment", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("launch_id", "target_key"),  # a launch's upsert; a cycle's runs (deadline, export, count)
    Index("ix_runs_campaign_id_status", "campaign_id", "status"),
    Index("ix_runs_campaign_id_id", "campaign_id", "id"),  # a campaign's runs newest first (the console's executions)
    # History pages (by response, by approver, in key order; by response time), a digest's items, a key's runs.
    Index("ix_runs_campaign_id_response_target_key", "campaign_id", "response", "target_key"),
    Index("ix_runs_campaign_id_target_key", "campaign_id", "target_key"),
    Index("ix_runs_campaign_id_assignee_target_key", "campaign_id", "assignee", "target_key"),
    Index("ix_runs_campaign_id_response_at", "campaign_id", "response_at"),
)
# Partial (0011): the claim and repair read due runs, digests runs to notify; the others (most) stay out of the index.
for _column in (runs.c.due_at, runs.c.notify):
    Index(f"ix_runs_{_column.name}", _column, sqlite_where=_column.is_not(None), postgresql_where=_column.is_not(None))

# Searching a campaign's runs by the start of the key, case aside (RunQuery.search): SQLite compares the key NOCASE in
# a range (an expression index there makes every insert into a table with triggers several times slower);
# PostgreSQL matches lower(key) with LIKE 'start%', which text_pattern_ops serves under any collation.
Index("ix_runs_campaign_id_target_key_nocase", runs.c.campaign_id,
      runs.c.target_key.collate("NOCASE")).ddl_if(dialect="sqlite")
Index("ix_runs_campaign_id_lower_target_key", runs.c.campaign_id, func.lower(runs.c.target_key).label("key"),
      postgresql_ops={"key": "text_pattern_ops"}).ddl_if(dialect="postgresql")

# Digest emails: one message to one assignee covering all their pending items of a cycle. A row is created before
# the send, so its id makes a stable idempotency key across retries.
digests = Table(
    "digests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False),
    Column("launch_id", Integer, ForeignKey("launches.id"), nullable=False),
    Column("assignee", String(320), nullable=False),
    Column("kind", String(20), nullable=False),  # request, reminder
    Column("status", String(20), nullable=False),  # retrying, sent, failed
    Column("item_count", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("message_id", String(300), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Index("ix_digests_launch_id_assignee", "launch_id", "assignee"),
)

# Which runs a digest listed: a run's timeline shows the digests that carried it.
digest_items = Table(
    "digest_items",
    metadata,
    Column("digest_id", BigInteger, ForeignKey("digests.id"), primary_key=True),
    Column("run_id", BigInteger, ForeignKey("runs.id"), primary_key=True),
    # The run's assignment when the digest listed it: its review-all link decides the item only while it holds.
    Column("assignment", Integer, nullable=True),
    Column("new", Boolean, nullable=True),  # listed as a new request (else a reminder): a retry lists it the same
    Index("ix_digest_items_run_id", "run_id"),
)

# The ledger: one row per executed node of a run, per visit.
step_records = Table(
    "step_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, nullable=False),
    Column("node_id", String(100), nullable=False),
    Column("visit", Integer, nullable=False),
    Column("step_type", String(100), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    # ok, waiting, retrying, failed
    Column("outcome", String(20), nullable=False),
    Column("edge", String(100), nullable=True),
    Column("detail", JSON(none_as_null=True), nullable=True),
    Column("idempotency_key", String(200), nullable=False),
    UniqueConstraint("run_id", "node_id", "visit"),
    # Runs are never deleted, and only the worker writes records, for runs it holds. PostgreSQL checks a foreign key
    # with a query per record that also locks the run's row: the inserts took 2.3 times the server's time with it,
    # for a check that cannot fail (migration 0015). SQLite's check is a lookup in the same file: it stays.
    ForeignKeyConstraint(["run_id"], ["runs.id"]).ddl_if(dialect="sqlite"),
)

# Counts kept for a campaign's pages, so that they read a few rows instead of counting a million runs: the launch
# counts the runs it inserts, the database's own triggers (migration 0005) every later change to runs and
# step_records, whichever code path (or plugin) makes it. SQLite keeps one row per key (a unique index, upserted);
# PostgreSQL appends one delta row per key and statement, so writers never wait on each other, and housekeeping
# folds them (core/campaigns/counts.py). Readers sum.
run_counts = Table(  # runs by cycle, status and the node they are at
    "run_counts",
    metadata,
    Column("campaign_id", String(36), nullable=False),
    Column("launch_id", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("node", String(100), nullable=False),  # '' before a run has a node
    Column("runs", BigInteger, nullable=False),
)
path_counts = Table(  # visits by node and the edge they left through; kept when retention prunes the ledger
    "path_counts",
    metadata,
    Column("campaign_id", String(36), nullable=False),
    Column("node_id", String(100), nullable=False),
    Column("edge", String(100), nullable=False),  # '' while the visit has not left the node
    Column("visits", BigInteger, nullable=False),
)
RUN_KEY = (run_counts.c.campaign_id, run_counts.c.launch_id, run_counts.c.status, run_counts.c.node)
PATH_KEY = (path_counts.c.campaign_id, path_counts.c.node_id, path_counts.c.edge)
for _name, _key in (("run_counts_campaign_id_launch_id_status_node", RUN_KEY),
                    ("path_counts_campaign_id_node_id_edge", PATH_KEY)):
    Index(f"uq_{_name}", *_key, unique=True).ddl_if(dialect="sqlite")
    Index(f"ix_{_name}", *_key).ddl_if(dialect="postgresql")

# When a side-effecting step's visit was first attempted, written before the side effect runs: every later attempt
# (a retry, or a redelivery after a worker died mid-batch) sees that time, so it sends the same bytes. Removed once
# the visit has its outcome.
step_starts = Table(
    "step_starts",
    metadata,
    Column("run_id", BigInteger, primary_key=True),
    Column("node_id", String(100), primary_key=True),
    Column("visit", Integer, primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, ForeignKey("runs.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("source", String(200), nullable=True),
    Column("sent_by", String(200), nullable=True),  # who posted it (a person, the API's caller), when not the system
    Column("created_at", UTCDateTime, nullable=False),
    Column("consumed_at", UTCDateTime, nullable=True),
    Index("ix_events_run_id_consumed_at", "run_id", "consumed_at"),
)

targets = Table(
    "targets",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("custom_fields", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Shaped like the classic AuditHistory table, in snake_case. audit_id is assigned under the chain head's lock,
# so ids are gapless and in commit order: sinks read "everything after the last id delivered" as their outbox.
audit_history = Table(
    "audit_history",
    metadata,
    Column("audit_id", BigId, primary_key=True, autoincrement=False),  # the rowid on SQLite (migration 0013)
    Column("user_name", String(200), nullable=False),
    Column("computer_name", String(200), nullable=True),
    Column("computer_ip", String(64), nullable=True),
    Column("server_name", String(200), nullable=True),
    Column("audit_timestamp", UTCDateTime, nullable=False),
    Column("object_id", String(36), nullable=True),
    Column("object_name", String(300), nullable=True),
    Column("object_folder", String(300), nullable=True),
    Column("version_major", Integer, nullable=True),
    Column("version_minor", Integer, nullable=True),
    Column("audit_type", String(100), nullable=False),
    Column("audit_sub_type", String(100), nullable=False),
    Column("details", Text, nullable=True),
    Column("class_name", String(300), nullable=True),
    Column("assembly_name", String(300), nullable=True),
    # HMAC-SHA256 (keyed by the audit key, kept outside the database) over the previous record's hash and this
    # record's fields: an edited or deleted row breaks the chain. key_id names the key; NULL marks records written
    # before the chain was keyed (plain SHA-256).
    Column("record_hash", String(64), nullable=False),
    Column("key_id", String(16), nullable=True),
    Index("ix_audit_history_audit_type_audit_timestamp", "audit_type", "audit_timestamp"),
    Index("ix_audit_history_audit_timestamp", "audit_timestamp"),
    Index("ix_audit_history_user_name_audit_timestamp", "user_name", "audit_timestamp"),
    Index("ix_audit_history_object_id_audit_timestamp", "object_id", "audit_timestamp"),
)

# One row: the last audit id and hash. Locking it serialises appends, which is what makes ids gapless.
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_audit_id", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

# Where each audit sink has got to in audit_history, and how its last attempt went.
audit_sink_state = Table(
    "audit_sink_state",
    metadata,
    Column("sink", String(100), primary_key=True),
    Column("last_audit_id", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("last_attempt_at", UTCDateTime, nullable=True),
    Column("last_success_at", UTCDateTime, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=True),
)

# People who sign in to the console or call the API. An account is disabled, never deleted: the audit trail names it.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(20), nullable=False),  # admin, operator, auditor
    Column("password_hash", String(300), nullable=True),  # argon2id; NULL: signs in only through single sign-on
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
    # Failed sign-ins in a row; at web.sign_in_lockout_failures the account is locked until locked_until.
    Column("failed_sign_ins", Integer, nullable=False, default=0, server_default="0"),
    Column("locked_until", UTCDateTime, nullable=True),
    # Accounts made by single sign-on (OpenID Connect): the provider's issuer and subject (sub) find the account at
    # every sign-in, whatever its name claim says by then; such an account has no password.
    Column("sso_issuer", String(300), nullable=True),
    Column("sso_subject", String(255), nullable=True),
    Index("uq_users_sso_issuer_sso_subject", "sso_issuer", "sso_subject", unique=True),
)

# Console sessions, server-side so that they can be ended: the cookie holds a random token, the table its SHA-256.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),  # the token every state-changing form of the session carries
    Column("client_ip", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),  # the absolute limit, whatever the activity
    Column("ended_at", UTCDateTime, nullable=True),
    Index("ix_sessions_user_id", "user_id"),
)

# Personal API tokens: only their SHA-256 is kept (a token is 256 random bits, so a slow hash adds nothing); the
# prefix is what lists show to tell them apart.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scope", String(10), nullable=False),  # read, write
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

# APScheduler's job store, in the same database (created by the scheduler, granted by `db app-role`).
SCHEDULER_JOB_TABLE = "apscheduler_jobs"

LIVE_STATUSES = ("pending", "active", "waiting")

# Mailboxes that bounced: no later campaign sends to them (Blocklisted) until they are removed by hand or a resend to
# them is delivered. Addresses are kept lowercased.
bounced_mailboxes = Table(
    "bounced_mailboxes",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("code", String(40), nullable=False),  # the enhanced status (5.1.1) or the SMTP reply code
    Column("error", Text, nullable=False),  # the server's text
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("campaign_id", String(36), nullable=True),  # where it last bounced
    Column("run_id", BigInteger, nullable=True),
)

# A phishing simulation's results, one row per run (the bundled phishing kind's facets; kinds keep such tables in
# core's schema so that one migration chain serves them, as the digests above). Written at launch, by the send step,
# and by each tracking hit, notification and report in the transaction that records its event.
phishing_results = Table(
    "phishing_results",
    metadata,
    Column("run_id", BigInteger, ForeignKey("runs.id"), primary_key=True),
    Column("campaign_id", String(36), nullable=False),
    Column("launch_id", Integer, nullable=False),
    Column("target_key", String(300), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    Column("attack", String(100), nullable=False),
    Column("groups", JSON, nullable=False),
    # 128 random bits: the recipient's links and the VERP address; never derived from the run id.
    Column("token", String(64), nullable=False, unique=True),
    Column("expires_at", UTCDateTime, nullable=False),  # the links work until then
    Column("send_at", UTCDateTime, nullable=False),  # the planned moment
    Column("sent_at", UTCDateTime, nullable=True),
    Column("attempt", Integer, nullable=False, default=0),  # resends so far
    Column("delivery", String(20), nullable=True),  # Pending, Delivered, Failed, Blocklisted; NULL: not sent yet
    Column("delivery_at", UTCDateTime, nullable=True),
    Column("delivery_detail", JSON, nullable=True),  # code, text, server: the hover text of the status
    Column("opened_at", UTCDateTime, nullable=True),
    Column("reported_at", UTCDateTime, nullable=True),
    Column("clicked_at", UTCDateTime, nullable=True),
    Column("submitted_at", UTCDateTime, nullable=True),
    Column("training_started_at", UTCDateTime, nullable=True),
    Column("training_finished_at", UTCDateTime, nullable=True),
    Column("filtered_hits", Integer, nullable=False, default=0),  # hits classified as scanners, not counted
    Index("ix_phishing_results_campaign_id_target_key", "campaign_id", "target_key"),
    Index("ix_phishing_results_campaign_id_attack", "campaign_id", "attack"),
    Index("ix_phishing_results_campaign_id_delivery", "campaign_id", "delivery"),
)

# A result's groups, one row each (a user is in several), for the results By Group.
phishing_groups = Table(
    "phishing_groups",
    metadata,
    Column("campaign_id", String(36), primary_key=True),
    Column("group_name", String(200), primary_key=True),
    Column("run_id", BigInteger, primary_key=True),
)

FINAL_STATUSES = ("completed", "failed", "terminated")

report_counts, report_deltas = report_tables(metadata, UTCDateTime)  # campaign reports: db/report_schema.py

# Simulations (campaign simulate): summaries kept apart from runs, in no history, result or export; deletable.
simulations = Table(
    "simulations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("targets", Integer, nullable=False),
    Column("sample", Integer, nullable=True),  # NULL: the whole audience
    Column("fast_forward", Boolean, nullable=False),
    Column("summary", JSON, nullable=False),  # counts, examples, problems: simulation_tally.py
    Index("ix_simulations_campaign_id_id", "campaign_id", "id"),
)

__all__ = [
    "FINAL_STATUSES",
    "LIVE_STATUSES",
    "PATH_KEY",
    "RUN_KEY",
    "SCHEDULER_JOB_TABLE",
    "BigId",
    "UTCDateTime",
    "api_tokens",
    "audit_chain",
    "audit_history",
    "audit_sink_state",
    "bounced_mailboxes",
    "campaign_versions",
    "campaigns",
    "digest_items",
    "digests",
    "events",
    "launches",
    "metadata",
    "path_counts",
    "phishing_groups",
    "phishing_results",
    "run_counts",
    "runs",
    "sessions",
    "simulations",
    "step_records",
    "step_starts",
    "targets",
    "users",
]
