"""Templates of an access review work whatever the audience's columns are called, are tried with a row of the audience
at create and at launch, and an author's template error fails the run visibly: never Message Delivery Failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from review_support import rows, work_and_digest

from campaignkit.core.campaigns.retry import retry_failed_runs
from campaignkit.core.errors import DefinitionError
from campaignkit.plugins.access_review.history import history_summary

CUSTOM = """login,mail,system,reviewer
ada,ada@example.org,Payroll,grace@example.org
linus,linus@example.org,Git,grace@example.org
"""
REVIEW = """
name: Renamed columns
kind: access_review
audience: {{source: csv, path: {path}}}
schedule: {{end_after: P14D}}
settings:
  channel: smtp
  user_column: login
  user_email_column: mail
  application_column: system
  approver_column: reviewer
{extra}
"""


@pytest.fixture
def ck_settings(ck_settings: dict[str, Any], ck_smtp: Any, tmp_path: Path) -> dict[str, Any]:
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    return {**ck_settings, "template_dirs": [overrides],
            "plugins": {"config": {"smtp": ck_smtp.channel_config(sender="reviews@example.org")}}}


def override(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "overrides" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_bundled_templates_work_with_any_column_names(ck_campaign: Any, ck_smtp: Any) -> None:
    campaign_id = ck_campaign.create(REVIEW.format(path=ck_campaign.csv(CUSTOM), extra=""))
    ck_campaign.launch(campaign_id)
    ck_campaign.run_to_idle()
    bodies = sorted(" ".join(message.get_body(("plain",)).get_content().split()) for message in ck_smtp.wait_for(2))
    assert "whether ada (ada@example.org) should keep access to Payroll" in bodies[0]
    assert "whether linus (linus@example.org) should keep access to Git" in bodies[1]
    assert all(r["Response Status"] == "Pending Response" for r in rows(ck_campaign, campaign_id).values())


def test_a_template_that_does_not_fit_the_audience_is_refused_at_create_with_its_file_and_line(
        ck_campaign: Any, tmp_path: Path) -> None:
    broken = override(tmp_path, "email/access_review/request/body.txt", "Hello,\n\n{{ target.user }} wants access.\n")
    with pytest.raises(DefinitionError) as refused:
        ck_campaign.create(REVIEW.format(path=ck_campaign.csv(CUSTOM), extra=""))
    [problem] = refused.value.problems
    assert f"{broken}, line 3: 'dict object' has no attribute 'user'" in problem
    assert "node 'request'" in problem and "audience.csv:2" in problem
    assert ck_campaign.campaigns.runtime.engine.connect().exec_driver_sql(
        "select count(*) from campaigns").scalar() == 0


def test_a_problem_in_the_workflow_the_settings_build_points_at_the_settings(ck_campaign: Any) -> None:
    with pytest.raises(DefinitionError) as refused:
        ck_campaign.create(REVIEW.format(path=ck_campaign.csv(CUSTOM), extra="").replace("smtp", "pigeon"))
    problems = refused.value.problems
    assert problems and all(p.startswith("test.yaml:6:1: workflow.nodes[") for p in problems), problems
    assert "(node 'request'): no channel named 'pigeon'" in problems[0]


def test_a_digest_review_needs_its_digest_templates_at_create(ck_campaign: Any, tmp_path: Path) -> None:
    for kind in ("request", "reminder"):
        for name in ("subject.txt", "body.txt"):
            override(tmp_path, f"email/ours/{kind}/{name}", "{{ review.user }}\n")
    with pytest.raises(DefinitionError) as refused:
        ck_campaign.create(REVIEW.format(path=ck_campaign.csv(CUSTOM), extra="  digest: true\n  templates: email/ours"))
    assert "template 'email/ours/digest/subject.txt' not found" in refused.value.problems[0]
    override(tmp_path, "email/ours/digest/subject.txt", "{{ items|length }} items\n")
    override(tmp_path, "email/ours/digest/body.txt", "{% for item in items %}{{ item.login }}{% endfor %}\n")
    with pytest.raises(DefinitionError) as refused:  # the digest's items have stable names, not the CSV's
        ck_campaign.create(REVIEW.format(path=ck_campaign.csv(CUSTOM), extra="  digest: true\n  templates: email/ours"))
    assert "body.txt, line 1: 'dict object' has no attribute 'login'" in refused.value.problems[0]


JOURNEY = """
name: Departments
audience: {source: csv, path: contacts.csv}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: hello}
    - id: hello
      type: send_message
      config: {channel: log, to: "{{ target.email }}", subject: Hi, text: "Welcome to {{ target.department }}"}
      next: done
    - {id: done, type: left_campaign}
