"""Searching a campaign's runs by the start of the target key: case aside, LIKE's own characters taken literally,
and served by an index on both databases (the executions page, the API and `campaignkit runs --search`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from campaignkit.core.campaigns.queries import RunQuery, list_runs

FLOW = """
name: Searched
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: end}}
    - {id: end, type: left_campaign}
"""
KEYS = ["Ada.Lovelace@example.org", "ada@example.org", "adam@example.org", "a_b@example.org", "axb@example.org",
        "a%c@example.org", "abc@example.org", "grace@example.org", "zoë@example.org"]


def found(harness: Any, campaign_id: str, search: str) -> list[str]:
    return [row["target_key"] for row in list_runs(harness.runtime, RunQuery(campaign_id, search=search,
                                                                             sort="target", limit=100))]


def test_the_start_of_the_key_case_aside(harness: Any) -> None:
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key\n" + "\n".join(KEYS) + "\n"))
    assert found(harness, campaign_id, "ada") == ["Ada.Lovelace@example.org", "ada@example.org", "adam@example.org"]
    assert found(harness, campaign_id, "ADA@") == ["ada@example.org"]
    assert found(harness, campaign_id, "lovelace") == []  # the start only
    assert found(harness, campaign_id, "a_") == ["a_b@example.org"]  # not "any one character"
    assert found(harness, campaign_id, "a%") == ["a%c@example.org"]
    assert found(harness, campaign_id, "zoë") == ["zoë@example.org"]
    assert found(harness, campaign_id, "nobody") == []


def test_the_search_reads_an_index(harness: Any) -> None:
    campaign_id = harness.create(FLOW)
    others = "".join(f"user{i}@example.org\n" for i in range(3000))
    harness.launch(campaign_id, harness.csv("key\n" + "\n".join(KEYS) + "\n" + others))
    engine = harness.runtime.engine
    statement = RunQuery(campaign_id, search="ada", sort="created").statement(engine.dialect.name)
    compiled = str(statement.compile(engine, compile_kwargs={"literal_binds": True})).replace("%%", "%")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE runs"))
        explain = "EXPLAIN" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
        plan = " ".join(str(row[-1]) for row in conn.execute(text(f"{explain} {compiled}")))
    assert {"postgresql": "ix_runs_campaign_id_lower_target_key", "sqlite": "ix_runs_campaign_id_target_key_nocase"}[
        engine.dialect.name] in plan, plan
