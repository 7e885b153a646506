"""An access review's links: a decision link per item, bound to its recipient and to the assignment it was sent for
(the review service refuses it once the item is handed to someone else), and a digest's review-all link."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from campaignkit.core.web.links import LinkText, link_expiry, page_url, signer

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

DECISION = "access-review-decision"
DIGEST = "access-review-digest"
PAGE = "decision-page"  # the nonce a rendered decision page carries into its POST


def recipient_tag(address: str) -> str:
    """Names a link's recipient inside its token without putting their address in a URL (tokens are signed, not
    encrypted, and URLs end up in logs)."""
    return hashlib.sha256(f"campaignkit.recipient:{address}".encode()).hexdigest()[:24]


def decision_link(runtime: Runtime, run_id: int, recipient: str, assignment: int, expires_at: datetime) -> LinkText:
    """The page where ``recipient`` sees the item and approves or revokes it, while the assignment holds."""
    token = signer(runtime).sign(DECISION, {"run": run_id, "to": recipient_tag(recipient), "a": assignment},
                                 expires_at)
    return LinkText(page_url(runtime, f"review/{token}"))


def digest_link(runtime: Runtime, digest_id: int, recipient: str, expires_at: datetime) -> LinkText:
    """The page where ``recipient`` sees the items one digest listed and approves or revokes them all at once."""
    token = signer(runtime).sign(DIGEST, {"digest": digest_id, "to": recipient_tag(recipient)}, expires_at)
    return LinkText(page_url(runtime, f"review/all/{token}"))


def run_links(runtime: Runtime, run_id: int, facets: Mapping[str, Any], deadline: datetime | None,
              now: datetime) -> dict[str, LinkText]:
    """The ``links`` template variable: plain strings. A decision link exists only for a run with an assignee,
    since it is bound to that recipient and the assignment they hold."""
    assignee = facets.get("assignee")
    if not assignee:
        return {}
    return {"decision": decision_link(runtime, run_id, str(assignee), int(facets.get("assignment") or 0),
                                      link_expiry(deadline, now))}
