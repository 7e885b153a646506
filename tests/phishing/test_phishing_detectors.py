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


class RecordingProvider:
    """A vendor's training provider: records each assignment and sends people to its own course page."""

    __name__ = "vendor_training"

    def __init__(self) -> None:
        from campaignkit.core import TrainingAssignment, TrainingProvider

        assigned: list[TrainingAssignment] = []
        self.assigned = assigned

        class Academy(TrainingProvider):
            name = "academy"

            def assign(self, assignment: TrainingAssignment) -> str:
                assigned.append(assignment)
                return f"https://academy.example.org/{assignment.course}/{assignment.idempotency_key[-6:]}"

        self.provider = Academy

    @hookimpl
    def register_training_providers(self) -> list[type[Any]]:
        return [self.provider]


def test_a_vendor_training_provider_enrols_who_clicked_and_the_email_carries_its_link(
    make_runtime: Any, actor: Any, clock: Any, tmp_path: Path
) -> None:
    from conftest import Harness

    vendor = RecordingProvider()
    runtime = make_runtime(extra_plugins=(vendor,))
    harness = Harness(runtime, actor, tmp_path)
    training = "  training: {provider: academy, course: spotting-lures, remind_every: P2D, reminders: 1}\n"
    definition = SIMULATION + training
    campaign_id = harness.create(definition % harness.csv("email,name\nada@example.org,Ada\nbob@example.org,Bob\n"))
    harness.launch(campaign_id)
    harness.run_to_idle()
    clock.advance(timedelta(minutes=30))
    with reading(runtime.engine) as conn:
        tokens = dict(conn.execute(select(phishing_results.c.email, phishing_results.c.token)).all())
    hit = HitRequest(token=tokens["ada@example.org"], event="clicked", method="GET", user_agent=BROWSER,
                     client_ip="203.0.113.9")
    with writing(runtime.engine) as conn:
        record_hits(conn, runtime, [(hit, runtime.clock.now())], lambda _conn, _id: {})
    harness.run_to_idle()
    assert [(a.email, a.course) for a in vendor.assigned] == [("ada@example.org", "spotting-lures")]
    first = vendor.assigned[0]
    assert first.completion_url.endswith(f"/p/{tokens['ada@example.org']}/training/complete")
    outbox = runtime.settings.var_dir / "outbox"
    training_mail = [p.read_text() for p in outbox.glob("*.eml") if "training" in p.read_text()]
    assert len(training_mail) == 1 and f"https://academy.example.org/spotting-lures/{first.idempotency_key[-6:]}" \
        in training_mail[0]
    clock.advance(timedelta(days=2, minutes=1))  # no completion: one reminder, enrolled under the same key
    harness.run_to_idle()
    assert [a.idempotency_key for a in vendor.assigned] == [first.idempotency_key] * 2
    assert sum("Reminder:" in p.read_text() for p in outbox.glob("*.eml")) == 1
