"""Alembic's migrations build exactly the schema the code declares, on SQLite and PostgreSQL, and keep what older
releases wrote readable: an access review written at revision 0001, 0002 or 0003, as the code of that release wrote
it (SQLAlchemy Core on the tables as that revision made them), reads back after `upgrade` through the run history,
the audit queries and the CLI, with every value, in order; and upgrading again changes no row.

Starting at 0003, the head, migrates nothing: it is the control, showing the data itself reads back as expected.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cli_support import Cli, as_json, make_cli
from sqlalchemy import Connection, Engine, MetaData, func, insert, select, update

from campaignkit.core.audit import Actor, AuditObject, AuditSubType, AuditType, record, verify_chain
from campaignkit.core.audit.queries import AuditFilter, list_audit
from campaignkit.core.campaigns import counts
from campaignkit.core.clock import FakeClock
from campaignkit.core.db import reading, writing
from campaignkit.core.db.migrate import current_revision, head_revision, is_up_to_date, upgrade
from campaignkit.core.db.schema import metadata
from campaignkit.core.runtime import Runtime
from campaignkit.core.testing import CampaignHarness
from campaignkit.plugins.access_review.digests import DigestSender
from campaignkit.plugins.access_review.history import HistoryQuery, history_page, history_summary

REVISIONS = ("0001", "0002", "0003", "0004")


def test_upgrade_matches_the_declared_schema(runtime: Any) -> None:
    assert schema_differences(runtime.engine) == []
    assert current_revision(runtime.engine) == head_revision() and is_up_to_date(runtime.engine)


def test_upgrade_is_idempotent(runtime: Any) -> None:
    upgrade(runtime.engine)
    assert is_up_to_date(runtime.engine)


# --- a database an older release left ------------------------------------------------------------------------------


@pytest.fixture
def empty_runtime(ck_make_settings: Any, clock: FakeClock) -> Iterator[Runtime]:
    """A runtime on this test's fresh, empty database (SQLite, then PostgreSQL, as ``database_url`` gives it), built
    as ``make_runtime`` builds one but not migrated: the test takes it to the revision an older release left."""
    runtime = Runtime(ck_make_settings(), clock=clock)
    yield runtime
    runtime.close()


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": for_dialect(engine.dialect.name)})
        return list(compare_metadata(context, metadata))


def for_dialect(name: str) -> Any:
    """Leave out of the comparison what the schema declares for the other database only (Index.ddl_if)."""
    def include(obj: Any, _name: Any, _type: str, _reflected: bool, _compare_to: Any) -> bool:
        only = getattr(obj, "_ddl_if", None)
        return only is None or only.dialect is None or only.dialect == name

    return include


def upgraded(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision() and is_up_to_date(engine)
    assert schema_differences(engine) == []


class OldRelease:
    """Writes rows as an older release did: SQLAlchemy Core on the tables as its revision made them (reflected, not
    the head schema), without the columns later migrations added; ids come from the database's own sequences."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.tables = MetaData()
        self.tables.reflect(conn)

    def insert(self, table: str, **values: Any) -> Any:
        unknown = set(values) - set(metadata.tables[table].c.keys())
        assert not unknown, f"{table} has no column {sorted(unknown)} at any revision: a mistake in the test's data"
        reflected = self.tables.tables[table]
        row = {name: value for name, value in values.items() if name in reflected.c}
        key = self.conn.execute(insert(reflected).values(row)).inserted_primary_key
        assert key is not None
        return key[0] if len(key) == 1 else tuple(key)


# The audit chain as releases before the keyed chain (0.1) hashed it: sha256 over the previous hash and the fields,
# each after a unit separator, NUL for None, times as aware UTC with microseconds. Written out here rather than
# imported, so that the test pins what the old code wrote, not what the current code believes it wrote.
LEGACY_HASHED_FIELDS = (
    "audit_id", "user_name", "computer_name", "computer_ip", "server_name", "audit_timestamp", "object_id",
    "object_name", "object_folder", "version_major", "version_minor", "audit_type", "audit_sub_type", "details",
    "class_name", "assembly_name",
)


