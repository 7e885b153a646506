"""The audit vocabulary: what people do to a campaign is audited under the AuditHistory catalog's names, campaignkit's
own additions are marked as such, docs/audit.md lists every name, and records written under a sub-type's former name
are still found, by it and by the current one."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli, as_json, make_cli

from campaignkit.core.audit import (
    FORMER_NAMES,
    OWN_AUDIT_TYPES,
    OWN_SUB_TYPES,
    Actor,
    AuditSubType,
    AuditType,
    record,
    sub_type_names,
)
from campaignkit.core.db import writing
from campaignkit.core.engine.events import send_event
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import load_settings
from campaignkit.core.testing import CampaignHarness

VOCABULARY = Path(__file__).resolve().parent.parent / "docs" / "audit.md"
OWN, CATALOG = "campaignkit", "AuditHistory"
WAITING = """
name: NAME
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: done}}
    - {id: done, type: left_campaign}
"""


def table(heading: str) -> list[list[str]]:
    """The body rows of the first table under ``## heading`` in docs/audit.md, cell by cell."""
    section = VOCABULARY.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[1:]
            if not re.fullmatch(r"\|[-| ]+\|", row)]


def documented_pairs() -> dict[tuple[str, str], str]:
    """(audit type, sub-type) -> catalog, from the sub-types table."""
    return {(row[0], row[1]): row[-1] for row in table("Audit sub-types")}


def test_a_campaign_s_lifecycle_is_audited_under_the_catalog_s_names(harness: CampaignHarness) -> None:
    runtime, actor = harness.runtime, harness.actor
    campaign_id = harness.create(WAITING.replace("NAME", "Lifecycle"))
    harness.launch(campaign_id, harness.csv("key\nk1\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    send_event(runtime, run.id, "clicked", actor=actor, source="cli")
    harness.campaigns.pause(campaign_id, actor)
    harness.campaigns.resume(campaign_id, actor)
    harness.campaigns.terminate(campaign_id, actor)
    later = harness.create(WAITING.replace("NAME", "Later"))
    harness.campaigns.launch(later, actor, at=runtime.clock.now() + timedelta(days=1))

    written = [(r.audit_type, r.audit_sub_type) for r in harness.audit() if r.audit_type == "Interaction Event"]
    assert [sub for _, sub in written] == [
        "Workflow Started", "Workflow Trigger Request", "Workflow Pause Request", "Workflow Resume Request",
        "Workflow Termination Request", "Workflow Trigger Request"]
    assert set(written) <= set(documented_pairs())  # under the audit type the vocabulary gives them

    # The harness finds a renamed sub-type under its former name too, as plugin authors' tests may still ask.
    assert [r.audit_sub_type for r in harness.audit("Termination Request")] == ["Workflow Termination Request"]


def test_every_audit_type_is_documented_and_campaignkit_s_own_are_marked() -> None:
    documented = {row[0]: row[-1] for row in table("Audit types")}
    assert set(documented) == {str(t) for t in AuditType}
    assert {name for name, catalog in documented.items() if catalog == OWN} == {str(t) for t in OWN_AUDIT_TYPES}
    assert set(documented.values()) == {OWN, CATALOG}


def test_every_sub_type_is_documented_once_and_campaignkit_s_own_are_marked() -> None:
    rows = table("Audit sub-types")
    sub_types = [row[1] for row in rows]
    assert sorted(sub_types) == sorted(str(s) for s in AuditSubType), "docs/audit.md: one row per AuditSubType"
    assert {row[0] for row in rows} <= {str(t) for t in AuditType}
    assert {row[1] for row in rows if row[-1] == OWN} == {str(s) for s in OWN_SUB_TYPES}
    assert {row[-1] for row in rows} == {OWN, CATALOG}
    for row in rows:
        assert row[2], f"docs/audit.md: {row[1]} does not say when it is written"


def test_every_sub_type_a_bundled_kind_writes_is_documented_with_its_kind() -> None:
    from campaignkit.plugins.access_review.kind import AccessReview
    from campaignkit.plugins.phishing.kind import Phishing

    documented = {(row[0], row[1], row[2]): row[3] for row in table("Added by campaign kinds")}
    declared = {(kind.name, audit_type, sub_type) for kind in (AccessReview, Phishing)
                for sub_type, (audit_type, _) in kind.audit_sub_types.items()}
    assert set(documented) == declared
    assert not {sub_type for _, _, sub_type in declared} & {str(s) for s in AuditSubType}  # no clash with core's
    assert all(documented.values()), "docs/audit.md: say when each is written"


def test_the_former_names_are_documented_and_resolve_both_ways() -> None:
    assert {row[0]: row[1] for row in table("Names in records written before this release")} == {
        str(current): ", ".join(former) for current, former in FORMER_NAMES.items()}
    assert {str(s) for s in FORMER_NAMES} == {
        "Workflow Pause Request", "Workflow Resume Request", "Workflow Termination Request", "Workflow Trigger Request"}
    for current, former in FORMER_NAMES.items():
        assert not set(former) & {str(s) for s in AuditSubType}  # no record is written under a former name
        for name in (current, *former):
            assert set(sub_type_names(name)) == {str(current), *former}
    assert sub_type_names("Created") == ("Created",)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Cli:
    run = make_cli(monkeypatch, tmp_path, database_url)
    run("init")
    return run


def sub_types(records: Any) -> list[str]:
    return sorted(r["audit_sub_type"] for r in records)


def test_records_written_under_a_former_name_are_found_by_either_name(cli: Cli, tmp_path: Path) -> None:
    # The CLI's own database (make_cli's settings): one campaign terminated by this release, and a record as
    # campaignkit 0.1 wrote it, chained and keyed like any other.
    runtime = Runtime(load_settings())
    try:
        harness = CampaignHarness(runtime, Actor.local_user(), tmp_path)
        campaign_id = harness.create(WAITING.replace("NAME", "Old"))
        harness.launch(campaign_id, harness.csv("key\nk1\n"))
        harness.campaigns.terminate(campaign_id, harness.actor)
        with writing(runtime.engine) as conn:
            record(conn, actor=harness.actor, audit_type=AuditType.INTERACTION_EVENT,
                   sub_type="Termination Request", at=runtime.clock.now(), details="written by campaignkit 0.1")
        harness.close()
    finally:
        runtime.close()

    both = ["Termination Request", "Workflow Termination Request"]
    for asked in both:
        assert sub_types(as_json(cli("audit", "--sub-type", asked, "--format", "json"))) == both
        exported = cli("audit", "export", "--format", "jsonl", "--sub-type", asked).stdout.splitlines()
        assert sub_types(json.loads(line) for line in exported) == both
    assert sub_types(as_json(cli("audit", "--sub-type", "Created", "--format", "json"))) == ["Created"]
    cli("audit", "verify")  # the old name is part of the chain: left as written, it still verifies
