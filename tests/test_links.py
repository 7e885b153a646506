"""Signed links: valid until their expiry, useless for another purpose, and tamper-evident."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaignkit.core.web.links import LinkError, LinkSigner

NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
KEY = "Xb7-qL2mN9vR4tW8yZ1cF6hJ3kP5sD0gA"  # random, as `campaignkit init` makes them
OLD_KEY = "Tq4-wE8rY2uI6oP0aS3dF7gH1jK5lZ9xC"
signer = LinkSigner(KEY)


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
        LinkSigner(OLD_KEY).verify("decision", token, NOW)


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


def test_links_are_signed_with_hmac_sha256() -> None:
    import base64
    import hashlib
    import hmac

    from itsdangerous import URLSafeSerializer

    token = signer.sign("decision", {"run": 42}, NOW + timedelta(days=1))
    signature = token.rpartition(".")[2]
    assert len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))) == hashlib.sha256().digest_size
    sha1 = URLSafeSerializer(KEY, salt="campaignkit.link.decision", signer_kwargs={"digest_method": hashlib.sha1})
    with pytest.raises(LinkError):  # a link signed the old way (HMAC-SHA1) is not accepted
        signer.verify("decision", sha1.dumps({"run": 42, "exp": int((NOW + timedelta(days=1)).timestamp())}), NOW)
    assert hmac.compare_digest(token, signer.sign("decision", {"run": 42}, NOW + timedelta(days=1)))


def test_a_rotated_key_still_verifies_the_links_it_signed_until_it_is_dropped() -> None:
    before = LinkSigner(OLD_KEY).sign("decision", {"run": 7}, NOW + timedelta(days=1))
    rotated = LinkSigner(KEY, previous=[OLD_KEY])
    assert rotated.verify("decision", before, NOW) == {"run": 7}
    fresh = rotated.sign("decision", {"run": 8}, NOW + timedelta(days=1))
    assert LinkSigner(KEY).verify("decision", fresh, NOW) == {"run": 8}  # new links use the new key
    with pytest.raises(LinkError):
        LinkSigner(KEY).verify("decision", before, NOW)
