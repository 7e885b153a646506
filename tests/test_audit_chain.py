"""The keyed audit chain: HMAC records, key rotation, the legacy unkeyed prefix, signed checkpoints that catch a
truncated or re-hashed tail, the PostgreSQL application role, and control characters escaped in records."""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import make_cli
from servers import serving
from sqlalchemy import create_engine, delete, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from campaignkit.core.audit import (
    GENESIS_HASH,
    Actor,
    AuditObject,
    AuditSubType,
    AuditType,
    append,
    chain_hash,
    entry,
    escape_controls,
    keyed_hash,
    record,
    verify_chain,
)
from campaignkit.core.audit.checkpoints import Checkpoint, parse, read_checkpoints, take_checkpoint
from campaignkit.core.audit.keys import AuditKey, AuditKeys, key_id_of
from campaignkit.core.audit.queries import AuditFilter, export_audit
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import audit_chain, audit_history
from campaignkit.core.errors import ConfigurationError
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings
from campaignkit.core.testing import CampaignHarness

TOKEN = "h4Qw-9XbT2kLmZ8pRv0sYc3NfG7jDa1uEo5iKq6tW"
CONTROLS = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]


def write(runtime: Any, n: int, actor: Actor | None = None) -> None:
    """n records in one transaction, as a busy installation appends them."""
    actor = actor or Actor("tester", "test-host", "127.0.0.1")
    start = runtime.clock.now()
    with writing(runtime.engine) as conn:
        append(conn, [entry(actor=actor, audit_type=AuditType.OBJECT_CHANGE, sub_type=AuditSubType.EDITED,
                            at=start + timedelta(seconds=i), obj=AuditObject("c-1", "Review"),
                            details=f"change {i}") for i in range(n)])


def rows(runtime: Any) -> list[Any]:
    with reading(runtime.engine) as conn:
        return list(conn.execute(select(audit_history).order_by(audit_history.c.audit_id)).mappings())


def check(runtime: Any, checkpoint: Checkpoint | None = None) -> Any:
    with reading(runtime.engine) as conn:
        return verify_chain(conn, checkpoint=checkpoint)


# What someone with write access to the database, but not the audit key, can do -----------------------------------


def truncate_after(runtime: Any, last: int) -> None:
    """Delete the tail and move the chain head back to match: without a checkpoint the chain looks whole."""
    with writing(runtime.engine) as conn:
        conn.execute(delete(audit_history).where(audit_history.c.audit_id > last))
        kept = conn.execute(select(audit_history.c.record_hash).where(audit_history.c.audit_id == last)).scalar()
        conn.execute(update(audit_chain).values(last_audit_id=last, last_hash=kept or GENESIS_HASH))


def rehash_from(runtime: Any, start: int, *, how: str, head: bool, edit: bool = True) -> None:
    """Edit record ``start`` and recompute every hash from it on, as unkeyed sha256 ("legacy") or with a key of the
    attacker's own under the real key_id ("forged key"); ``head`` moves the chain head to the new last hash."""
    forged = AuditKey("", os.urandom(32), os.urandom(32))
    with writing(runtime.engine) as conn:
        previous = conn.execute(select(audit_history.c.record_hash)
                                .where(audit_history.c.audit_id == start - 1)).scalar() or GENESIS_HASH
        tail = conn.execute(select(audit_history).where(audit_history.c.audit_id >= start)
                            .order_by(audit_history.c.audit_id)).mappings().all()
        for row in tail:
            values = dict(row)
            if edit and row["audit_id"] == start:
                values["details"] = "nothing happened"
            if how == "legacy":
                values["key_id"] = None
                previous = chain_hash(previous, values)
            else:
                previous = keyed_hash(forged, previous, values)
            conn.execute(update(audit_history).where(audit_history.c.audit_id == row["audit_id"])
                         .values(details=values["details"], key_id=values["key_id"], record_hash=previous))
        if head:
            conn.execute(update(audit_chain).values(last_hash=previous))


# Keyed records -----------------------------------------------------------------------------------------------------


def test_the_keyed_hash_format_never_changes() -> None:
    """Every keyed trail is verified with this function: a change of format would break all of them."""
    key = AuditKey.from_secret("golden-audit-key-WqN3xT8vL2pZ6mR9cY4bH7kJ")
    row = {"audit_id": 1, "user_name": "ada", "audit_timestamp": datetime(2030, 1, 7, 9, 0, tzinfo=UTC),
           "object_id": None, "audit_type": "Interaction Event", "audit_sub_type": "Workflow Started",
           "details": "launch 1: 3 target(s)", "key_id": key.key_id}
    assert key.key_id == "4a096f87ad28d213"
    assert keyed_hash(key, GENESIS_HASH, row) == "b84ec48b892eea25cd51e969504e63123bd5c92b289493bdee7f9d25b749a20d"


