"""Editing a running journey: runs in progress take up the new version (a changed template, a new node), a removed
node's runs go where node_mappings says or finish on their version, finished runs keep theirs; the edit's audit
record has the new version and says what happened to the runs."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from campaignkit.core.db import reading
from campaignkit.core.db.schema import audit_history
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.errors import DefinitionError

V1 = """
name: Onboarding
version: "1.0"
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: time_delay, config: {duration: P1D}, next: mail}
    - id: mail
      type: send_message
      config: {channel: file, subject: "Welcome {{ target.name }}", text: "Hello"}
      next: done
    - {id: done, type: left_campaign}
"""
# The subject changes and a node is added after the email.
PAUSE = "    - {id: pause, type: time_delay, config: {duration: PT1H}, next: done}\n"
V2 = V1.replace("Welcome {{ target.name }}", "Welcome aboard, {{ target.name }}").replace(
    "      next: done\n", "      next: pause\n" + PAUSE)
TWO_WAITS = """
name: Two waits
version: "1.0"
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: first}
    - {id: first, type: time_delay, config: {duration: P1D}, next: second}
    - {id: second, type: time_delay, config: {duration: P2D}, next: done}
    - {id: done, type: left_campaign}
"""
# The first wait removed: its runs go to the second wait when the mapping says so.
ONE_WAIT = """
name: Two waits
workflow:
  node_mappings: MAPPING
  nodes:
    - {id: start, type: entered_campaign, next: second}
    - {id: second, type: time_delay, config: {duration: P2D}, next: done}
    - {id: done, type: left_campaign}