def legacy_hash(previous: str, row: dict[str, Any]) -> str:
    parts = [previous]
    for name in LEGACY_HASHED_FIELDS:
        value = row.get(name)
        if value is None:
            parts.append("\x00")
        elif isinstance(value, datetime):
            parts.append(value.replace(tzinfo=UTC).isoformat(timespec="microseconds"))
        else:
            parts.append(str(value))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def old_review_definition(name: str, *, digest: bool = False) -> dict[str, Any]:
    """What the 0.1 release stored in campaign_versions.definition for an access review: the CampaignDefinition's
    model_dump(mode="json"), with the workflow its presets.access_review_workflow expanded from these settings
    (checked against that code, core/presets.py at c392c7c, when this test was written)."""

    def node(node_id: str, step_type: str, config: dict[str, Any] | None = None, next_: str | None = None,
             edges: dict[str, str] | None = None, retry: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"id": node_id, "type": step_type, "config": config or {}, "next": next_, "edges": edges or {},
                "retry": retry, "timeout_seconds": None}

    fallback = "security-office@example.org"
    approver, user_email = "(target['approver'] or '')|trim", "(target['user_email'] or '')|trim|lower"
    assign = node("assign", "record_outcome",
                  {"assignee": f"{{{{ {approver} if {approver}|lower != {user_email} else '{fallback}' }}}}",
                   "context": {"escalate_at": "{{ (now | after('PT604800S')).isoformat() }}"}},
                  "has_approver" if digest else "request")
    decide = node("decide", "wait_for_event",
                  {"events": ["approved", "revoked", "deadline", *(["undeliverable"] if digest else [])],
                   "timeout": "PT259200S"},
                  edges={"approved": "approve", "revoked": "revoke", "deadline": "no_response",
                         **({"undeliverable": "undeliverable"} if digest else {}), "timeout": "escalation_due"})
    if digest:
        sending = [
            node("has_approver", "branch", {"condition": "context.assignee"},
                 edges={"true": "request", "false": "no_approver"}),
            node("no_approver", "record_outcome", {"response": "Message Delivery Failed",
                                                   "context": {"delivery_error": "no approver address"}}, "end"),
            node("request", "record_outcome", {"notify": "request"}, "decide"),
            node("undeliverable", "record_outcome", {"response": "Message Delivery Failed",
                                                     "context": {"delivery_error": "{{ context.last_event.error }}"}},
                 "end"),
        ]
        remind = node("remind", "record_outcome", {"notify": "reminder"}, "decide")
    else:
        sending = [
            node("request", "send_message", {"channel": "file", "template": "email/access_review/request",
                                             "to": "{{ context.assignee }}"},
                 edges={"next": "decide", "failure": "undeliverable"},
                 retry={"max_attempts": 5, "backoff_seconds": 60.0, "backoff_factor": 2.0,
                        "max_backoff_seconds": 3600.0}),
            node("undeliverable", "record_outcome", {"response": "Message Delivery Failed"}, "end"),
        ]
        remind = node("remind", "send_message", {"channel": "file", "template": "email/access_review/reminder",
                                                 "to": "{{ context.assignee }}"},
                      edges={"next": "decide", "failure": "decide"})
    field_update = {"updater": "database", "field": "Campaigns Approval",
                    "metadata": {"approver": "{{ run.assignee }}"}}
    nodes = [
        node("start", "entered_campaign", next_="assign"), assign, *sending, decide,
        node("escalation_due", "branch",
             {"condition": "context.escalated is not defined and now.isoformat() >= context.escalate_at"},
             edges={"true": "escalate", "false": "remind"}),
        node("escalate", "record_outcome", {"assignee": fallback, "context": {"escalated": "yes"}}, "request"),
        remind,
        node("approve", "record_outcome", {"response": "Approved", "response_at": "event"}, "approve_field"),
        node("approve_field", "update_custom_field", {**field_update, "value": "Approved"}, "succeeded"),
        node("revoke", "record_outcome", {"response": "Revoked", "response_at": "event"}, "revoke_field"),
        node("revoke_field", "update_custom_field", {**field_update, "value": "Revoked"}, "enforce"),
        node("succeeded", "record_outcome", {"result": "Success"}, "end"),
        node("enforce", "enforcement_action",
             {"action": "noop", "params": {"application": "{{ target['application'] }}",
                                           "user": "{{ target['user'] }}"}},
             edges={"next": "succeeded", "failure": "failed"}),
        node("failed", "record_outcome", {"result": "Failure"}, "end"),
        node("no_response", "record_outcome", {"context": {"no_response_policy": "keep"}}, "end"),
        node("end", "left_campaign"),
    ]
    settings: dict[str, Any] = {"channel": "file", **({"digest": True} if digest else {}), "on_revoke": "revoke",
                                "enforcement": "noop", "remind_every": "P3D", "escalate_after": "P7D",
                                "fallback_approver": fallback}
    return {"name": name, "folder": "reviews", "version": "1.0", "kind": "access_review",
            "description": "Approvers confirm or revoke each user's access to each application.",
            "workflow": {"start": "start", "nodes": nodes},
            "audience": {"source": "csv", "key": ["user", "application"], "path": "access_review.csv"},
            "schedule": {"start_at": None, "cron": None, "timezone": None, "end_after": "P14D"},
            "settings": settings}


