"""Shared by the phishing simulation's behaviour tests (test_phishing_kind.py, test_phishing_web.py): definitions, an
SMTP relay on 127.0.0.1 that offers DSN and answers each recipient as scripted, real-looking notifications and
reports, and readers of what a simulation wrote (results, events, bounced mailboxes, audit records)."""

from __future__ import annotations

import email
import email.policy
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from cli_support import make_cli
from sqlalchemy import select
from typer.testing import Result

from campaignkit.core.db import reading
from campaignkit.core.db.schema import audit_history, bounced_mailboxes, events, phishing_results, runs
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.testing import free_port

SAMPLES = Path(__file__).parent / "samples"
BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
           "Safari/537.36")
TOKEN = re.compile(r"^[0-9a-f]{32}$")

PARCEL = {"name": "Parcel notice", "template": "email/phishing/parcel_notice",
          "sender": "Parcel Service <tracking@parcel-examp1e.test>", "kind": "click"}
DOCUMENT = {"name": "Shared document", "template": "email/phishing/shared_document",
            "sender": "Document Share <no-reply@docs-examp1e.test>", "kind": "credentials"}
INVOICE = {"name": "Overdue invoice", "template": "email/phishing/parcel_notice",
           "sender": "Accounts <billing@invoices-examp1e.test>", "kind": "attachment",
           "attachment_name": "invoice.html"}


def simulation(audience: Path | str, name: str = "Awareness drill", **settings: Any) -> str:
    """A phishing campaign's definition (JSON, which YAML reads as it is): the Parcel attack to everyone, sent at
    once through the file channel, unless ``settings`` say otherwise (they replace whole keys)."""
    base: dict[str, Any] = {"channel": "file", "attacks": [PARCEL], "assignment": "same",
                            "sending": {"send_over": "PT0S", "business_hours_only": False}}
    return json.dumps({"name": name, "kind": "phishing", "folder": "security-awareness",
                       "audience": {"source": "csv", "path": str(audience)}, "settings": {**base, **settings}})


def start(harness: Any, audience_csv: str, name: str = "Awareness drill", **settings: Any) -> str:
    """Create and launch a simulation, then work every due run (its emails go out): its id."""
    path = harness.csv(audience_csv, f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.csv")
    campaign_id = harness.create(simulation(path, name, **settings))
    harness.launch(campaign_id)
    harness.run_to_idle()
    return campaign_id


def new_version(harness: Any, campaign_id: str, definition: str) -> None:
    """Edit the campaign, as `campaign create --update-existing` does: its runs keep their version."""
    runtime = harness.runtime
    loaded = load_definition_text(definition, "edited.yaml", runtime.settings.definitions, runtime.kinds)
    harness.campaigns.update(campaign_id, loaded, harness.actor)


# --- reading what a simulation wrote ---------------------------------------------------------------------------------


def results(runtime: Any, campaign_id: str) -> dict[str, Any]:
    """Each recipient's results row, by address."""
    with reading(runtime.engine) as conn:
        return {row.email: row for row in conn.execute(
            select(phishing_results).where(phishing_results.c.campaign_id == campaign_id))}


def run_of(runtime: Any, run_id: int) -> Any:
    with reading(runtime.engine) as conn:
        return conn.execute(select(runs).where(runs.c.id == run_id)).one()


def events_of(runtime: Any, run_id: int, *names: str) -> list[Any]:
    """The run's events (of ``names``, if given), oldest first."""
    statement = select(events).where(events.c.run_id == run_id).order_by(events.c.id)
    if names:
        statement = statement.where(events.c.name.in_(names))
    with reading(runtime.engine) as conn:
        return list(conn.execute(statement))


def bounced(runtime: Any) -> dict[str, Any]:
    with reading(runtime.engine) as conn:
        return {row.address: row for row in conn.execute(select(bounced_mailboxes))}


def audits(runtime: Any, sub_type: str) -> list[Any]:
    with reading(runtime.engine) as conn:
        return list(conn.execute(select(audit_history).where(audit_history.c.audit_sub_type == sub_type)
                                 .order_by(audit_history.c.audit_id)))


# --- what the mail system sends back ---------------------------------------------------------------------------------


def dsn(name: str, token: str, recipient: str | None = None) -> bytes:
    """A real Postfix DSN of samples/, about the email with ``token`` (its VERP address) sent to ``recipient``."""
    raw = (SAMPLES / name).read_bytes()
    raw = re.sub(rb"\b[ab]\dtok\b", token.encode(), raw)
    if recipient is not None:
        for sample_recipient in (b"alice@corp.test", b"nosuch@corp.test"):
            raw = raw.replace(sample_recipient, recipient.encode())
    return raw


def forwarded_report(original: bytes | EmailMessage, reporter: str) -> bytes:
    """What an employee's mail client sends to the report mailbox: the suspicious email attached to a forward."""
    attached = original if isinstance(original, EmailMessage) else email.message_from_bytes(
        original, policy=email.policy.default)
    report = EmailMessage()
    report["From"] = reporter
    report["To"] = "phishing-reports@example.org"
    report["Subject"] = f"FW: {attached['Subject']}"
    report.set_content("This looks like phishing to me.\n")
    report.add_attachment(attached)  # message/rfc822, as Outlook's "Forward as attachment"
    return bytes(report)


# --- an SMTP relay that offers DSN ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transaction:
    """One mail transaction the relay took to DATA: the envelope and the exact bytes of the message."""

    mail_from: str
    mail_options: list[str]
    rcpt_tos: list[str]
    rcpt_options: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)  # type: ignore[return-value]


