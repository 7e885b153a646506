"""The smtp and file channels against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import email
import email.policy
import ssl
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from campaignkit.core.db import reading
from campaignkit.core.db.schema import step_records
from campaignkit.core.testing import SmtpInbox, free_port
from campaignkit.plugins.email.smtp import RateLimiter

AUDIENCE = "key,email,name\n1,ada@example.org,Ada\n2,grace@example.org,Grace\n3,rejected@example.org,Rej\n"


@pytest.fixture
def smtp_server(ck_smtp: SmtpInbox) -> tuple[SmtpInbox, int]:
    """The SMTP server campaignkit ships for plugin authors, used here as they would."""
    return ck_smtp, ck_smtp.port


def journey(channel: str = "smtp", failure_edge: bool = False) -> str:
    edges = "edges: {next: done, failure: bounced}" if failure_edge else "next: done"
    bounced = "\n    - {id: bounced, type: left_campaign, config: {reason: bounced}}" if failure_edge else ""
    return f"""
name: Mail test
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: mail}}
    - id: mail
      type: send_message
      config:
        channel: {channel}
        subject: "Hello {{{{ target.name }}}}"
        text: "Plain text for {{{{ target.name }}}}"
        html: "<p>Hi <b>{{{{ target.name }}}}</b> &amp; {{{{ '<script>' }}}}</p>"
      retry: {{max_attempts: 3, backoff_seconds: 10}}
      {edges}{bounced}
    - {{id: done, type: left_campaign}}