"""
AUDIENCE = "key,email,name\nada,ada@example.org,Ada\nbob,bob@example.org,Bob\n"


def edit(harness: Any, campaign_id: str, text: str) -> tuple[int, int]:
    runtime = harness.runtime
    loaded = load_definition_text(text, "edited.yaml", runtime.settings.definitions, runtime.kinds)
    return harness.campaigns.update(campaign_id, loaded, harness.actor)  # type: ignore[no-any-return]


def edited_audit(harness: Any) -> Any:
    with reading(harness.runtime.engine) as conn:
        return conn.execute(select(audit_history).where(audit_history.c.audit_sub_type == "Edited")
                            .order_by(audit_history.c.audit_id.desc())).first()


def subjects(harness: Any) -> list[str]:
    found = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
             for p in sorted((harness.runtime.settings.var_dir / "outbox").glob("*.eml"))]
    return sorted(str(m["Subject"]) for m in found)


def test_runs_in_progress_take_up_the_new_template_and_node_and_keep_their_wake_up_time(
        harness: Any, clock: Any) -> None:
    campaign_id = harness.create(V1)
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    harness.run_to_idle()
    waiting = {r.target_key: r for r in harness.runs(campaign_id)}
    assert {r.status for r in waiting.values()} == {"waiting"}

    assert edit(harness, campaign_id, V2) == (1, 1)
    version_id = harness.campaigns.get(campaign_id)["current_version_id"]
    moved = {r.target_key: r for r in harness.runs(campaign_id)}
    assert {r.version_id for r in moved.values()} == {version_id}
    assert {k: (r.status, r.current_node, r.due_at) for k, r in moved.items()} == {
        k: ("waiting", "wait", r.due_at) for k, r in waiting.items()}  # the wait they were in is not restarted
    audited = edited_audit(harness)
    assert (audited.version_major, audited.version_minor) == (1, 1)
    assert audited.details == "version 1.1; 2 run(s) in progress moved onto it"

    clock.advance(timedelta(days=1))
    harness.run_to_idle()
    assert subjects(harness) == ["Welcome aboard, Ada", "Welcome aboard, Bob"]
    assert {r.current_node for r in harness.runs(campaign_id)} == {"pause"}  # the node the new version added
    clock.advance(timedelta(hours=1))
    harness.run_to_idle()
    assert {r.status for r in harness.runs(campaign_id)} == {"completed"}


def test_finished_runs_keep_the_version_they_ran(harness: Any, clock: Any) -> None:
    campaign_id = harness.create(V1)
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    harness.run_to_idle()
    clock.advance(timedelta(days=1))
    harness.run_to_idle()
    finished = {r.target_key: r.version_id for r in harness.runs(campaign_id)}
    assert {r.status for r in harness.runs(campaign_id)} == {"completed"}
    edit(harness, campaign_id, V2)
    assert {r.target_key: r.version_id for r in harness.runs(campaign_id)} == finished
    assert edited_audit(harness).details == "version 1.1; no run in progress"


def test_a_removed_node_s_runs_go_where_the_mapping_says_as_a_new_visit(harness: Any, clock: Any) -> None:
    campaign_id = harness.create(TWO_WAITS)
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    harness.run_to_idle()
    assert {r.current_node for r in harness.runs(campaign_id)} == {"first"}

    clock.advance(timedelta(hours=6))
    edit(harness, campaign_id, ONE_WAIT.replace("MAPPING", "{first: second}"))
    assert edited_audit(harness).details == ("version 1.1; 2 run(s) in progress moved onto it; 2 from node 'first' "
                                             "to 'second' (node_mappings)")
    remapped = harness.runs(campaign_id)
    assert {(r.status, r.current_node, r.due_at) for r in remapped} == {("active", "second", clock.now())}
    harness.run_to_idle()  # the second wait starts now, as a new visit: two days from the edit
    assert {r.due_at for r in harness.runs(campaign_id)} == {clock.now() + timedelta(days=2)}
    clock.advance(timedelta(days=2))
    harness.run_to_idle()
    assert {r.status for r in harness.runs(campaign_id)} == {"completed"}
    steps = [s.node_id for s in harness.steps(remapped[0].id)]
    assert steps[-2:] == ["second", "done"] and "first" in steps  # its history on the old version stays


def test_without_a_mapping_a_removed_node_s_runs_finish_on_their_version(harness: Any, clock: Any) -> None:
    campaign_id = harness.create(TWO_WAITS)
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    harness.run_to_idle()
    before = {r.target_key: (r.version_id, r.due_at) for r in harness.runs(campaign_id)}
    edit(harness, campaign_id, ONE_WAIT.replace("MAPPING", "{}"))
    assert edited_audit(harness).details == ("version 1.1; 0 run(s) in progress moved onto it; 2 kept on their "
                                             "version at node 'first', which it removed")
    assert {r.target_key: (r.version_id, r.due_at) for r in harness.runs(campaign_id)} == before
    for days in (1, 2):  # the old version's first wait, then its second
        clock.advance(timedelta(days=days))
        harness.run_to_idle()
    assert {r.status for r in harness.runs(campaign_id)} == {"completed"}


@pytest.mark.parametrize(("mapping", "problem"), [
    ("{second: done}", "workflow.node_mappings.second: 'second' is a node of this version: a mapping is for nodes "
                       "it removed"),
    ("{first: secnd}", "workflow.node_mappings.first: maps 'first' to unknown node 'secnd'; did you mean 'second'?"),
])
def test_a_mapping_that_cannot_apply_is_refused_naming_its_key(harness: Any, mapping: str, problem: str) -> None:
    campaign_id = harness.create(TWO_WAITS)
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    version_id = harness.campaigns.get(campaign_id)["current_version_id"]
    with pytest.raises(DefinitionError) as refused:
        edit(harness, campaign_id, ONE_WAIT.replace("MAPPING", mapping))
    assert any(problem in line for line in refused.value.problems), refused.value.problems
    assert harness.campaigns.get(campaign_id)["current_version_id"] == version_id  # nothing was saved
    assert {r.version_id for r in harness.runs(campaign_id)} == {version_id}


def test_a_run_a_worker_holds_during_the_edit_stays_on_its_version(harness: Any, clock: Any) -> None:
    from campaignkit.core.engine.worker import Worker

    campaign_id = harness.create(V1)
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    harness.run_to_idle()
    clock.advance(timedelta(days=1))
    worker = Worker(harness.runtime)
    taken = worker._claim(clock.now())  # both runs, due after their wait: the worker is about to send
    assert len(taken) == 2
    before = {r.version_id for r in harness.runs(campaign_id)}
    edit(harness, campaign_id, V2)
    assert edited_audit(harness).details == ("version 1.1; 0 run(s) in progress moved onto it; 2 kept on their "
                                             "version: a worker was running their step")
    worker._process(taken)  # the old version's template, as the worker had begun
    assert {r.version_id for r in harness.runs(campaign_id)} == before
    assert subjects(harness) == ["Welcome Ada", "Welcome Bob"]
    worker.close()


def test_a_run_at_a_node_its_version_lacks_fails_alone_not_its_batch(harness: Any, clock: Any) -> None:
    from sqlalchemy import update

    from campaignkit.core.db import writing
    from campaignkit.core.db.schema import runs

    campaign_id = harness.create(TWO_WAITS)
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    harness.run_to_idle()
    with writing(harness.runtime.engine) as conn:  # as a hand-made change of the database could leave it
        conn.execute(update(runs).where(runs.c.campaign_id == campaign_id, runs.c.target_key == "bob")
                     .values(current_node="ghost"))
    clock.advance(timedelta(days=1))
    harness.run_to_idle()
    found = {r.target_key: r for r in harness.runs(campaign_id)}
    assert (found["bob"].status, found["bob"].error) == (
        "failed", "ghost: its version of the workflow has no such node (see `campaignkit runs repair`)")
    assert (found["ada"].status, found["ada"].current_node) == ("waiting", "second")


def test_a_run_at_a_removed_node_that_its_version_maps_goes_on_there(harness: Any, clock: Any) -> None:
    from sqlalchemy import update

    from campaignkit.core.db import writing
    from campaignkit.core.db.schema import runs

    campaign_id = harness.create(TWO_WAITS)
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    harness.run_to_idle()
    edit(harness, campaign_id, ONE_WAIT.replace("MAPPING", "{first: second}"))
    version_id = harness.campaigns.get(campaign_id)["current_version_id"]
    with writing(harness.runtime.engine) as conn:  # a run put on the new version at the removed node, by hand
        conn.execute(update(runs).where(runs.c.campaign_id == campaign_id, runs.c.target_key == "bob")
                     .values(current_node="first", version_id=version_id, status="active", due_at=clock.now()))
    harness.run_to_idle()
    bob = next(r for r in harness.runs(campaign_id) if r.target_key == "bob")
    assert (bob.status, bob.current_node, bob.due_at) == ("waiting", "second", clock.now() + timedelta(days=2))
