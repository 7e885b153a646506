"""What the slack tests share: the webhook's secret path on campaignkit's ck_http receiver, and its usual answer."""

from __future__ import annotations

from campaignkit.core.testing import HttpReceiver

# The token part of the URL, as in Slack's /services/T…/B…/<token>: it must never show up in records or logs.
TOKEN = "xq7TOKEN4s3cr3t9zz"
WEBHOOK_PATH = f"/services/T0001/B0001/{TOKEN}"
OK = (200, b"ok")  # what Slack's incoming webhooks answer


def webhook_url(receiver: HttpReceiver) -> str:
    return f"{receiver.url}{WEBHOOK_PATH}"
