"""register_hit_detectors: a vendor's detector is asked about every hit on a tracked link, next to the built-in
ones, and a hit it flags is recorded as filtered (with its reason) and counted as no click."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from campaignkit.core import Hit, HitDetector, hookimpl
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import events, phishing_results
from campaignkit.plugins.phishing.tracking import HitRequest, record_hits

SIMULATION = """
name: Vendor detector check
kind: phishing
audience: {source: csv, path: %s}
settings:
  channel: file
  attacks: [{name: Parcel, template: email/phishing/parcel_notice, sender: "Parcel <p@parcel.test>"}]
  sending: {business_hours_only: false}
"""
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


class GatewayScanner(HitDetector):
    """gateway_scanner: the vendor's mail gateway fetches links from 198.51.100.7 with a browser's user agent."""

    name = "gateway_scanner"

    def classify(self, hit: Hit) -> str | None:
        return "vendor gateway" if hit.client_ip == "198.51.100.7" else None


class VendorDetectors:
    __name__ = "vendor_detectors"

    @hookimpl
    def register_hit_detectors(self) -> list[type[HitDetector]]:
        return [GatewayScanner]


def test_a_vendor_detector_filters_the_hits_it_recognises(make_runtime: Any, actor: Any, clock: Any,
                                                          tmp_path: Path) -> None:
    from conftest import Harness

    runtime = make_runtime(extra_plugins=(VendorDetectors(),))
    assert "gateway_scanner" in runtime.registry.names("hit detector")
    harness = Harness(runtime, actor, tmp_path)
    campaign_id = harness.create(SIMULATION % harness.csv("email,name\nada@example.org,Ada\nbob@example.org,Bob\n"))
    harness.launch(campaign_id)
    harness.run_to_idle()
    clock.advance(timedelta(minutes=30))  # well past the built-in "too soon after sending" rule
    with reading(runtime.engine) as conn:
        tokens = dict(conn.execute(select(phishing_results.c.email, phishing_results.c.token)).all())

    def click(email: str, ip: str) -> Any:
        hit = HitRequest(token=tokens[email], event="clicked", method="GET", user_agent=BROWSER, client_ip=ip)
        with writing(runtime.engine) as conn:
            return record_hits(conn, runtime, [(hit, runtime.clock.now())], lambda _conn, _id: {})[0]

    assert click("ada@example.org", "198.51.100.7").filtered == "vendor gateway"
    assert click("bob@example.org", "203.0.113.9").filtered is None
    with reading(runtime.engine) as conn:
        clicked = dict(conn.execute(select(phishing_results.c.email, phishing_results.c.clicked_at)).all())
        filtered = conn.execute(select(events.c.payload).where(events.c.name == "filtered_hit")).scalars().all()
    assert clicked["ada@example.org"] is None and clicked["bob@example.org"] is not None
    assert [(p["hit"], p["reason"], p["ip"]) for p in filtered] == [("clicked", "vendor gateway", "198.51.100.7")]
