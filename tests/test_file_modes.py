"""var/ and what campaignkit creates in it are for the service account alone, even under the usual umask 022.

The outbox's .eml files carry live decision links, the SQLite database and its -wal/-shm files the targets and the
audit trail: each is created through the real command or channel, and its mode read back with os.stat.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli, make_cli

from campaignkit.core import Message
from campaignkit.core.audit import Actor, AuditSubType, AuditType, record
from campaignkit.core.audit.dispatch import AuditDispatcher
from campaignkit.core.db import writing

JOURNEY = """
name: Outbox
audience: {source: csv, path: people.csv, key: key}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - id: mail
      type: send_message
      config: {channel: file, subject: "Your access", text: "Decide here: https://example.org/review/secret"}
      next: done
    - {id: done, type: left_campaign}
"""


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The usual umask: without care, files come out 0644 and folders 0755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    """The CLI with the embedded default: a SQLite database under var_dir."""
    return make_cli(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'var' / 'campaignkit.db'}")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_and_a_file_channel_campaign_keep_var_private(cli: Cli, tmp_path: Path) -> None:
    var = tmp_path / "var"
    result = cli("init")
    assert "warning" not in result.stderr
    assert mode(var) == 0o700 and mode(var / "secrets") == 0o700
    assert {p.name: mode(p) for p in (var / "secrets").iterdir()} == {
        name: 0o600 for name in ("secret_key", "audit_key")}
    assert mode(var / "campaignkit.db") == 0o600

    (tmp_path / "people.csv").write_text("key,email\nada,ada@example.org\ngrace,grace@example.org\n")
    (tmp_path / "outbox.yaml").write_text(JOURNEY)
    cli("campaign", "create", str(tmp_path / "outbox.yaml"))
    cli("campaign", "launch", "Outbox")
    cli("work", "--until-idle")
    outbox = var / "outbox"
    messages = list(outbox.glob("*.eml"))
    assert len(messages) == 2 and mode(outbox) == 0o700
    assert {mode(m) for m in messages} == {0o600}
    assert "review/secret" in messages[0].read_text()

    # SQLite gives the -wal and -shm files the database file's mode; they exist while a connection is open.
    with sqlite3.connect(var / "campaignkit.db") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE probe (x)")
        assert {mode(var / f"campaignkit.db{suffix}") for suffix in ("-wal", "-shm")} == {0o600}
    assert {p.name for p in var.iterdir() if mode(p) & 0o077} == set()


def test_a_message_file_a_crash_left_behind_does_not_lend_its_mode(make_runtime: Any) -> None:
    """An older version's half-written .tmp (0644) is replaced, not reused with its mode."""
    runtime = make_runtime()
    channel = runtime.registry.channel("file", runtime)
    message = Message(to="ada@example.org", subject="Your access", text="https://example.org/review/secret",
                      html=None, idempotency_key="run-1-mail-1", run_id=1, campaign_id="c-1")
    outbox = runtime.settings.var_dir / "outbox"
    outbox.mkdir(parents=True)
    leftover = outbox / (hashlib.sha256(b"run-1-mail-1").hexdigest()[:32] + ".tmp")
    leftover.write_text("half a message")
    os.chmod(leftover, 0o644)
    path = Path(channel.send(message).detail["file"])
    assert path.with_suffix(".tmp") == leftover and not leftover.exists()
    assert mode(path) == 0o600 and "review/secret" in path.read_text()


def test_init_warns_about_a_var_folder_others_can_open(cli: Cli, tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    os.chmod(var, 0o755)  # made by hand, or by an older version
    result = cli("init")
    assert f"{var} is open to other users (mode 755)" in result.stderr and f"chmod 700 {var}" in result.stderr
    assert mode(var) == 0o755  # left as it is: var_dir may be shared on purpose
    assert mode(var / "secrets") == 0o700 and mode(var / "campaignkit.db") == 0o600


def test_the_jsonl_audit_sink_creates_its_folder_private(make_runtime: Any) -> None:
    runtime = make_runtime(audit={"sinks": ["database", "jsonl"]},
                           plugins={"config": {"jsonl": {"path": "audit/trail.jsonl"}}})
    with writing(runtime.engine) as conn:
        record(conn, actor=Actor("admin"), audit_type=AuditType.CONFIGURATION, sub_type=AuditSubType.EDITED,
               at=runtime.clock.now(), details="changed setting")
    assert AuditDispatcher(runtime).dispatch() == {"jsonl": 1}
    folder = runtime.settings.var_dir / "audit"
    assert mode(folder) == 0o700 and mode(folder / "trail.jsonl") == 0o600
