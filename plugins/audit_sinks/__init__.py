"""Bundled audit sinks: database, jsonl, syslog, webhook and stdout, each enabled by configuration alone."""

from __future__ import annotations

from campaignkit.core import AuditSink, hookimpl

from .database import DatabaseSink
from .jsonl import JsonlSink
from .stdout import StdoutSink
from .syslog import SyslogSink
from .webhook import WebhookSink


@hookimpl
def register_audit_sinks() -> list[type[AuditSink]]:
    return [DatabaseSink, JsonlSink, SyslogSink, WebhookSink, StdoutSink]