class _DsnServer(SMTP):
    """aiosmtpd's server, taking the RFC 3461 parameters of MAIL and RCPT (RET, ENVID, NOTIFY, ORCPT) as a relay that
    advertises DSN does; aiosmtpd itself refuses every parameter it does not implement."""

    def _getparams(self, params: Sequence[str]) -> Any:
        found = super()._getparams(params)
        if found is not None:
            for name in ("RET", "ENVID", "NOTIFY", "ORCPT"):
                found.pop(name, None)
        return found


class Relay:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that advertises DSN. ``rcpt_answers[address]`` and
    ``data_answers[address]`` script replies given in turn (``["451 4.7.1 try later"]``) before it accepts."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.rcpt_answers: dict[str, list[str]] = {}
        self.data_answers: dict[str, list[str]] = {}
        self.mail_answers: list[str] = []  # replies to MAIL FROM, given in turn before it accepts senders
        self.tried: list[str] = []  # every RCPT TO it was given, accepted or not
        self.accepted: list[Transaction] = []
        self.refused: list[Transaction] = []  # taken to the end of DATA, then refused
        self._lock = threading.Lock()

        class _Controller(Controller):
            def factory(self) -> SMTP:
                return _DsnServer(self.handler, **self.SMTP_kwargs)

        self._controller = _Controller(self, hostname=self.host, port=self.port)

    def __enter__(self) -> Relay:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def smtp_config(self) -> dict[str, Any]:
        """The ``plugins.config.smtp`` table of a sending profile that relays here."""
        return {"host": self.host, "port": self.port, "security": "none",
                "sender": "Campaigns <campaigns@example.org>"}

    def to(self, address: str) -> list[Transaction]:
        return [seen for seen in self.accepted if address in seen.rcpt_tos]

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-DSN", responses[-1]]

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        with self._lock:
            if self.mail_answers:
                return self.mail_answers.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self._lock:
            self.tried.append(address)
            queued = self.rcpt_answers.get(address)
            if queued:
                return queued.pop(0)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        seen = Transaction(str(envelope.mail_from), list(envelope.mail_options), list(envelope.rcpt_tos),
                           list(envelope.rcpt_options), bytes(envelope.original_content))
        with self._lock:
            queued = self.data_answers.get(seen.rcpt_tos[0]) if seen.rcpt_tos else None
            if queued:
                self.refused.append(seen)
                return queued.pop(0)
            self.accepted.append(seen)
        return "250 2.0.0 Message accepted for delivery"


# --- the CLI on a harness's database ----------------------------------------------------------------------------------


def cli_on(harness: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
           database_url: str) -> Callable[..., Result]:
    """`campaignkit ...` run in-process on the harness's database, with its keys (the audit chain stays one)."""
    run = make_cli(monkeypatch, tmp_path, database_url)
    settings = harness.runtime.settings
    keys = {"CAMPAIGNKIT_SECRET_KEY": settings.secret_key.get_secret_value(),
            "CAMPAIGNKIT_AUDIT_KEY": settings.audit_key.get_secret_value()}

    def call(*args: str, code: int = 0, input: str | None = None) -> Result:
        return run(*args, code=code, env=keys, input=input)

    return call