# Times as the old code stored them: naive UTC. The test's clock (FakeClock) stands at 2030-01-07 09:00 UTC.
CREATED = datetime(2030, 1, 5, 8, 55, 12, 345678)
LAUNCHED = datetime(2030, 1, 5, 9, 0)
PAUSED, RESUMED = datetime(2030, 1, 5, 9, 30, 0, 500000), datetime(2030, 1, 5, 10, 0, 0, 250000)
NAME = "Quarterly access review"
CLASS = "campaignkit.core.campaigns.Campaigns"  # where 0.1's code lived: records keep the name they were written with
REVIEW_CLASS = "campaignkit.core.review.ReviewService"


@dataclass(frozen=True)
class Item:
    """One run of the old review: the audience row, and how far the old code had taken it."""

    user: str
    email: str
    application: str
    approver: str
    assignee: str | None
    response: str | None = None
    response_at: datetime | None = None
    result: str | None = None
    decided_by_ip: str | None = None
    pending_event: datetime | None = None  # a decision posted through a link that no worker had applied yet

    @property
    def key(self) -> str:
        return f"{self.user}|{self.application}"

    @property
    def status(self) -> str:
        return "completed" if self.response else "waiting"


ITEMS = (
    Item("ada", "ada@example.org", "Payroll", "grace@example.org", "grace@example.org", "Approved",
         datetime(2030, 1, 6, 8, 15, 30, 250000), "Success", "203.0.113.7"),
    Item("ada", "ada@example.org", "Git", "linus@example.org", "linus@example.org", "Revoked",
         datetime(2030, 1, 6, 11, 42, 0, 999999), "Failure", "198.51.100.23"),
    Item("linus", "linus@example.org", "Git", "linus@example.org", "security-office@example.org"),  # no self-review
    Item("margaret", "margaret@example.org", "Payroll", "", None, "Message Delivery Failed"),
    Item("alan", "alan@example.org", "CRM", "not-an-address", "not-an-address", "Message Delivery Failed"),
    Item("barbara", "barbara@example.org", "CRM", "grace@example.org", "grace@example.org", "Revoked",
         datetime(2030, 1, 5, 14, 3, 7, 125), "Success", "203.0.113.7"),
    Item("zoë", "zoe@example.org", "Payroll", "grace@example.org", "grace@example.org",
         pending_event=datetime(2030, 1, 7, 8, 0, 0, 500000)),
)
HISTORY_ORDER = ["ada|Git", "ada|Payroll", "alan|CRM", "barbara|CRM", "linus|Git", "margaret|Payroll", "zoë|Payroll"]


@dataclass
class OldReview:
    campaign_id: str
    launch_id: int
    run_ids: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)  # target key -> the id of its decision event
    audit: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0


def _path(item: Item) -> list[tuple[str, str, str, str | None, dict[str, Any] | None]]:
    """The nodes the old engine executed for an item: node, step type, outcome, edge, detail."""
    steps: list[tuple[str, str, str, str | None, dict[str, Any] | None]] = [
        ("start", "entered_campaign", "ok", "next", None),
        ("assign", "record_outcome", "ok", "next", {"assignee": item.assignee} if item.assignee else None),
    ]
    if item.response == "Message Delivery Failed":
        error = f"no valid recipient address: {item.assignee!r}"
        return [*steps, ("request", "send_message", "failed", "failure", {"error": error}),
                ("undeliverable", "record_outcome", "ok", "next", {"response": item.response}),
                ("end", "left_campaign", "ok", None, None)]
    steps.append(("request", "send_message", "ok", "next", {"message_id": f"<{item.key}@campaignkit>"}))
    if item.response is None:
        return [*steps, ("decide", "wait_for_event", "waiting", None, None)]
    event = item.response.lower()
    at = item.response_at.replace(tzinfo=UTC).isoformat() if item.response_at else None
    steps += [("decide", "wait_for_event", "ok", event, {"event": event}),
              (event[:-1] if event.endswith("d") else event, "record_outcome", "ok", "next",
               {"response": item.response, "response_at": at}),
              (f"{event[:-1]}_field", "update_custom_field", "ok", "next", {"field": "Campaigns Approval"})]
    if item.response == "Revoked":
        steps.append(("enforce", "enforcement_action", "ok" if item.result == "Success" else "failed",
                      "next" if item.result == "Success" else "failure", None))
    return [*steps, ("succeeded" if item.result == "Success" else "failed", "record_outcome", "ok", "next",
                     {"result": item.result}), ("end", "left_campaign", "ok", None, None)]