def test_records_are_keyed_and_name_their_key(runtime: Any) -> None:
    write(runtime, 3)
    key_id = key_id_of(runtime.settings.audit_key.get_secret_value())
    stored = rows(runtime)
    assert [r["key_id"] for r in stored] == [key_id] * 3
    # Not the unkeyed sha256 anyone with the database could recompute.
    assert stored[0]["record_hash"] != chain_hash(GENESIS_HASH, stored[0])
    report = check(runtime)
    assert (report.checked, report.legacy, report.broken) == (3, 0, None)


@pytest.mark.parametrize("how", ["legacy", "forged key"])
@pytest.mark.parametrize("head", [False, True], ids=["head kept", "head updated"])
def test_a_tail_rehashed_without_the_key_is_named(runtime: Any, how: str, head: bool) -> None:
    write(runtime, 8)
    rehash_from(runtime, 5, how=how, head=head)
    report = check(runtime)
    assert report.broken is not None and report.broken.audit_id == 5 and "altered" in report.broken.reason
    assert report.checked == 4


def test_a_truncated_tail_is_named_against_a_checkpoint(runtime: Any, actor: Actor, tmp_path: Path) -> None:
    write(runtime, 1000)
    taken, path = take_checkpoint(runtime, actor, tmp_path / "shipped" / "checkpoints.jsonl")
    assert taken.audit_id == 1000
    truncate_after(runtime, 990)
    assert check(runtime).broken is None  # the head was moved back too: only a checkpoint kept elsewhere shows it
    latest = read_checkpoints(path, runtime.audit_keys).latest
    report = check(runtime, latest)
    assert report.broken is not None and report.broken.audit_id == 991
    assert report.broken.reason.startswith("records 991..1000 are missing")


def test_a_chain_rehashed_whole_as_legacy_is_caught_by_the_checkpoint(runtime: Any, actor: Actor,
                                                                       tmp_path: Path) -> None:
    write(runtime, 6)
    taken, path = take_checkpoint(runtime, actor, tmp_path / "checkpoints.jsonl")
    assert taken.audit_id == 6
    truncate_after(runtime, 6)  # the checkpoint record goes too: an unkeyed one would give the re-hash away
    rehash_from(runtime, 1, how="legacy", head=True, edit=False)
    rehash_from(runtime, 3, how="legacy", head=True)
    assert check(runtime).broken is None  # indistinguishable from a trail written before the key, without one
    report = check(runtime, read_checkpoints(path, runtime.audit_keys).latest)
    assert report.broken is not None and report.broken.audit_id == 6
    assert "differs from the checkpoint" in report.broken.reason


def test_an_unkeyed_checkpoint_record_gives_a_legacy_rehash_away(runtime: Any, actor: Actor, tmp_path: Path) -> None:
    write(runtime, 3)
    take_checkpoint(runtime, actor, tmp_path / "checkpoints.jsonl")
    rehash_from(runtime, 1, how="legacy", head=True, edit=False)
    broken = check(runtime).broken
    assert broken is not None and broken.audit_id == 4 and "unkeyed" in broken.reason


# Rotation and the legacy prefix ------------------------------------------------------------------------------------


def test_rotated_keys_verify_their_records_and_an_unknown_key_is_named(make_runtime: Any) -> None:
    old, new = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    write(make_runtime(audit_key=old), 3)
    rotated = make_runtime(audit_key=new, previous_audit_keys=[old])
    write(rotated, 2)
    assert [r["key_id"] for r in rows(rotated)] == [key_id_of(old)] * 3 + [key_id_of(new)] * 2
    report = check(rotated)
    assert (report.checked, report.broken) == (5, None)

    forgotten = make_runtime(audit_key=new)  # the old key dropped from previous_audit_keys
    broken = check(forgotten).broken
    assert broken is not None and broken.audit_id == 1
    assert f"unknown audit key (key_id {key_id_of(old)})" in broken.reason and "previous_audit_keys" in broken.reason


