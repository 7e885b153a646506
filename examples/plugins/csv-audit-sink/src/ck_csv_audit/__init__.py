"""campaignkit-csv-audit: the ``csv`` audit sink, appending audit records to CSV files."""

from __future__ import annotations

from campaignkit.core import AuditSink, hookimpl

from .sink import CsvAuditConfig, CsvAuditSink

__all__ = ["CsvAuditConfig", "CsvAuditSink", "register_audit_sinks"]


@hookimpl
def register_audit_sinks() -> list[type[AuditSink]]:
    return [CsvAuditSink]