def write_old_review(conn: Connection) -> OldReview:
    """An access review as the old release left it in its database: created, launched, paused and resumed, most
    items decided, one decision posted but not yet applied, one item still waiting for its approver."""
    old = OldRelease(conn)
    campaign_id = "5f0c8a1e-3d52-4c1b-9a7e-2b6f4d8e9c01"
    old.insert("campaigns", id=campaign_id, name=NAME, folder="reviews", kind="access_review", state="in_progress",
               current_version_id=None, created_at=CREATED, updated_at=RESUMED, finished_at=None)
    version_id = old.insert("campaign_versions", campaign_id=campaign_id, major=1, minor=0,
                            definition=old_review_definition(NAME), source="/srv/reviews/quarterly.yaml",
                            created_at=CREATED)
    conn.execute(update(old.tables.tables["campaigns"]).where(old.tables.tables["campaigns"].c.id == campaign_id)
                 .values(current_version_id=version_id))
    launch_id = old.insert("launches", campaign_id=campaign_id, cycle_at=LAUNCHED, version_id=version_id,
                           status="launched", target_count=len(ITEMS), error=None, created_at=LAUNCHED,
                           launched_at=LAUNCHED, deadline_at=LAUNCHED + timedelta(days=14), ended_at=None)
    review = OldReview(campaign_id, launch_id)
    obj = {"object_id": campaign_id, "object_name": NAME, "object_folder": "reviews", "version_major": 1,
           "version_minor": 0}
    alice = {"user_name": "alice", "computer_name": "ops-1", "computer_ip": "127.0.0.1"}
    audit: list[dict[str, Any]] = [
        {**alice, **obj, "audit_timestamp": CREATED, "audit_type": "Object Change", "audit_sub_type": "Created",
         "details": "created from /srv/reviews/quarterly.yaml", "class_name": CLASS},
        {**alice, **obj, "audit_timestamp": LAUNCHED, "audit_type": "Client Job", "audit_sub_type": "File Import",
         "details": f"audience file /srv/reviews/access_review.csv (source csv): 7 row(s), 7 target(s) for launch "
                    f"{launch_id}", "class_name": CLASS},
        {**alice, **obj, "audit_timestamp": LAUNCHED, "audit_type": "Interaction Event",
         "audit_sub_type": "Workflow Started", "details": f"launch {launch_id}: 7 run(s)", "class_name": CLASS},
        # Written under the sub-type names of 0.1, before they took their AuditHistory names.
        {**alice, **obj, "audit_timestamp": PAUSED, "audit_type": "Interaction Event",
         "audit_sub_type": "Pause Request", "details": "paused: 7 run(s) parked", "class_name": CLASS},
        {**alice, **obj, "audit_timestamp": RESUMED, "audit_type": "Interaction Event",
         "audit_sub_type": "Resume Request", "details": "resumed: 7 run(s) released", "class_name": CLASS},
    ]
    for item in ITEMS:
        done = item.status == "completed"
        last = (item.response_at or LAUNCHED) + timedelta(seconds=1 if item.result == "Failure" else 0)
        context: dict[str, Any] = {"_visits": {step[0]: 1 for step in _path(item)}, "_visit": 1}
        if item.assignee:
            context |= {"assignee": item.assignee,
                        "escalate_at": (LAUNCHED + timedelta(days=7)).replace(tzinfo=UTC).isoformat()}
        if item.response_at:
            context["last_event"] = {"name": str(item.response).lower(), "approver": item.assignee,
                                     "ip": item.decided_by_ip, "at": item.response_at.replace(tzinfo=UTC).isoformat()}
        if not done:
            until = LAUNCHED + timedelta(days=3)
            context["_wait"] = {"since": LAUNCHED.replace(tzinfo=UTC).isoformat(),
                                "until": until.replace(tzinfo=UTC).isoformat(),
                                "events": ["approved", "revoked", "deadline"]}
        run_id = old.insert(
            "runs", campaign_id=campaign_id, launch_id=launch_id, version_id=version_id, target_key=item.key,
            target={"user": item.user, "user_email": item.email, "application": item.application,
                    "approver": item.approver},
            status=item.status, current_node="end" if done else "decide", context=context,
            due_at=None if done else (item.pending_event or LAUNCHED + timedelta(days=3)), paused_due_at=None,
            lease_owner=None, lease_token=2, attempt=0, error=None, assignee=item.assignee, response=item.response,
            response_at=item.response_at, result=item.result, notify=None, created_at=LAUNCHED,
            updated_at=last, finished_at=last if done else None)
        review.run_ids[item.key] = run_id
        for number, (node_id, step_type, outcome, edge, detail) in enumerate(_path(item)):
            at = item.response_at if node_id not in ("start", "assign", "request", "decide") and item.response_at \
                else LAUNCHED
            old.insert("step_records", run_id=run_id, node_id=node_id, visit=1, step_type=step_type, attempt=1,
                       started_at=at + timedelta(microseconds=number), finished_at=None if outcome == "waiting"
                       else at + timedelta(microseconds=number), outcome=outcome, edge=edge, detail=detail,
                       idempotency_key=f"ck:{run_id}:{node_id}:1")
            review.steps += 1
        decided_at = item.response_at or item.pending_event
        if decided_at is not None and item.response != "Message Delivery Failed":
            choice = (item.response or "Approved").lower()
            review.events[item.key] = old.insert(
                "events", run_id=run_id, name=choice, payload={"approver": item.assignee, "ip": item.decided_by_ip},
                source="review-link", created_at=decided_at, consumed_at=item.response_at)
            audit.append({"user_name": item.assignee, "computer_name": None, "computer_ip": item.decided_by_ip,
                          **obj, "audit_timestamp": decided_at, "audit_type": "Interaction Event",
                          "audit_sub_type": "Decision Recorded", "class_name": REVIEW_CLASS,
                          "details": f"{choice}: {item.user} on {item.application} (run {run_id})"})
    audit.append({"user_name": "anonymous", "computer_name": None, "computer_ip": "192.0.2.44",
                  "audit_timestamp": datetime(2030, 1, 6, 12, 0), "audit_type": "Security",
                  "audit_sub_type": "Link Rejected", "details": "review link rejected: expired link",
                  "class_name": REVIEW_CLASS})
    # The old code appended in time order under the chain head; ids are gapless and each hash chains the last.
    audit.sort(key=lambda row: row["audit_timestamp"])
    previous = "0" * 64
    for audit_id, row in enumerate(audit, start=1):
        row.update(audit_id=audit_id, server_name="ck-host", assembly_name="campaignkit")
        for name in ("object_id", "object_name", "object_folder", "version_major", "version_minor", "computer_name"):
            row.setdefault(name, None)
        previous = row["record_hash"] = legacy_hash(previous, row)
        old.insert("audit_history", **row)
    chain = old.tables.tables["audit_chain"]
    conn.execute(update(chain).where(chain.c.id == 1).values(last_audit_id=len(audit), last_hash=previous))
    review.audit = audit
    return review