def insert_legacy(runtime: Any, n: int) -> None:
    """Records as the code before the keyed chain wrote them: sha256, key_id NULL."""
    previous = GENESIS_HASH
    with writing(runtime.engine) as conn:
        for i in range(1, n + 1):
            row = entry(actor=Actor("old-timer"), audit_type=AuditType.OBJECT_CHANGE, sub_type=AuditSubType.CREATED,
                        at=datetime(2029, 12, 31, tzinfo=UTC) + timedelta(minutes=i), details=f"legacy {i}")
            row["audit_id"] = i
            previous = row["record_hash"] = chain_hash(previous, row)
            conn.execute(insert(audit_history).values(**row))
        conn.execute(update(audit_chain).values(last_audit_id=n, last_hash=previous))


def test_a_legacy_unkeyed_prefix_is_accepted_and_counted_then_keyed_records_follow(runtime: Any) -> None:
    insert_legacy(runtime, 4)
    write(runtime, 3)
    stored = rows(runtime)
    assert [r["key_id"] is None for r in stored] == [True] * 4 + [False] * 3
    report = check(runtime)
    assert (report.checked, report.legacy, report.broken) == (7, 4, None)
    # Unkeyed after keyed is no longer the legacy prefix: it was re-hashed without the key.
    rehash_from(runtime, 6, how="legacy", head=True)
    broken = check(runtime).broken
    assert broken is not None and broken.audit_id == 6 and "unkeyed" in broken.reason


# Checkpoints -------------------------------------------------------------------------------------------------------


def test_a_checkpoint_is_a_signed_line_in_a_private_file_and_a_security_record(runtime: Any, actor: Actor) -> None:
    write(runtime, 2)
    taken, path = take_checkpoint(runtime, actor)
    assert path == runtime.settings.var_dir / "audit-checkpoints.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (line,) = path.read_text().splitlines()
    assert parse(line, runtime.audit_keys) == taken
    assert (taken.audit_id, taken.record_hash, taken.key_id) == (2, rows(runtime)[1]["record_hash"],
                                                                 runtime.audit_keys.current.key_id)
    checkpoint_record = rows(runtime)[-1]
    assert (checkpoint_record["audit_type"], checkpoint_record["audit_sub_type"]) == ("Security", "Audit Checkpoint")
    assert json.loads(checkpoint_record["details"]) == json.loads(line)
    take_checkpoint(runtime, actor)  # appended, never rewritten
    assert len(path.read_text().splitlines()) == 2 and path.read_text().startswith(line)
    assert check(runtime, read_checkpoints(path, runtime.audit_keys).latest).broken is None


def test_a_forged_or_foreign_checkpoint_line_is_rejected_not_trusted(runtime: Any, actor: Actor,
                                                                     tmp_path: Path) -> None:
    write(runtime, 3)
    taken, path = take_checkpoint(runtime, actor, tmp_path / "checkpoints.jsonl")
    forged = {**json.loads(taken.to_json()), "audit_id": 50, "signature": "0" * 64}
    stranger = AuditKey.from_secret(secrets.token_urlsafe(48))
    from campaignkit.core.audit.checkpoints import sign

    foreign = sign(stranger, 60, "f" * 64, datetime(2030, 1, 1, tzinfo=UTC))
    with path.open("a") as handle:
        handle.write(json.dumps(forged) + "\n" + foreign.to_json() + "\n{not json\n")
    found = read_checkpoints(path, runtime.audit_keys)
    assert found.latest == taken
    assert [problem.split(":")[0] for problem in found.rejected] == ["line 2", "line 3", "line 4"]
    assert "signature does not match" in found.rejected[0] and "unknown audit key" in found.rejected[1]
    assert check(runtime, found.latest).broken is None


def test_the_checkpoint_record_reaches_the_audit_sinks(make_runtime: Any, actor: Actor, tmp_path: Path) -> None:
    trail = tmp_path / "trail.jsonl"
    runtime = make_runtime(audit={"sinks": ["jsonl"]}, plugins={"config": {"jsonl": {"path": str(trail)}}})
    write(runtime, 2)
    taken, _ = take_checkpoint(runtime, actor)
    CampaignHarness(runtime, actor, tmp_path).dispatch_audit()
    shipped = [json.loads(line) for line in trail.read_text().splitlines()]
    (checkpoint_record,) = [r for r in shipped if r["audit_sub_type"] == "Audit Checkpoint"]
    assert parse(checkpoint_record["details"], runtime.audit_keys) == taken


