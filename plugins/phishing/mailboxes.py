"""The phishing plugin's mailboxes: the bounced mailboxes list, and reading the configured IMAP mailboxes (delivery
status notifications, reported emails) into the results, by hand (`phishing ingest`) or on the scheduler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from campaignkit.core.db import reading
from campaignkit.core.db.schema import bounced_mailboxes

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

    from .config import PhishingConfig
    from .notifications import Ingested

COLUMNS = ["Address", "Code", "Error", "First Seen", "Last Seen", "Campaign"]


def bounced_list(runtime: Runtime, limit: int = 1000, address: str | None = None) -> list[dict[str, Any]]:
    statement = select(bounced_mailboxes).order_by(bounced_mailboxes.c.last_seen.desc()).limit(limit)
    if address:
        statement = statement.where(bounced_mailboxes.c.address.startswith(address.strip().lower(),
                                                                            autoescape=True))
    with reading(runtime.engine) as conn:
        return [{"Address": row.address, "Code": row.code, "Error": row.error, "First Seen": row.first_seen,
                 "Last Seen": row.last_seen, "Campaign": row.campaign_id or ""} for row in conn.execute(statement)]


def drain_configured(runtime: Runtime) -> Ingested:
    """Read every configured mailbox once; each message applied (notifications.ingest_message) before it is
    removed, so a crash in between reads it again, which changes nothing."""
    from campaignkit.core import CampaignkitError

    from .mailbox import ImapMailbox
    from .notifications import Ingested, ingest_message

    config: PhishingConfig = runtime.kind("phishing").config
    boxes = [box for box in (config.mailbox, config.report_mailbox) if box is not None]
    if not boxes:
        raise CampaignkitError("no mailbox configured: set plugins.config.phishing.mailbox (docs/phishing-mail.md), "
                               "or give message files")
    total = Ingested()
    for box in boxes:
        ImapMailbox(box).drain(lambda raw: total.add(ingest_message(runtime, raw, prefix=config.verp_prefix)))
    return total