def at_revision(runtime: Runtime, revision: str, write: Any) -> Any:
    upgrade(runtime.engine, revision)
    assert current_revision(runtime.engine) == revision
    with writing(runtime.engine) as conn:
        return write(conn)


def aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def expected_history() -> list[tuple[Any, ...]]:
    by_key = {item.key: item for item in ITEMS}
    return [(by_key[key].user, by_key[key].application, by_key[key].assignee, by_key[key].response or
             "Pending Response", aware(by_key[key].response_at), by_key[key].result or "") for key in HISTORY_ORDER]


HISTORY_FIELDS = ("User", "Application", "Approver", "Response Status", "Action Time", "Result")


def cli_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, runtime: Runtime) -> Cli:
    """The CLI a user runs on the upgraded database, with the deployment's audit key (for `audit verify`)."""
    run = make_cli(monkeypatch, tmp_path, runtime.settings.database_url)
    assert runtime.settings.audit_key is not None
    monkeypatch.setenv("CAMPAIGNKIT_AUDIT_KEY", runtime.settings.audit_key.get_secret_value())
    return run


@pytest.mark.parametrize("revision", REVISIONS)
def test_an_access_review_written_at_an_old_revision_reads_back_after_the_upgrade(
        empty_runtime: Runtime, revision: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runtime = empty_runtime
    review = at_revision(runtime, revision, write_old_review)
    upgraded(runtime.engine)

    # The Run History: every item with who, what, when and the result, in user order; filters and counts.
    page = history_page(runtime, HistoryQuery(review.campaign_id, limit=1000))
    assert [tuple(row[name] for name in HISTORY_FIELDS) for row in page] == expected_history()
    assert [row["id"] for row in page] == [review.run_ids[key] for key in HISTORY_ORDER]
    assert history_summary(runtime, review.campaign_id) == {
        "Pending Response": 2, "Message Delivery Failed": 2, "Approved": 1, "Revoked": 2, "Terminated": 0}
    revoked = history_page(runtime, HistoryQuery(review.campaign_id, status="Revoked", sort="time"))
    assert [(row["User"], row["Application"], row["Action Time"]) for row in revoked] == [
        ("barbara", "CRM", datetime(2030, 1, 5, 14, 3, 7, 125, tzinfo=UTC)),
        ("ada", "Git", datetime(2030, 1, 6, 11, 42, 0, 999999, tzinfo=UTC))]
    graces = history_page(runtime, HistoryQuery(review.campaign_id, approver="grace@example.org", sort="user"))
    assert [(row["User"], row["Response Status"]) for row in graces] == [
        ("ada", "Approved"), ("barbara", "Revoked"), ("zoë", "Pending Response")]
    assert [row["User"] for row in history_page(runtime, HistoryQuery(review.campaign_id, result="Failure"))] == ["ada"]

    # The columns the migrations after the old revision added hold their defaults for the old rows.
    schema = metadata.tables
    with reading(runtime.engine) as conn:
        assert {row.assignment for row in conn.execute(select(schema["runs"].c.assignment))} == {0}  # server default
        assert {row.notify for row in conn.execute(select(schema["runs"].c.notify))} == {None}
        events = conn.execute(select(schema["events"]).order_by(schema["events"].c.id)).mappings().all()
        assert len(conn.execute(select(schema["step_records"].c.id)).all()) == review.steps
        assert conn.execute(select(schema["step_starts"])).all() == []
        # The counts a campaign's page reads were taken from the rows already there (0005).
        statuses = conn.execute(select(schema["runs"].c.status, func.count()).group_by(schema["runs"].c.status))
        assert counts.by_status(conn, review.campaign_id) == dict(statuses.all())
        assert sum(node.entered for node in counts.by_node(conn, review.campaign_id).values()) == review.steps
    by_key = {item.key: item for item in ITEMS}
    assert [(e["run_id"], e["name"], e["payload"], e["source"], e["sent_by"], e["created_at"], e["consumed_at"])
            for e in events] == [
        (review.run_ids[key], (by_key[key].response or "Approved").lower(),
         {"approver": by_key[key].assignee, "ip": by_key[key].decided_by_ip}, "review-link", None,
         aware(by_key[key].response_at or by_key[key].pending_event), aware(by_key[key].response_at))
        for key in sorted(review.events, key=review.events.__getitem__)]

    # The audit trail: every record with its values, unkeyed (written before the chain was keyed), under the
    # filters the audit query offers; a former sub-type name answers to its current one.
    listed = list_audit(runtime, AuditFilter(), limit=1000, newest_first=False)
    assert sorted(listed, key=lambda row: row["audit_id"]) == [
        {**row, "audit_timestamp": aware(row["audit_timestamp"]), "key_id": None} for row in review.audit]
    assert [row["audit_id"] for row in listed] == list(range(1, len(review.audit) + 1))  # oldest first, by time
    grace = list_audit(runtime, AuditFilter(user="grace@example.org"), newest_first=False)
    assert [(row["audit_sub_type"], row["details"]) for row in grace] == [
        ("Decision Recorded", f"revoked: barbara on CRM (run {review.run_ids['barbara|CRM']})"),
        ("Decision Recorded", f"approved: ada on Payroll (run {review.run_ids['ada|Payroll']})"),
        ("Decision Recorded", f"approved: zoë on Payroll (run {review.run_ids['zoë|Payroll']})")]
    pauses = list_audit(runtime, AuditFilter(sub_type="Workflow Pause Request"))
    assert [(row["audit_sub_type"], row["audit_timestamp"]) for row in pauses] == [("Pause Request", aware(PAUSED))]
    by_name = list_audit(runtime, AuditFilter(object=NAME), limit=1000)
    assert len(by_name) == len(review.audit) - 1  # all but the rejected link, which names no campaign
    with reading(runtime.engine) as conn:
        report = verify_chain(conn)
    assert (report.broken, report.checked, report.legacy) == (None, len(review.audit), len(review.audit))

    # The same through the CLI, as a user would read it after `campaignkit db upgrade`.
    cli = cli_for(monkeypatch, tmp_path, runtime)
    shown = as_json(cli("access-review", "history", NAME, "--format", "json"))
    assert [tuple(row[name] for name in HISTORY_FIELDS) for row in shown["rows"]] == [
        (*row[:4], row[4].isoformat() if row[4] else None, row[5]) for row in expected_history()]
    assert shown["summary"]["Revoked"] == 2
    assert as_json(cli("history", NAME, "--format", "json", "--status", "Approved"))["rows"][0]["User"] == "ada"
    runs = as_json(cli("runs", NAME, "--format", "json", "--sort", "target"))
    assert [(row["target_key"], row["status"]) for row in runs] == [
        (key, "waiting" if key in ("linus|Git", "zoë|Payroll") else "completed") for key in HISTORY_ORDER]
    timeline = as_json(cli("run", "show", str(review.run_ids["ada|Git"]), "--format", "json"))
    assert [(step["node"], step["outcome"], step["edge"]) for step in timeline["path"]] == [
        ("start", "ok", "next"), ("assign", "ok", "next"), ("request", "ok", "next"), ("decide", "ok", "revoked"),
        ("revoke", "ok", "next"), ("revoke_field", "ok", "next"), ("enforce", "failed", "failure"),
        ("failed", "ok", "next"), ("end", "ok", None)]
    assert (timeline["run"]["assignee"], timeline["run"]["response"], timeline["run"]["result"],
            timeline["run"]["assignment"], timeline["digests"]) == ("linus@example.org", "Revoked", "Failure", 0, [])
    audit = as_json(cli("audit", "--user", "linus@example.org", "--format", "json"))
    assert [(row["audit_sub_type"], row["computer_ip"], row["key_id"]) for row in audit] == [
        ("Decision Recorded", "198.51.100.23", None)]
    assert cli("audit", "verify").stdout.strip() == (
        f"audit chain intact: {len(review.audit)} record(s); {len(review.audit)} of them unkeyed, written before "
        "the chain was keyed")


@pytest.mark.parametrize("revision", REVISIONS)
def test_the_upgraded_review_goes_on_where_the_old_release_left_it(
        empty_runtime: Runtime, revision: str, actor: Actor, tmp_path: Path) -> None:
    """Its runs carry on under the workflow the old release stored, and the audit chain grows keyed after the
    unkeyed records, verifiable end to end."""
    runtime = empty_runtime
    review = at_revision(runtime, revision, write_old_review)
    upgraded(runtime.engine)

    harness = CampaignHarness(runtime, actor, tmp_path)
    try:
        harness.run_to_idle()  # applies the decision posted before the upgrade
    finally:
        harness.close()
    page = {row["User"] + "|" + row["Application"]: row for row in
            history_page(runtime, HistoryQuery(review.campaign_id, limit=1000))}
    zoe = page["zoë|Payroll"]
    assert (zoe["Approver"], zoe["Response Status"], zoe["Action Time"], zoe["Result"]) == (
        "grace@example.org", "Approved", datetime(2030, 1, 7, 8, 0, 0, 500000, tzinfo=UTC), "Success")
    assert page["linus|Git"]["Response Status"] == "Pending Response"  # its reminder is due tomorrow
    assert [tuple(page[key][name] for name in HISTORY_FIELDS) for key in HISTORY_ORDER if key != "zoë|Payroll"] == [
        row for row in expected_history() if row[0] != "zoë"]

    with writing(runtime.engine) as conn:
        record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT,
               sub_type=AuditSubType.WORKFLOW_PAUSE_REQUEST, at=runtime.clock.now(),
               obj=AuditObject(review.campaign_id, NAME, "reviews", (1, 0)), details="after the upgrade")
    with reading(runtime.engine) as conn:
        report = verify_chain(conn)
    assert report.broken is None and report.checked > len(review.audit) and report.legacy == len(review.audit)
    pauses = list_audit(runtime, AuditFilter(sub_type="Pause Request"), newest_first=False)
    assert [(row["audit_sub_type"], row["details"], row["key_id"] is None) for row in pauses] == [
        ("Pause Request", "paused: 7 run(s) parked", True),
        ("Workflow Pause Request", "after the upgrade", False)]


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with reading(engine) as conn:
        return {table.name: [tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key.columns))]
                for table in metadata.sorted_tables}


