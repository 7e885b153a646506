"""An attestation's link: signed for one run and its recipient, expiring at the cycle's deadline; and the nonce its
page carries into the confirming POST.

Templates get the finished link as a plain string (LinkText); nothing that can sign reaches them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaignkit.core import CampaignkitError, LinkError, LinkText, link_expiry, page_url, signer

LINK = "attestation"  # the signing purpose: a token made for another purpose (a review link) never works here
PAGE = "attestation-page"
PAGE_LIFETIME = timedelta(hours=2)  # how long an opened page can still be submitted
PATH = "attest"


def recipient_tag(address: str) -> str:
    """Names the recipient inside the token without putting their address in a URL (tokens are signed, not
    encrypted, and URLs end up in logs)."""
    return hashlib.sha256(f"ck_attestation.recipient:{address.strip().lower()}".encode()).hexdigest()[:24]


def attest_link(runtime: Any, run_id: int, recipient: str, deadline: datetime | None, now: datetime) -> LinkText:
    """``links.attest``: the page where ``recipient`` confirms, valid until the cycle's deadline (or 30 days)."""
    token = signer(runtime).sign(LINK, {"run": run_id, "to": recipient_tag(recipient)}, link_expiry(deadline, now))
    return LinkText(page_url(runtime, f"{PATH}/{token}"))


@dataclass(frozen=True)
class Grant:
    """What a valid link allows: confirming run ``run_id`` as the recipient the tag names."""

    run_id: int
    recipient: str


def verify_link(runtime: Any, token: str) -> Grant:
    """The link's grant; LinkError (404, or 410 once expired) for anything else."""
    try:
        payload = signer(runtime).verify(LINK, token, runtime.clock.now())
    except LinkError:
        raise
    except CampaignkitError:  # no secret_key configured: no link can be valid
        raise LinkError("this link is not valid") from None
    try:
        return Grant(int(payload["run"]), str(payload["to"]))
    except (KeyError, TypeError, ValueError):
        raise LinkError("this link is not valid") from None


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def page_nonce(runtime: Any, token: str) -> str:
    """Proves that a POST comes from a page we rendered for this link, lately: a cross-site form cannot read it."""
    expires = runtime.clock.now() + PAGE_LIFETIME
    return signer(runtime).sign(PAGE, {"link": _fingerprint(token)}, expires)


def nonce_matches(runtime: Any, token: str, nonce: str) -> bool:
    try:
        return signer(runtime).verify(PAGE, nonce, runtime.clock.now()).get("link") == _fingerprint(token)
    except CampaignkitError:
        return False
