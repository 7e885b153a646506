"""The bundled audit sinks, enabled by configuration and fed by the dispatcher, against real files and receivers."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import ssl
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from campaignkit.core import ConfigurationError
from campaignkit.core.audit import Actor, AuditObject, AuditSubType, AuditType, record
from campaignkit.core.audit.dispatch import AuditDispatcher, SinkStatus, as_record
from campaignkit.core.db import writing
from campaignkit.core.db.schema import audit_history
from campaignkit.core.runtime import Runtime
from campaignkit.core.testing import HttpReceiver, answer_in_turn

ACTOR = Actor(user_name="auditor", computer_name="desk-7", computer_ip="10.1.2.3")
SECRET = "s3cret-webhook-key-0123456789"
TRICKY = 'we"ird] \\name'  # every character RFC 5424 escapes inside a PARAM-VALUE
JOURNEY = """
name: Audit demo
audience: {source: csv, path: audience.csv, key: key}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: done}
    - {id: done, type: left_campaign}
"""


@pytest.fixture
def sink_runtime(make_runtime: Any) -> Any:
    """A migrated runtime with audit sinks enabled and their tables set, as an admin would configure them."""

    def make(sinks: list[str], config: dict[str, Any] | None = None) -> Runtime:
        return make_runtime(audit={"sinks": sinks}, plugins={"config": config or {}})

    return make


def add_records(runtime: Any, count: int, details: str = "changed setting", obj: AuditObject | None = None) -> None:
    with writing(runtime.engine) as conn:
        for i in range(count):
            record(conn, actor=ACTOR, audit_type=AuditType.CONFIGURATION, sub_type=AuditSubType.EDITED,
                   at=runtime.clock.now(), obj=obj, details=f"{details} #{i}")


def db_records(runtime: Any) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        return [as_record(row) for row in conn.execute(select(audit_history).order_by(audit_history.c.audit_id))]


def status_of(runtime: Any, sink: str) -> SinkStatus:
    return next(s for s in AuditDispatcher(runtime).status() if s.sink == sink)


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --- registration, database, stdout ---------------------------------------------------------------------


def test_bundled_sinks_are_listed_and_database_needs_no_delivery(sink_runtime: Any) -> None:
    runtime = sink_runtime(["database"])
    assert {"database", "jsonl", "syslog", "webhook", "stdout"} <= set(runtime.registry.names("audit sink"))
    add_records(runtime, 2)
    assert AuditDispatcher(runtime).dispatch() == {}
    assert status_of(runtime, "database").lag == 0


def test_stdout_prints_one_json_line_per_record(sink_runtime: Any, capsys: pytest.CaptureFixture[str]) -> None:
    runtime = sink_runtime(["stdout"])
    add_records(runtime, 3, details="line\nbreak")
    capsys.readouterr()
    assert AuditDispatcher(runtime).dispatch() == {"stdout": 3}
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == db_records(runtime)


# --- jsonl ---------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_appends_the_records_of_a_real_campaign(harness: Any, sink_runtime: Any, tmp_path: Path) -> None:
    campaign_id = harness.create(JOURNEY)
    harness.launch(campaign_id, harness.csv("key,email\na,a@example.org\nb,b@example.org\n"))
    harness.run_to_idle()
    path = tmp_path / "audit" / "audit.jsonl"
    sinks = sink_runtime(["database", "jsonl"], {"jsonl": {"path": str(path)}})
    first = AuditDispatcher(sinks).dispatch()
    records = db_records(sinks)
    assert len(records) >= 2 and first == {"jsonl": len(records)}  # created and launched at least
    assert read_jsonl(path) == records  # every column, in audit_id order
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    add_records(harness.runtime, 2)  # later records are appended, nothing is sent twice
    assert AuditDispatcher(sinks).dispatch() == {"jsonl": 2}
    assert [r["audit_id"] for r in read_jsonl(path)] == list(range(1, len(records) + 3))
    assert status_of(sinks, "jsonl").lag == 0


@pytest.mark.parametrize("ck_settings_sources", [("environment",)])  # the fixtures read no environment unasked
def test_jsonl_is_enabled_by_environment_alone(make_runtime: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.jsonl"
    monkeypatch.setenv("CAMPAIGNKIT_AUDIT__SINKS", '["jsonl"]')
    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG__JSONL__PATH", str(path))
    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG__JSONL__MAX_BYTES", "1000000")
    runtime = make_runtime()
    add_records(runtime, 4)
    assert AuditDispatcher(runtime).dispatch() == {"jsonl": 4}
    assert [r["audit_id"] for r in read_jsonl(path)] == [1, 2, 3, 4]


def rotated_files(path: Path) -> list[Path]:
    """Oldest first: file.N … file.1, then the live file."""
    backups = sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*backups, path]


def test_jsonl_rotates_at_the_size_limit_without_losing_a_record(sink_runtime: Any, tmp_path: Path) -> None:
    path = tmp_path / "rot.jsonl"
    max_bytes = 2000
    runtime = sink_runtime(["jsonl"], {"jsonl": {"path": str(path), "max_bytes": max_bytes, "backups": 50}})
    add_records(runtime, 40, details="x" * 150)
    assert AuditDispatcher(runtime).dispatch(batch_size=7) == {"jsonl": 40}
    files = rotated_files(path)
    assert len(files) >= 8  # each line is several hundred bytes: only a few fit under the limit
    ids = []
    for file in files:
        assert file.stat().st_size <= max_bytes
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        ids += [r["audit_id"] for r in read_jsonl(file)]
    assert ids == list(range(1, 41))


def test_jsonl_keeps_only_the_configured_backups(sink_runtime: Any, tmp_path: Path) -> None:
    path = tmp_path / "few.jsonl"
    runtime = sink_runtime(["jsonl"], {"jsonl": {"path": str(path), "max_bytes": 2000, "backups": 2}})
    add_records(runtime, 30, details="x" * 150)
    AuditDispatcher(runtime).dispatch()
    assert sorted(p.name for p in tmp_path.glob("few.jsonl*")) == ["few.jsonl", "few.jsonl.1", "few.jsonl.2"]
    ids = [r["audit_id"] for file in rotated_files(path) for r in read_jsonl(file)]
    assert ids == list(range(ids[0], 31)) and ids[0] > 1  # the newest records, contiguous; the oldest rotated away


def test_jsonl_ends_a_torn_line_before_appending(sink_runtime: Any, tmp_path: Path) -> None:
    path = tmp_path / "torn.jsonl"
    path.write_text('{"audit_id": 1, "user_na')  # a crash in the middle of a write
    runtime = sink_runtime(["jsonl"], {"jsonl": {"path": str(path)}})
    add_records(runtime, 2)
    AuditDispatcher(runtime).dispatch()
    torn, *lines = path.read_text().splitlines()
    assert torn == '{"audit_id": 1, "user_na'
    assert [json.loads(line)["audit_id"] for line in lines] == [1, 2]


# --- syslog --------------------------------------------------------------------------------------------

HEADER = re.compile(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ", re.DOTALL)


def parse_syslog(frame: bytes) -> dict[str, Any]:
    """An RFC 5424 message: header fields, structured data (unescaped) and the message text."""
    text = frame.decode()
    header = HEADER.match(text)
    assert header, text
    pri, timestamp, host, app, procid, msgid = header.groups()
    rest, sd = text[header.end():], {}
    while rest.startswith("["):
        sd_id, rest = re.match(r"\[([^ \]]+)(.*)", rest, re.DOTALL).groups()  # type: ignore[union-attr]
        params: dict[str, str] = {}
        while rest.startswith(" "):
            name, rest = re.match(r' ([^=]+)="(.*)', rest, re.DOTALL).groups()  # type: ignore[union-attr]
            value, i = [], 0
            while rest[i] != '"':
                assert rest[i] != "]", "a ']' inside a PARAM-VALUE must be escaped"
                if rest[i] == "\\" and rest[i + 1] in '"\\]':
                    i += 1
                value.append(rest[i])
                i += 1
            params[name], rest = "".join(value), rest[i + 1:]
        assert rest.startswith("]"), rest
        sd[sd_id], rest = params, rest[1:]
    assert rest.startswith(" \ufeff"), "MSG is UTF-8 and starts with a BOM"
    return {"pri": int(pri), "timestamp": timestamp, "host": host, "app": app, "procid": procid, "msgid": msgid,
            "sd": sd, "msg": rest[2:]}


def check_syslog(messages: list[dict[str, Any]], records: list[dict[str, Any]], pri: int, app: str) -> None:
    assert [int(m["sd"]["campaignkit@32473"]["auditId"]) for m in messages] == [r["audit_id"] for r in records]
    for message, rec in zip(messages, records, strict=True):
        params = message["sd"]["campaignkit@32473"]
        assert (message["pri"], message["app"], message["msgid"], message["host"]) == (
            pri, app, "audit", rec["server_name"])
        assert message["timestamp"].endswith("Z")
        assert datetime.fromisoformat(message["timestamp"]) == datetime.fromisoformat(rec["audit_timestamp"])
        assert (params["type"], params["subType"], params["user"]) == (
            rec["audit_type"], rec["audit_sub_type"], rec["user_name"])
        assert params.get("objectName") == rec["object_name"]  # absent when the record has none
        assert params["recordHash"] == rec["record_hash"]
        assert message["msg"] == rec["details"]


def test_syslog_over_udp(sink_runtime: Any, clock: Any) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    config = {"transport": "udp", "host": "127.0.0.1", "port": receiver.getsockname()[1], "facility": "auth",
              "severity": "info", "app_name": "ck-test"}
    runtime = sink_runtime(["syslog"], {"syslog": config})
    clock.advance(0.123456)  # sub-second precision survives into the TIMESTAMP
    add_records(runtime, 5, details='quote " bracket ] backslash \\ ünïcode', obj=AuditObject(None, TRICKY))
    try:
        assert AuditDispatcher(runtime).dispatch() == {"syslog": 5}
        frames = [receiver.recv(65535) for _ in range(5)]
    finally:
        receiver.close()
    assert b' objectName="we\\"ird\\] \\\\name"' in frames[0]  # RFC 5424 6.3.3 escaping, byte for byte
    messages = [parse_syslog(frame) for frame in frames]
    check_syslog(messages, db_records(runtime), pri=4 * 8 + 6, app="ck-test")
    assert messages[0]["sd"]["campaignkit@32473"]["objectName"] == TRICKY


def test_syslog_over_a_unix_datagram_socket(sink_runtime: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="cks") as folder:  # short: unix socket paths are limited to ~100 bytes
        path = os.path.join(folder, "log.sock")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        receiver.settimeout(5)
        runtime = sink_runtime(["syslog"], {"syslog": {"transport": "unix", "socket_path": path}})
        add_records(runtime, 3)
        try:
            assert AuditDispatcher(runtime).dispatch() == {"syslog": 3}
            messages = [parse_syslog(receiver.recv(65535)) for _ in range(3)]
        finally:
            receiver.close()
    check_syslog(messages, db_records(runtime), pri=16 * 8 + 5, app="campaignkit")  # local0.notice by default


class TcpReceiver:
    """A syslog receiver reading RFC 6587 octet-counted frames; it can drop its connections or go away."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.frames: list[bytes] = []
        self.connections = 0
        self.clients: list[socket.socket] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self.clients.append(client)
            thread = threading.Thread(target=self._read, args=(client,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _read(self, client: socket.socket) -> None:
        client.settimeout(0.1)
        buffer = b""
        while not self.stopping.is_set():
            try:
                chunk = client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while (match := re.match(rb"(\d+) ", buffer)) and len(buffer) >= match.end() + int(match[1]):
                end = match.end() + int(match[1])
                self.frames.append(buffer[match.end():end])
                buffer = buffer[end:]

    def drop(self) -> None:
        for client in self.clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
        self.clients.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.drop()
        for thread in self.threads:
            thread.join(timeout=5)
        self.server.close()

    def ids(self) -> list[int]:
        return [int(parse_syslog(f)["sd"]["campaignkit@32473"]["auditId"]) for f in self.frames]


def test_syslog_over_tcp_reconnects_and_catches_up(sink_runtime: Any, clock: Any) -> None:
    receiver = TcpReceiver()
    config = {"transport": "tcp", "host": "127.0.0.1", "port": receiver.port, "timeout_seconds": 2}
    runtime = sink_runtime(["syslog"], {"syslog": config})
    dispatcher = AuditDispatcher(runtime)
    try:
        add_records(runtime, 3, details="multi\nline details travel intact in a counted frame")
        assert dispatcher.dispatch() == {"syslog": 3}
        wait_until(lambda: len(receiver.frames) >= 3)

        # The receiver closes the connection. A lone message written into it would vanish without an error, so the
        # sink must notice the close and open a new connection first.
        receiver.drop()
        add_records(runtime, 1)
        assert dispatcher.dispatch() == {"syslog": 1}
        wait_until(lambda: 4 in receiver.ids())
        assert receiver.connections == 2

        receiver.stop()  # now nothing listens: the dispatcher records the failure and keeps its cursor
        add_records(runtime, 2)
        assert dispatcher.dispatch() == {"syslog": 0}
        down = status_of(runtime, "syslog")
        assert (down.last_audit_id, down.lag, down.failures) == (4, 2, 1) and "Connection refused" in down.last_error

        receiver = TcpReceiver(port=receiver.port)
        clock.advance(2)  # past the dispatcher's first backoff
        assert dispatcher.dispatch() == {"syslog": 2}
        wait_until(lambda: set(receiver.ids()) >= {5, 6})
    finally:
        receiver.stop()
    check_syslog([parse_syslog(f) for f in receiver.frames][-2:], db_records(runtime)[-2:], pri=133,
                 app="campaignkit")
    up = status_of(runtime, "syslog")
    assert (up.lag, up.failures, up.last_error) == (0, 0, None)


# --- webhook -------------------------------------------------------------------------------------------


@pytest.fixture
def https_hook(request: pytest.FixtureRequest, tls: tuple[ssl.SSLContext, Path]) -> Iterator[HttpReceiver]:
    """An HTTPS receiver answering the planned statuses in turn (then 200)."""
    hook = HttpReceiver(answer_in_turn(*getattr(request, "param", [])), tls=tls[0])
    with hook:
        yield hook


def webhook_config(url: str, **extra: Any) -> dict[str, Any]:
    return {"webhook": {"url": url, "secret": SECRET, "retries": 1, "retry_backoff_seconds": 0.01, **extra}}


@pytest.mark.parametrize("https_hook", [[200, 503, 503, 503, 503]], indirect=True)
def test_webhook_survives_an_outage_and_delivers_every_record(
        sink_runtime: Any, clock: Any, https_hook: HttpReceiver, tls: tuple[ssl.SSLContext, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    url = f"https://127.0.0.1:{https_hook.server_port}/audit?token=abc"
    runtime = sink_runtime(["webhook"], webhook_config(url, ca_file=str(tls[1])))
    dispatcher = AuditDispatcher(runtime)
    add_records(runtime, 8)

    # The first batch goes through, then the receiver answers 503 to both attempts of the second.
    assert dispatcher.dispatch(batch_size=3) == {"webhook": 3}
    down = status_of(runtime, "webhook")
    assert (down.last_audit_id, down.lag, down.failures) == (3, 5, 1)
    assert down.last_error == f"WebhookError: https://127.0.0.1:{https_hook.server_port}/audit answered HTTP 503"
    assert len(https_hook.seen) == 3

    assert dispatcher.dispatch(batch_size=3) == {"webhook": 0}  # backing off: no request at all
    assert len(https_hook.seen) == 3
    clock.advance(1.5)
    assert dispatcher.dispatch(batch_size=3) == {"webhook": 0}  # still down
    assert status_of(runtime, "webhook").failures == 2
    clock.advance(2.5)
    assert dispatcher.dispatch(batch_size=3) == {"webhook": 5}  # recovered

    up = status_of(runtime, "webhook")
    assert (up.last_audit_id, up.lag, up.failures, up.last_error) == (8, 0, 0, None)
    received: list[int] = []
    for headers, body in [(seen.headers, seen.body) for seen in https_hook.seen]:
        timestamp = headers["X-Campaignkit-Timestamp"]
        expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Campaignkit-Signature"], f"sha256={expected}")
        assert abs(int(timestamp) - time.time()) < 60
        received += [r["audit_id"] for r in json.loads(body)["records"]]
    delivered = list(dict.fromkeys(received))  # a receiver drops repeats by audit_id
    assert delivered == list(range(1, 9))
    assert json.loads(https_hook.seen[-1].body)["records"] == db_records(runtime)[6:]
    assert SECRET not in caplog.text and "token=abc" not in caplog.text


@pytest.mark.parametrize("https_hook", [[401]], indirect=True)
def test_webhook_does_not_retry_a_refusal_within_the_call(sink_runtime: Any, https_hook: HttpReceiver,
                                                         tls: tuple[ssl.SSLContext, Path]) -> None:
    url = f"https://127.0.0.1:{https_hook.server_port}/audit"
    runtime = sink_runtime(["webhook"], webhook_config(url, ca_file=str(tls[1])))
    add_records(runtime, 2)
    assert AuditDispatcher(runtime).dispatch() == {"webhook": 0}
    assert len(https_hook.seen) == 1
    assert status_of(runtime, "webhook").last_error.endswith("answered HTTP 401")


def test_webhook_rejects_a_server_it_cannot_verify(sink_runtime: Any, https_hook: HttpReceiver) -> None:
    url = f"https://127.0.0.1:{https_hook.server_port}/audit"  # no ca_file: the private CA is not trusted
    runtime = sink_runtime(["webhook"], webhook_config(url))
    add_records(runtime, 1)
    assert AuditDispatcher(runtime).dispatch() == {"webhook": 0}
    assert https_hook.seen == []
    status = status_of(runtime, "webhook")
    assert status.lag == 1 and "CERTIFICATE_VERIFY_FAILED" in status.last_error


def test_webhook_over_loopback_http_reports_an_absent_receiver(sink_runtime: Any) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime = sink_runtime(["webhook"], webhook_config(f"http://127.0.0.1:{port}/audit"))
    add_records(runtime, 2)
    assert AuditDispatcher(runtime).dispatch() == {"webhook": 0}
    status = status_of(runtime, "webhook")
    assert status.lag == 2 and "Connection refused" in status.last_error and SECRET not in status.last_error


# --- configuration errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sink", "config", "key"), [
    ("jsonl", {}, "plugins.config.jsonl.path"),
    ("jsonl", {"path": "a.jsonl", "max_bytes": -1}, "plugins.config.jsonl.max_bytes"),
    ("jsonl", {"path": "a.jsonl", "backups": 0}, "plugins.config.jsonl.backups"),
    ("jsonl", {"path": "a.jsonl", "pth": "typo"}, "plugins.config.jsonl.pth"),
    ("syslog", {"port": 70000}, "plugins.config.syslog.port"),
    ("syslog", {"transport": "smoke"}, "plugins.config.syslog.transport"),
    ("syslog", {"facility": "nope"}, "plugins.config.syslog.facility"),
    ("syslog", {"app_name": "has space"}, "plugins.config.syslog.app_name"),
    ("webhook", {"url": "http://example.org/audit", "secret": SECRET}, "plugins.config.webhook.url"),
    ("webhook", {"url": "https://example.org/audit"}, "plugins.config.webhook.secret"),
    ("webhook", {"url": "https://example.org/audit", "secret": "short-key"}, "plugins.config.webhook.secret"),
    ("webhook", {"url": "https://example.org/a", "secret": SECRET, "ca_file": "/nonexistent.pem"},
     "plugins.config.webhook.ca_file"),
    ("stdout", {"colour": True}, "plugins.config.stdout.colour"),
])
def test_invalid_sink_configuration_names_the_key(sink_runtime: Any, sink: str, config: dict[str, Any],
                                                  key: str) -> None:
    tables = {sink: config} if config else {}
    with pytest.raises(ConfigurationError) as caught:  # at start-up, or at the latest when the sink is first fed
        runtime = sink_runtime([sink], tables)
        add_records(runtime, 1)
        AuditDispatcher(runtime).dispatch()
    assert key in str(caught.value)
    assert "short-key" not in str(caught.value)