"""


@pytest.fixture
def make_smtp_runtime(make_runtime: Any) -> Any:
    def make(port: int, **smtp: Any) -> Any:
        config = {"host": "127.0.0.1", "port": port, "security": "none", "sender": "Reviews <reviews@example.org>"}
        return make_runtime(plugins={"config": {"smtp": {**config, **smtp}}})

    return make


def run_campaign(runtime: Any, actor: Any, tmp_path: Path, yaml_text: str) -> tuple[Any, str]:
    from campaignkit.core.campaigns import Campaigns
    from campaignkit.core.definitions.loader import load_definition_text
    from campaignkit.core.engine.worker import Worker

    audience = tmp_path / "audience.csv"
    audience.write_text(AUDIENCE)
    campaigns = Campaigns(runtime)
    campaign_id = campaigns.create(load_definition_text(yaml_text, "mail.yaml"), actor)
    campaigns.launch(campaign_id, actor, audience=audience)
    worker = Worker(runtime)
    worker.run_until_idle()
    return worker, campaign_id


def mail_steps(runtime: Any) -> dict[int, Any]:
    with reading(runtime.engine) as conn:
        rows = conn.execute(step_records.select().where(step_records.c.node_id == "mail")).all()
    return {row.run_id: row for row in rows}


def test_messages_arrive_with_text_and_escaped_html(make_smtp_runtime: Any, smtp_server: Any, actor: Any,
                                                    tmp_path: Path) -> None:
    inbox, port = smtp_server
    runtime = make_smtp_runtime(port)
    run_campaign(runtime, actor, tmp_path, journey())
    assert sorted(str(m["To"]) for m in inbox.messages) == [
        "ada@example.org", "grace@example.org", "rejected@example.org"]
    ada = next(m for m in inbox.messages if m["To"] == "ada@example.org")
    assert ada["Subject"] == "Hello Ada" and ada["From"] == "Reviews <reviews@example.org>"
    assert ada.get_body(("plain",)).get_content().strip() == "Plain text for Ada"  # type: ignore[union-attr]
    html = ada.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<b>Ada</b>" in html and "&lt;script&gt;" in html and "<script>" not in html
    steps = mail_steps(runtime)
    assert all(s.outcome == "ok" and s.detail["message_id"].endswith("@example.org>") for s in steps.values())
    assert {s.detail["message_id"] for s in steps.values()} == {str(m["Message-ID"]) for m in inbox.messages}
    assert inbox.sessions <= runtime.settings.worker.threads  # one connection per worker thread, reused


def test_a_rejected_address_fails_permanently_without_retry(make_smtp_runtime: Any, smtp_server: Any, actor: Any,
                                                            tmp_path: Path) -> None:
    inbox, port = smtp_server
    inbox.answers["rejected@example.org"] = ["550 5.1.1 No such user"]
    runtime = make_smtp_runtime(port)
    run_campaign(runtime, actor, tmp_path, journey(failure_edge=True))
    steps = list(mail_steps(runtime).values())
    (rejected,) = [s for s in steps if s.outcome == "failed"]
    assert rejected.attempt == 1 and rejected.edge == "failure"
    assert "550" in rejected.detail["error"] and "rejected@example.org" in rejected.detail["error"]
    assert [s.outcome for s in steps].count("ok") == 2 and len(inbox.messages) == 2


def test_a_deferral_is_retried_with_backoff(make_smtp_runtime: Any, smtp_server: Any, actor: Any, tmp_path: Path,
                                            clock: Any) -> None:
    inbox, port = smtp_server
    inbox.answers["grace@example.org"] = ["451 4.7.1 Try again later", "451 4.7.1 Try again later"]
    runtime = make_smtp_runtime(port)
    worker, _ = run_campaign(runtime, actor, tmp_path, journey())
    (deferred,) = [s for s in mail_steps(runtime).values() if s.outcome == "retrying"]
    assert "451" in deferred.detail["error"]
    clock.advance(timedelta(seconds=10))
    worker.run_until_idle()
    clock.advance(timedelta(seconds=20))
    worker.run_until_idle()
    steps = mail_steps(runtime)
    assert {s.outcome for s in steps.values()} == {"ok"}
    assert max(s.attempt for s in steps.values()) == 3
    assert sorted(str(m["To"]) for m in inbox.messages).count("grace@example.org") == 1


def test_a_server_that_is_down_is_a_temporary_failure(make_smtp_runtime: Any, actor: Any, tmp_path: Path) -> None:
    runtime = make_smtp_runtime(free_port())  # nothing listens there
    run_campaign(runtime, actor, tmp_path, journey())
    steps = mail_steps(runtime).values()
    assert {s.outcome for s in steps} == {"retrying"}
    assert all("unavailable" in s.detail["error"] for s in steps)


def test_invalid_addresses_never_reach_the_server(make_smtp_runtime: Any, smtp_server: Any, actor: Any,
                                                  tmp_path: Path) -> None:
    inbox, port = smtp_server
    runtime = make_smtp_runtime(port)
    yaml_text = journey().replace("Hello", "Hi").replace("config:\n        channel: smtp",
                                                         "config:\n        channel: smtp\n        to: not-an-address")
    run_campaign(runtime, actor, tmp_path, yaml_text)
    assert inbox.messages == []
    assert all(s.outcome == "failed" and "invalid recipient" in s.detail["error"]
               for s in mail_steps(runtime).values())


def test_starttls_and_login(make_smtp_runtime: Any, actor: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    seen: list[str] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"mailer" and data.password == b"s3cret-pass"
        seen.append(data.login.decode())
        return AuthResult(success=ok)

    inbox = SmtpInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=server_context,
                            require_starttls=True, authenticator=authenticate, auth_require_tls=True)
    controller.start()
    try:
        runtime = make_smtp_runtime(port, security="starttls", username="mailer", password="s3cret-pass",
                                    ca_file=str(ca_file))
        run_campaign(runtime, actor, tmp_path, journey())
    finally:
        controller.stop()
    assert len(inbox.messages) == 3 and seen and set(seen) == {"mailer"}


def test_rate_limiter_spaces_sends() -> None:
    limiter = RateLimiter(per_minute=1200)  # one every 50 ms
    start = time.monotonic()
    for _ in range(5):
        limiter.wait()
    assert time.monotonic() - start >= 0.19


def test_the_file_channel_writes_one_eml_per_idempotency_key(make_runtime: Any, actor: Any, tmp_path: Path) -> None:
    runtime = make_runtime()
    run_campaign(runtime, actor, tmp_path, journey(channel="file"))
    outbox = runtime.settings.var_dir / "outbox"
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 3
    parsed = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert sorted(str(m["To"]) for m in parsed) == ["ada@example.org", "grace@example.org", "rejected@example.org"]
    assert not list(outbox.glob("*.tmp"))


# --- a password never crosses the network in clear -----------------------------------------------------


def smtp_table(host: str, **extra: Any) -> dict[str, Any]:
    return {"host": host, "port": 25, "security": "none", "sender": "reviews@example.org", "username": "mailer",
            "password": "s3cret-pass", **extra}


@pytest.mark.parametrize("host", ["mail.example.org", "10.0.0.25"])
def test_a_password_without_tls_to_a_remote_server_is_refused(host: str) -> None:
    from pydantic import ValidationError

    from campaignkit.plugins.email.smtp import SmtpConfig

    with pytest.raises(ValidationError) as caught:
        SmtpConfig.model_validate(smtp_table(host))
    assert "password" in str(caught.value) and 'security = "none"' in str(caught.value)
    assert "s3cret-pass" not in str(caught.value)
    for security in ("starttls", "tls"):
        SmtpConfig.model_validate(smtp_table(host, security=security))
    SmtpConfig.model_validate({**smtp_table(host), "password": None, "username": None})  # an open relay: no secret


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_a_password_without_tls_to_a_loopback_relay_is_accepted(host: str) -> None:
    from campaignkit.plugins.email.smtp import SmtpConfig

    assert SmtpConfig.model_validate(smtp_table(host)).password is not None


def test_the_command_refuses_to_start_with_a_password_in_clear(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    from cli_support import make_cli

    cli = make_cli(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'campaignkit.db'}")
    cli("init")
    for key, value in smtp_table("mail.example.org").items():
        monkeypatch.setenv(f"CAMPAIGNKIT_PLUGINS__CONFIG__SMTP__{key.upper()}", str(value))
    result = cli("campaign", "list", code=2)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: invalid configuration for channel 'smtp': plugins.config.smtp:")
    assert 'password with security = "none"' in line and '"starttls"' in line and "s3cret-pass" not in line
    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG__SMTP__SECURITY", "starttls")
    cli("campaign", "list")
