"""Signed links: valid until their expiry, useless for another purpose, and tamper-evident."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaignkit.core.links import LinkError, LinkSigner

NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
signer = LinkSigner("k" * 40)


def test_a_link_carries_its_payload_until_it_expires() -> None:
    token = signer.sign("decision", {"run": 42, "choice": "approve"}, NOW + timedelta(days=14))
    assert signer.verify("decision", token, NOW) == {"run": 42, "choice": "approve"}
    with pytest.raises(LinkError) as excinfo:
        signer.verify("decision", token, NOW + timedelta(days=14))
    assert excinfo.value.expired


def test_a_link_works_only_for_its_purpose_and_key() -> None:
    token = signer.sign("decision", {"run": 42}, NOW + timedelta(days=1))
    with pytest.raises(LinkError, match="not valid"):
        signer.verify("tracking", token, NOW)
    with pytest.raises(LinkError, match="not valid"):
        LinkSigner("z" * 40).verify("decision", token, NOW)


def test_a_tampered_link_is_rejected() -> None:
    token = signer.sign("decision", {"run": 42}, NOW + timedelta(days=1))
    signature = token.rpartition(".")[2]
    forged = signer.sign("decision", {"run": 43}, NOW + timedelta(days=1)).rpartition(".")[0] + "." + signature
    with pytest.raises(LinkError):
        signer.verify("decision", forged, NOW)
    with pytest.raises(LinkError):
        signer.verify("decision", token[:-2] + ("AA" if not token.endswith("AA") else "BB"), NOW)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(Exception, match="at least 32"):
        LinkSigner("short")