@pytest.mark.parametrize("revision", REVISIONS)
def test_upgrading_again_with_data_present_changes_no_row(
        empty_runtime: Runtime, revision: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runtime = empty_runtime
    review = at_revision(runtime, revision, write_old_review)
    upgrade(runtime.engine, revision)  # asked again for the revision it is at: nothing to do
    assert current_revision(runtime.engine) == revision
    upgraded(runtime.engine)
    before = snapshot(runtime.engine)
    assert len(before["runs"]) == len(ITEMS) and len(before["audit_history"]) == len(review.audit)

    upgrade(runtime.engine)
    assert snapshot(runtime.engine) == before
    assert current_revision(runtime.engine) == head_revision() and schema_differences(runtime.engine) == []
    cli = cli_for(monkeypatch, tmp_path, runtime)
    assert cli("db", "upgrade").stdout.strip() == f"database at revision {head_revision()}"  # no "(was ...)"
    assert snapshot(runtime.engine) == before


# --- what the 0003 upgrade found half done: a digest being retried --------------------------------------------------


def test_a_digest_being_retried_at_the_upgrade_is_sent_after_it(
        empty_runtime: Runtime, tmp_path: Path) -> None:
    """The 0.1 digest sender wrote a digest's items (digest_items) only once it was sent or had failed for good, and
    a retry listed whatever the approver had pending then. 0003 made the items part of the digest from its first
    attempt (a retry resends exactly them) without filling them in for digests still being retried: such a digest,
    after the upgrade, must still reach its approver with their pending items."""
    runtime = empty_runtime
    name = "Digest review"
    now = runtime.clock.now().replace(tzinfo=None)

    def write(conn: Connection) -> dict[str, int]:
        old = OldRelease(conn)
        campaign_id = "0b9d2c7e-8f61-4e3a-b5d4-7c1a9e2f6b30"
        old.insert("campaigns", id=campaign_id, name=name, folder="reviews", kind="access_review",
                   state="in_progress", current_version_id=None, created_at=CREATED, updated_at=LAUNCHED)
        version_id = old.insert("campaign_versions", campaign_id=campaign_id, major=1, minor=0,
                                definition=old_review_definition(name, digest=True), source=None, created_at=CREATED)
        table = old.tables.tables["campaigns"]
        conn.execute(update(table).where(table.c.id == campaign_id).values(current_version_id=version_id))
        launch_id = old.insert("launches", campaign_id=campaign_id, cycle_at=LAUNCHED, version_id=version_id,
                               status="launched", target_count=3, created_at=LAUNCHED, launched_at=LAUNCHED,
                               deadline_at=LAUNCHED + timedelta(days=14))
        ids = {}
        for user, application, assignee, notify in (("ada", "Payroll", "grace@example.org", "request"),
                                                    ("ada", "Git", "linus@example.org", None),
                                                    ("barbara", "CRM", "grace@example.org", "request")):
            ids[f"{user}|{application}"] = old.insert(
                "runs", campaign_id=campaign_id, launch_id=launch_id, version_id=version_id,
                target_key=f"{user}|{application}",
                target={"user": user, "user_email": f"{user}@example.org", "application": application,
                        "approver": assignee},
                status="waiting", current_node="decide",
                context={"_visits": {"start": 1, "assign": 1, "has_approver": 1, "request": 1, "decide": 1},
                         "_visit": 1, "assignee": assignee},
                due_at=LAUNCHED + timedelta(days=3), lease_token=1, attempt=0, assignee=assignee, notify=notify,
                created_at=LAUNCHED, updated_at=LAUNCHED)
        # linus's digest went out and listed his item; grace's first attempt met a mail server that said later.
        sent = old.insert("digests", campaign_id=campaign_id, launch_id=launch_id, assignee="linus@example.org",
                          kind="request", status="sent", item_count=1, attempt=1, message_id="<d1@campaignkit>",
                          created_at=LAUNCHED, sent_at=LAUNCHED)
        old.insert("digest_items", digest_id=sent, run_id=ids["ada|Git"])
        ids["retrying"] = old.insert(
            "digests", campaign_id=campaign_id, launch_id=launch_id, assignee="grace@example.org", kind="request",
            status="retrying", item_count=2, attempt=1, error="451 4.3.0 mailbox temporarily unavailable",
            created_at=now - timedelta(minutes=2), next_attempt_at=now - timedelta(minutes=1))
        return ids

    ids = at_revision(runtime, "0002", write)
    upgraded(runtime.engine)
    with reading(runtime.engine) as conn:
        listed = conn.execute(select(metadata.tables["digest_items"])).mappings().all()
    assert [(row["run_id"], row["assignment"], row["new"]) for row in listed] == [(ids["ada|Git"], None, None)]

    stats = DigestSender(runtime).send_due()
    digests, runs = metadata.tables["digests"], metadata.tables["runs"]
    with reading(runtime.engine) as conn:
        graces = conn.execute(select(digests.c.id, digests.c.status, digests.c.attempt, digests.c.error)
                              .where(digests.c.assignee == "grace@example.org").order_by(digests.c.id)).all()
        marks = dict(conn.execute(select(runs.c.target_key, runs.c.notify)).all())
    outbox = sorted((Path(runtime.settings.var_dir) / "outbox").glob("*.eml"))
    # Whether the fix resumes the old digest with the items it would have listed or starts a new one, grace gets
    # one digest with both her items now, and nothing of hers is left retrying.
    assert (stats.sent, len(outbox), graces[-1].status, [d for d in graces if d.status == "retrying"]) == (
        1, 1, "sent", []), (
        f"grace's digest, being retried when the database was upgraded from 0002, is not sent after the upgrade: "
        f"{stats}, her digests (id, status, attempt, error): {[tuple(d) for d in graces]}")
    message = email.message_from_bytes(outbox[0].read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert message["To"] == "grace@example.org" and "Payroll" in text and "CRM" in text
    assert marks == {"ada|Payroll": None, "ada|Git": None, "barbara|CRM": None}