def test_the_scheduler_takes_checkpoints(make_runtime: Any) -> None:
    from campaignkit.core.scheduling import jobs
    from campaignkit.core.scheduling.service import SchedulerService

    runtime = make_runtime(audit={"checkpoint_seconds": 1800})
    service = SchedulerService(runtime)
    service.start()
    try:
        (job,) = [job for job in service.jobs() if job["id"] == "housekeeping:audit-checkpoint"]
        assert "0:30:00" in job["trigger"]
    finally:
        service.shutdown()
    jobs.bind(service)
    try:
        jobs.checkpoint_audit()
    finally:
        jobs.bind(None)
    (line,) = (runtime.settings.var_dir / "audit-checkpoints.jsonl").read_text().splitlines()
    assert parse(line, runtime.audit_keys).audit_id == 0
    (row,) = rows(runtime)
    assert row["class_name"] == "campaignkit.core.scheduling.jobs.checkpoint_audit"
    assert row["user_name"] == runtime.instance_id


# The commands ------------------------------------------------------------------------------------------------------


def test_init_creates_the_audit_key_and_verify_holds_the_chain_to_a_checkpoint(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    cli = make_cli(monkeypatch, tmp_path, database_url)
    cli("init")
    key_file = tmp_path / "var" / "secrets" / "audit_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text()) >= 32
    for _ in range(4):  # init audited the first admin (record 1); each export is itself audited: records 2 to 5
        cli("audit", "export", "-o", str(tmp_path / "export.csv"))
    shipped = tmp_path / "elsewhere" / "checkpoints.jsonl"
    assert cli("audit", "checkpoint", "--file", str(shipped)).stdout.strip() == (
        f"checkpoint of record 5 appended to {shipped}")
    out = cli("audit", "verify", "--checkpoint", str(shipped)).stdout.strip()
    assert out.startswith("audit chain intact: 6 record(s); matches the checkpoint of ") and "at record 5" in out

    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:  # truncated after record 3, the head moved back to match
            conn.execute(text("DELETE FROM audit_history WHERE audit_id > 3"))
            conn.execute(text("UPDATE audit_chain SET last_audit_id = 3, last_hash = "
                              "(SELECT record_hash FROM audit_history WHERE audit_id = 3)"))
    finally:
        engine.dispose()
    assert "audit chain intact: 3 record(s)" in cli("audit", "verify").stdout
    err = cli("audit", "verify", "--checkpoint", str(shipped), code=1).stderr
    assert err.splitlines() == [
        "error: audit chain broken at record 4: records 4..5 are missing: the checkpoint of "
        f"{read_checkpoints(shipped, AuditKeys.from_secrets(key_file.read_text())).latest.time} saw record 5 "  # type: ignore[union-attr]
        "(3 record(s) before it are intact)"]

    with shipped.open("a") as handle:
        handle.write('{"audit_id": 1, "record_hash": "x", "time": "t", "key_id": "k", "signature": "s"}\n')
    err = cli("audit", "verify", "--checkpoint", str(shipped), code=1).stderr
    assert f"warning: {shipped} line 2: signed with an unknown audit key (key_id k): not trusted" in err


def test_without_an_audit_key_writing_fails_with_one_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    cli = make_cli(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'campaignkit.db'}")
    cli("db", "upgrade")  # no `init`: no secrets
    expected = ("error: audit_key is not set: the audit chain is keyed by a secret kept outside the database; run "
                "`campaignkit init` (it creates var/secrets/audit_key) or set CAMPAIGNKIT_AUDIT_KEY")
    for args in (("work", "--until-idle"), ("audit", "verify"), ("audit", "checkpoint"),
                 ("audit", "export", "-o", str(tmp_path / "out.csv"))):
        assert cli(*args, code=2).stderr.splitlines() == [expected], args

    runtime = Runtime(Settings(var_dir=tmp_path / "var", database_url=f"sqlite:///{tmp_path / 'campaignkit.db'}"))
    try:
        with pytest.raises(ConfigurationError, match="audit_key is not set"), writing(runtime.engine) as conn:
            record(conn, actor=Actor("x"), audit_type=AuditType.OPERATIONS,
                   sub_type=AuditSubType.FORCE_WORKFLOW_STATUS, at=datetime(2030, 1, 1, tzinfo=UTC))
    finally:
        runtime.close()
    with reading(create_engine(f"sqlite:///{tmp_path / 'campaignkit.db'}")) as conn:
        assert conn.execute(select(audit_history)).first() is None  # nothing unkeyed slipped in


def test_app_role_refuses_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cli = make_cli(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'campaignkit.db'}")
    cli("init")
    err = cli("db", "app-role", "campaignkit_app", code=1).stderr
    assert err.startswith("error: db app-role is for PostgreSQL")


ROLE_FLOW = """
name: Role
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: done}
    - {id: done, type: left_campaign}
"""


@pytest.mark.postgres
def test_the_application_role_appends_audit_records_but_cannot_rewrite_them(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, postgres_url: str, actor: Actor) -> None:
    cli = make_cli(monkeypatch, tmp_path, postgres_url)
    cli("init")  # as the owner, who keeps running migrations
    role, password = f"ck_app_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(24)
    owner = create_engine(postgres_url)
    with owner.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
    app: Runtime | None = None
    try:
        printed = cli("db", "app-role", role).stdout
        assert f'GRANT SELECT, INSERT ON TABLE "audit_history" TO "{role}";' in printed
        assert f'GRANT SELECT, UPDATE ON TABLE "audit_chain" TO "{role}";' in printed
        assert "TRUNCATE" not in printed
        cli("db", "app-role", role, "--apply")

        role_url = make_url(postgres_url).set(username=role, password=password).render_as_string(hide_password=False)
        key = (tmp_path / "var" / "secrets" / "audit_key").read_text()
        app = Runtime(Settings(var_dir=tmp_path / "var", database_url=role_url, audit_key=key))
        harness = CampaignHarness(app, actor, tmp_path)
        assert len(harness.run_campaign(ROLE_FLOW, "key\nk1\nk2\n")) == 2  # runs, steps, targets, sequences
        take_checkpoint(app, actor)
        from campaignkit.core.scheduling.service import SchedulerService

        service = SchedulerService(app)  # its job table was made by the owner; the role only uses it
        service.start()
        service.shutdown()
        harness.close()
        for statement in ("UPDATE audit_history SET details = 'nothing happened'", "DELETE FROM audit_history",
                          "TRUNCATE audit_history"):
            with pytest.raises(ProgrammingError, match="permission denied"), app.engine.begin() as conn:
                conn.execute(text(statement))
        with reading(app.engine) as conn:
            report = verify_chain(conn)
        assert report.broken is None and report.checked >= 4
    finally:
        if app is not None:
            app.close()
        with owner.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))  # its privileges, here and on the database
            conn.execute(text(f"DROP ROLE {role}"))
        owner.dispose()