"""


def test_a_launch_is_refused_when_its_audience_does_not_fit_the_templates(ck_campaign: Any) -> None:
    ck_campaign.csv("key,email,department\nk1,a@example.org,Sales\n", "contacts.csv")
    campaign_id = ck_campaign.create(JOURNEY)
    other = ck_campaign.csv("key,email\nk1,a@example.org\nk2,b@example.org\n", "other.csv")
    with pytest.raises(DefinitionError) as refused:
        ck_campaign.launch(campaign_id, other)
    [problem] = refused.value.problems
    assert "'dict object' has no attribute 'department'" in problem and f"{other}:2" in problem
    assert ck_campaign.runs(campaign_id) == [] and ck_campaign.campaigns.get(campaign_id)["state"] == "draft"


def test_an_authors_template_error_fails_the_run_and_a_retry_after_the_fix_sends_it(
        ck_campaign: Any, ck_smtp: Any, tmp_path: Path) -> None:
    # Only linus's row breaks it, and the check at launch renders ada's: the error surfaces at linus's send.
    body = override(tmp_path, "email/access_review/request/body.txt",
                    "Decide: {{ links.decision }}\n{% if review.user == 'linus' %}{{ target.team }}{% endif %}\n")
    campaign_id = ck_campaign.create(REVIEW.format(path=ck_campaign.csv(CUSTOM), extra=""))
    ck_campaign.launch(campaign_id)
    ck_campaign.run_to_idle()
    linus = next(r for r in ck_campaign.runs(campaign_id) if r.target_key == "linus|Git")
    assert linus.status == "failed" and f"{body}, line 2" in linus.error and "'team'" in linus.error
    history = rows(ck_campaign, campaign_id)
    assert history[("linus", "Git")]["Response Status"] == "Pending Response"  # not Message Delivery Failed
    assert history_summary(ck_campaign.runtime, campaign_id)["Message Delivery Failed"] == 0
    assert [m["To"] for m in ck_smtp.wait_for(1)] == ["grace@example.org"]

    body.write_text("Decide: {{ links.decision }}\n")  # the author fixes the template
    assert retry_failed_runs(ck_campaign.runtime, campaign_id, ck_campaign.actor) == 1
    ck_campaign.run_to_idle()
    assert len(ck_smtp.wait_for(2)) == 2
    linus = next(r for r in ck_campaign.runs(campaign_id) if r.target_key == "linus|Git")
    assert linus.status == "waiting" and linus.error is None
    [retried] = ck_campaign.audit("Force Workflow Status")
    assert "from node 'request'" in retried.details and "line 2" in retried.details


def test_a_digest_whose_template_breaks_keeps_its_items_pending_until_the_fix(ck_campaign: Any, ck_smtp: Any,
                                                                              tmp_path: Path, ck_clock: Any) -> None:
    from campaignkit.plugins.access_review.digests import DigestSender

    body = override(tmp_path, "email/access_review/digest/body.txt", "{% for item in items %}{{ item.user }}\n"
                                                                     "{% endfor %}")
    campaign_id = ck_campaign.create(REVIEW.format(path=ck_campaign.csv(CUSTOM), extra="  digest: true"))
    ck_campaign.launch(campaign_id)
    body.write_text("{{ items[0].nope }}\n")  # edited, and broken, after the launch checked it
    stats = work_and_digest(ck_campaign)
    assert (stats.sent, stats.retrying, stats.failed) == (0, 1, 0)
    assert history_summary(ck_campaign.runtime, campaign_id)["Pending Response"] == 2
    assert ck_smtp.messages == []
    body.write_text("{% for item in items %}{{ item.user }}: {{ item.link }}\n{% endfor %}")
    ck_clock.advance(61)
    assert DigestSender(ck_campaign.runtime).send_due().sent == 1
    [message] = ck_smtp.wait_for(1)
    assert message.get_body(("plain",)).get_content().startswith("ada: http")


# --- item 8: the review's own retry policy for its field updates and enforcement ----------------------------------

class SlowDirectory:
    """An enforcement action whose directory answers too slowly, then refuses for a while, as real ones do."""

    __name__ = "slow_directory"

    def __init__(self) -> None:
        from campaignkit.core import EnforcementAction, EnforcementRequest, EnforcementResult, StepError, hookimpl

        self.calls: list[str] = []
        plugin = self

        class Directory(EnforcementAction):
            name = "slow"

            def enforce(self, request: EnforcementRequest) -> EnforcementResult:
                plugin.calls.append(request.idempotency_key)
                if len(plugin.calls) == 1:
                    import time

                    time.sleep(1.5)  # longer than the review's timeout_seconds
                raise StepError("directory busy")

        self.register_enforcement_actions = hookimpl(lambda: [Directory])


def test_enforcement_takes_the_reviews_retry_policy_and_timeout(ck_make_campaign: Any, ck_clock: Any) -> None:
    from campaignkit.core.engine.events import send_event

    directory = SlowDirectory()
    harness = ck_make_campaign(extra_plugins=(directory,))
    extra = ("  channel: log\n  on_revoke: revoke\n  enforcement: slow\n  timeout_seconds: 0.5\n"
             "  retry: {max_attempts: 4, backoff_seconds: 10, backoff_factor: 1}")
    campaign_id = harness.create(REVIEW.format(path=harness.csv(CUSTOM), extra=extra).replace("  channel: smtp\n", ""))
    harness.launch(campaign_id)
    harness.run_to_idle()
    ada = next(r for r in harness.runs(campaign_id) if r.target_key == "ada|Payroll")
    send_event(harness.runtime, ada.id, "revoked", {"approver": "grace@example.org"})
    harness.run_to_idle()
    [enforce] = [s for s in harness.steps(ada.id) if s.node_id == "enforce"]
    assert (enforce.outcome, enforce.detail["error"]) == ("retrying", "timed out after 0.5s")
    for _ in range(3):
        ck_clock.advance(10)  # backoff_seconds: 10, not the default 30
        harness.run_to_idle()
    assert len(directory.calls) == 4 and len(set(directory.calls)) == 1  # four attempts, one idempotency key
    [enforce] = [s for s in harness.steps(ada.id) if s.node_id == "enforce"]
    assert (enforce.attempt, enforce.outcome) == (4, "failed")
    assert enforce.detail["error"] == "directory busy"
    row = rows(harness, campaign_id)[("ada", "Payroll")]
    assert (row["Response Status"], row["Result"]) == ("Revoked", "Failure")


def test_values_a_database_would_refuse_fail_the_run_on_both(ck_campaign: Any) -> None:
    flow = """
name: Outcomes
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: note}
    - {id: note, type: record_outcome, config: {response: "{{ target.answer }}"}, next: done}
    - {id: done, type: left_campaign}
"""
    runs = ck_campaign.run_campaign(flow, "key,answer\nok,Approved\nlong," + "x" * 41 + "\n")
    assert [(r.status, r.response) for r in runs] == [("completed", "Approved"), ("failed", None)]
    assert "response rendered 41 characters; at most 40" in runs[1].error