# Control characters ------------------------------------------------------------------------------------------------


def test_control_characters_become_visible_escapes_and_other_text_stays() -> None:
    assert escape_controls("\x1b[31mred\x1b[0m\nline\ttab\rcr") == "\\x1b[31mred\\x1b[0m\\nline\\ttab\\rcr"
    assert escape_controls("nul\x00 del\x7f c1\x85\x9b") == "nul\\x00 del\\x7f c1\\x85\\x9b"
    text = "Zoë Ørsted — 東京 👩‍💻 \u00a0C:\\path"
    assert escape_controls(text) == text
    row = entry(actor=Actor("a\nb", "host\x1b", "10.0.0.1"), audit_type=AuditType.SECURITY,
                sub_type=AuditSubType.LINK_REJECTED, at=datetime(2030, 1, 1, tzinfo=UTC),
                obj=AuditObject("id\x07", "name\x9b", "folder\r"), details="".join(CONTROLS))
    assert not any(char in str(value) for value in row.values() for char in CONTROLS)
    assert row["user_name"] == "a\\nb" and row["object_name"] == "name\\x9b"
    # A plugin's object id that is not text is left for the database layer, as before; the other fields are escaped.
    object_id = uuid.uuid4()
    row = entry(actor=Actor("a"), audit_type=AuditType.SECURITY, sub_type=AuditSubType.LINK_REJECTED,
                at=datetime(2030, 1, 1, tzinfo=UTC), obj=AuditObject(object_id, "x\n"))  # type: ignore[arg-type]
    assert (row["object_id"], row["object_name"]) == (object_id, "x\\n")


def test_a_rejected_request_s_control_characters_are_stored_and_exported_escaped(make_runtime: Any) -> None:
    from campaignkit.core.web import create_app

    runtime = make_runtime(api_token=TOKEN)
    with serving(create_app(runtime)) as url:
        assert httpx.get(f"{url}/api/%1b[31mred%0aforged%c2%9bline").status_code == 401
    (stored,) = [r for r in rows(runtime) if r["audit_sub_type"] == "Login Failed"]
    assert "/api/\\x1b[31mred\\nforged\\x9bline" in stored["details"]
    for fmt in ("jsonl", "csv"):
        out = io.StringIO()
        export_audit(runtime, AuditFilter(), out, fmt)
        exported = out.getvalue()
        assert "\\x1b[31mred" in exported
        assert not any(char in exported for char in CONTROLS if char not in "\r\n"), fmt
        assert len(exported.splitlines()) == len(rows(runtime)) + (fmt == "csv")  # no forged line
    assert check(runtime).broken is None
