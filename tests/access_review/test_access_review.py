"""Access reviews end to end: emails through a real SMTP server, decisions through the real web app."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from review_support import (
    ALL_LINK,
    AUDIENCE,
    ITEM_LINK,
    REVIEW,
    audits,
    decide,
    rows,
    work_and_digest,
)
from sqlalchemy import select

from campaignkit.core.db.schema import targets
from campaignkit.plugins.access_review.history import history_summary


def test_requests_decisions_history_and_fields(review: Any, clock: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch()
    assert sorted(to for to, _, _ in inbox.messages) == [
        "grace@example.org", "grace@example.org", "linus@example.org", "security@example.org"]
    history = rows(harness, campaign_id)
    assert history[("linus", "Git")]["Approver"] == "security@example.org"  # no self-review
    assert history[("margaret", "Payroll")]["Response Status"] == "Message Delivery Failed"
    assert history[("alan", "CRM")]["Response Status"] == "Message Delivery Failed"
    assert history[("ada", "Payroll")]["Response Status"] == "Pending Response"

    grace_links = inbox.links_for("grace@example.org")
    page = httpx.get(grace_links[0])  # a GET (or a mail scanner) decides nothing
    assert page.status_code == 200 and 'id="approve"' in page.text and "no-referrer" in page.headers[
        "Referrer-Policy"]
    user = re.search(r'id="user">([^<]+)<', page.text).group(1)  # type: ignore[union-attr]
    decided = decide(grace_links[0], "approve", page)
    assert decided.status_code == 200 and "Approved" in decided.text
    other = grace_links[1]
    assert "Revoked" in decide(other, "revoke").text
    replay = decide(grace_links[0], "revoke", page)  # the same form sent again
    assert replay.status_code == 200 and "Already decided" in replay.text and "Approved" in replay.text
    clock.advance(60)
    harness.run_to_idle()

    history = rows(harness, campaign_id)
    approved = next(r for (u, _), r in history.items() if u == user and r["Response Status"] == "Approved")
    assert approved["Result"] == "Success" and approved["Action Time"] is not None
    assert approved["Approver"] == "grace@example.org"
    revoked = [r for r in history.values() if r["Response Status"] == "Revoked"]
    assert len(revoked) == 1 and revoked[0]["Result"] == "Success"
    with harness.runtime.engine.connect() as conn:
        fields = dict(conn.execute(select(targets.c.key, targets.c.custom_fields)).all())
    approved_key = f"{approved['User']}|{approved['Application']}"
    assert fields[approved_key]["Campaigns Approval"]["value"] == "Approved"
    assert fields[approved_key]["Campaigns Approval"]["approver"] == "grace@example.org"
    decisions = audits(harness, "Decision Recorded")
    assert {a.user_name for a in decisions} == {"grace@example.org"} and len(decisions) == 2
    assert history_summary(harness.runtime, campaign_id) == {
        "Pending Response": 2, "Message Delivery Failed": 2, "Approved": 1, "Revoked": 1, "Terminated": 0}

    harness.campaigns.terminate(campaign_id, harness.actor)
    summary = history_summary(harness.runtime, campaign_id)
    assert summary["Terminated"] == 2 and summary["Pending Response"] == 0
    closed = decide(inbox.links_for("linus@example.org")[0], "approve")
    assert closed.status_code == 410 and "closed" in closed.text
    assert rows(harness, campaign_id)[("ada", "Git")]["Response Status"] == "Terminated"


def test_forged_tampered_and_expired_links_change_nothing(review: Any, clock: Any) -> None:
    harness, inbox, launch, url = review
    campaign_id = launch()
    link = inbox.links_for("linus@example.org")[0]
    assert httpx.post(f"{url}/review/not-a-token", data={"choice": "approve"}).status_code == 404
    tampered = link[:-3] + ("abc" if not link.endswith("abc") else "xyz")
    assert httpx.post(tampered, data={"choice": "approve"}).status_code == 404
    clock.advance(timedelta(days=14, seconds=1))
    expired = httpx.post(link, data={"choice": "approve"})
    assert expired.status_code == 410 and "expired" in expired.text
    assert history_summary(harness.runtime, campaign_id)["Approved"] == 0
    rejected = audits(harness, "Link Rejected")
    # The forged and the tampered link are one refusal reason from one address: audited once, then counted, and
    # the count is written when the window has closed (here: at the next refusal, 14 days later).
    assert [a.details for a in rejected] == [
        "review link rejected: this link is not valid",
        rejected[1].details, "review link rejected: this link has expired"]
    assert "rejected 1 more time(s) from this address" in rejected[1].details
    assert all(a.audit_type == "Security" and a.computer_ip == "127.0.0.1" for a in rejected)
    assert all(link.rsplit("/", 1)[1] not in (a.details or "") for a in rejected)  # tokens are never logged


def test_reminders_then_escalation_then_deadline(review: Any, clock: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch()
    sent_before = len(inbox.messages)
    clock.advance(timedelta(days=3, seconds=1))
    harness.run_to_idle()
    reminders = [m for m in inbox.messages[sent_before:] if m[1].startswith("Reminder")]
    assert sorted(to for to, _, _ in reminders) == ["grace@example.org", "grace@example.org",
                                                    "linus@example.org", "security@example.org"]
    clock.advance(timedelta(days=3))
    harness.run_to_idle()
    history = rows(harness, campaign_id)
    assert history[("ada", "Git")]["Approver"] == "security@example.org"  # escalated after 5 days
    escalated = [m for m in inbox.messages if m[0] == "security@example.org" and "ada" in m[1]]
    assert escalated and escalated[-1][1].startswith("Access review")
    clock.advance(timedelta(days=9))
    assert harness.campaigns.apply_due_deadlines(harness.actor) == 4
    harness.run_to_idle()
    assert history_summary(harness.runtime, campaign_id)["Pending Response"] == 4  # if_no_response: keep
    assert harness.campaigns.get(campaign_id)["state"] == "completed"


def test_no_response_can_revoke_at_the_deadline(review: Any, clock: Any) -> None:
    harness, _, launch, _ = review
    campaign_id = launch("  if_no_response: revoke")
    clock.advance(timedelta(days=14))
    harness.campaigns.apply_due_deadlines(harness.actor)
    harness.run_to_idle()
    summary = history_summary(harness.runtime, campaign_id)
    assert summary["Revoked"] == 4 and summary["Pending Response"] == 0


class FlakyRevoker:
    """An enforcement action that fails until told to work, as a directory that is down would."""

    __name__ = "flaky_revoker"

    def __init__(self) -> None:
        from campaignkit.core import EnforcementAction, EnforcementRequest, EnforcementResult, hookimpl

        self.working = False
        self.calls: list[tuple[str, str]] = []
        plugin = self

        class Revoker(EnforcementAction):
            name = "flaky"

            def enforce(self, request: EnforcementRequest) -> EnforcementResult:
                plugin.calls.append((request.params["user"], request.idempotency_key))
                return EnforcementResult(removed=plugin.working, detail={"directory": "up" if plugin.working
                                                                         else "down"})

        self.action = Revoker
        self.register_enforcement_actions = hookimpl(lambda: [self.action])


def test_revoke_with_enforcement_failure_then_retry(make_runtime: Any, actor: Any, tmp_path: Any) -> None:
    from conftest import Harness

    from campaignkit.core.engine.events import send_event
    from campaignkit.plugins.access_review.operations import retry_enforcement

    revoker = FlakyRevoker()
    harness = Harness(make_runtime(extra_plugins=(revoker,)), actor, tmp_path)
    audience = harness.csv(AUDIENCE)
    campaign_id = harness.create(REVIEW.format(path=audience, extra="  on_revoke: revoke\n  enforcement: flaky")
                                 .replace("channel: smtp", "channel: log"))
    harness.campaigns.launch(campaign_id, actor)
    harness.run_to_idle()
    ada_git = next(r for r in harness.runs(campaign_id) if r.target_key == "ada|Git")
    send_event(harness.runtime, ada_git.id, "revoked", {"approver": "linus@example.org"})
    harness.run_to_idle()
    row = rows(harness, campaign_id)[("ada", "Git")]
    assert (row["Response Status"], row["Result"]) == ("Revoked", "Failure")
    revoker.working = True
    assert retry_enforcement(harness.runtime, campaign_id, actor) == 1
    harness.run_to_idle()
    row = rows(harness, campaign_id)[("ada", "Git")]
    assert (row["Response Status"], row["Result"]) == ("Revoked", "Success")
    assert [user for user, _ in revoker.calls] == ["ada", "ada"] and len({k for _, k in revoker.calls}) == 2
    assert [a.details for a in audits(harness, "Force Workflow Status")] == [
        f"retry enforcement for ada|Git (run {ada_git.id})"]


def test_an_audience_given_at_launch_is_keyed_by_the_review(make_runtime: Any, actor: Any, tmp_path: Any) -> None:
    """A definition without an audience table, launched with --audience: one run per user and application still."""
    from conftest import Harness

    harness = Harness(make_runtime(), actor, tmp_path)
    definition = REVIEW.format(path="unused.csv", extra="").replace("channel: smtp", "channel: log")
    campaign_id = harness.create(definition.replace("audience: {source: csv, path: unused.csv}\n", ""))
    assert harness.launch(campaign_id, harness.csv(AUDIENCE)) == 6
    keys = sorted(run.target_key for run in harness.runs(campaign_id))
    assert keys == ["ada|Git", "ada|Payroll", "alan|CRM", "barbara|CRM", "linus|Git", "margaret|Payroll"]


def test_a_revoking_review_needs_confirmation_at_launch(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "review.csv").write_text(AUDIENCE)
    (tmp_path / "review.yaml").write_text(REVIEW.format(path="review.csv", extra="  if_no_response: revoke")
                                          .replace("channel: smtp", "channel: log"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNKIT_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from campaignkit.core.cli import main; main()", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    cli("init")
    cli("campaign", "create", "review.yaml")
    refused = cli("campaign", "launch", "Quarterly access review")
    assert refused.returncode == 1 and "6 access(es) could be removed" in refused.stderr
    assert "Traceback" not in refused.stderr
    launched = cli("campaign", "launch", "Quarterly access review", "--yes")
    assert launched.returncode == 0 and "6 run(s)" in launched.stdout


# --- digests ------------------------------------------------------------------------------------------------------

def test_a_digest_is_one_email_per_approver_with_every_item(review: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch("  digest: true")
    assert inbox.messages == []  # runs mark themselves; nothing is sent per item
    stats = work_and_digest(harness)
    assert (stats.sent, stats.failed) == (3, 1)  # grace, linus, security; not-an-address fails
    by_rcpt = {to: (subject, text) for to, subject, text in inbox.messages}
    assert sorted(to for to, _, _ in inbox.messages) == ["grace@example.org", "linus@example.org",
                                                         "security@example.org"]
    subject, text = by_rcpt["grace@example.org"]
    assert subject == "Quarterly access review: 2 access reviews waiting for you"
    assert "ada (ada@example.org) on Payroll" in text and "barbara (barbara@example.org) on CRM" in text
    assert len(ITEM_LINK.findall(text)) == 2 and len(ALL_LINK.findall(text)) == 1  # one per item, one for all
    history = rows(harness, campaign_id)
    assert history[("alan", "CRM")]["Response Status"] == "Message Delivery Failed"
    assert history[("margaret", "Payroll")]["Response Status"] == "Message Delivery Failed"
    assert history[("ada", "Payroll")]["Response Status"] == "Pending Response"
    assert work_and_digest(harness).sent == 0  # sent once: nothing new, nothing due
    assert len(inbox.messages) == 3

    from campaignkit.core.campaigns.queries import run_timeline

    alan = next(r for r in harness.runs(campaign_id) if r.target_key == "alan|CRM")
    failed = run_timeline(harness.runtime, alan.id)
    assert [d["status"] for d in failed["digests"]] == ["failed"]
    assert "invalid recipient address" in failed["digests"][0]["error"]
    assert "invalid recipient address" in failed["run"]["context"]["delivery_error"]


def test_approve_all_decides_every_pending_item_once(review: Any, clock: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch("  digest: true")
    work_and_digest(harness)
    text, all_link = inbox.text_for("grace@example.org"), inbox.review_all_for("grace@example.org")
    item_links = ITEM_LINK.findall(text)

    # One item decided on its own first: approve-all leaves it as it is.
    assert "Revoked" in decide(item_links[1], "revoke").text
    page = httpx.get(all_link)  # a GET decides nothing
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    assert re.search(r'id="pending">1<', page.text) and 'id="approve"' in page.text
    done = decide(all_link, "approve", page)
    assert done.status_code == 200 and re.search(r'id="decided">1<', done.text)
    replay = decide(all_link, "revoke", page)
    assert replay.status_code == 200 and "nothing was changed" in replay.text
    clock.advance(60)
    work_and_digest(harness)

    history = rows(harness, campaign_id)
    assert (history[("ada", "Payroll")]["Response Status"], history[("ada", "Payroll")]["Result"]) == (
        "Approved", "Success")
    assert history[("barbara", "CRM")]["Response Status"] == "Revoked"
    decisions = audits(harness, "Decision Recorded")
    assert len(decisions) == 2 and {a.user_name for a in decisions} == {"grace@example.org"}
    assert any("all at once" in (a.details or "") for a in decisions)
    assert history_summary(harness.runtime, campaign_id)["Pending Response"] == 2  # linus's and security's


def test_an_approve_all_post_with_a_malformed_item_list_changes_nothing(review: Any, clock: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch("  digest: true")
    work_and_digest(harness)
    all_link = inbox.review_all_for("grace@example.org")
    page = httpx.get(all_link)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce, page.text
    forged = httpx.post(all_link, data={"choice": "approve", "nonce": nonce.group(1), "run": ["12", "twelve"]})
    assert forged.status_code == 400 and "nothing was changed" in forged.text
    clock.advance(60)
    work_and_digest(harness)
    assert history_summary(harness.runtime, campaign_id)["Approved"] == 0 and not audits(harness, "Decision Recorded")
    (refused,) = audits(harness, "Link Rejected")
    assert "decision POST refused: malformed item list" in (refused.details or "")
    assert decide(all_link, "approve", page).status_code == 200  # the page's own form still works


def test_digest_reminders_and_escalation_are_one_email_each(review: Any, clock: Any) -> None:
    harness, inbox, launch, _ = review
    launch("  digest: true")
    work_and_digest(harness)
    sent_before = len(inbox.messages)
    clock.advance(timedelta(days=3, seconds=1))
    work_and_digest(harness)
    reminders = inbox.messages[sent_before:]
    assert sorted(to for to, _, _ in reminders) == ["grace@example.org", "linus@example.org",
                                                    "security@example.org"]
    assert all(subject.startswith("Reminder: ") for _, subject, _ in reminders)
    assert next(s for to, s, _ in reminders if to == "grace@example.org").endswith("2 access reviews waiting for you")

    sent_before = len(inbox.messages)
    clock.advance(timedelta(days=3))
    work_and_digest(harness)  # past escalate_after: every item goes to the fallback approver
    escalated = inbox.messages[sent_before:]
    assert [to for to, _, _ in escalated] == ["security@example.org"]
    subject, text = escalated[0][1], escalated[0][2]
    assert subject == "Quarterly access review: 4 access reviews waiting for you" and len(ITEM_LINK.findall(text)) == 4


def test_a_digest_that_cannot_be_sent_yet_is_retried_with_the_same_key(review: Any, clock: Any) -> None:
    from campaignkit.core.db.schema import digests
    from campaignkit.plugins.access_review.digests import DigestSender

    harness, inbox, launch, _ = review
    inbox.controller.stop()  # the mail server is down: a refused connection is temporary
    campaign_id = launch("  digest: true")
    stats = work_and_digest(harness)
    assert (stats.sent, stats.retrying, stats.failed) == (0, 3, 1)  # an invalid address fails before connecting
    assert DigestSender(harness.runtime).send_due().retrying == 0  # backing off: not tried again at once
    assert history_summary(harness.runtime, campaign_id)["Message Delivery Failed"] == 2
    assert history_summary(harness.runtime, campaign_id)["Pending Response"] == 4

    inbox.controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    inbox.controller.start()
    clock.advance(61)
    stats = work_and_digest(harness)
    assert (stats.sent, stats.retrying, stats.failed) == (3, 0, 0)
    with harness.runtime.engine.connect() as conn:
        found = conn.execute(select(digests.c.assignee, digests.c.status, digests.c.attempt)
                             .order_by(digests.c.assignee)).all()
    # The same digest row (so the same idempotency key and Message-ID) on the second attempt.
    assert [(r.assignee, r.status, r.attempt) for r in found] == [
        ("grace@example.org", "sent", 2), ("linus@example.org", "sent", 2), ("not-an-address", "failed", 1),
        ("security@example.org", "sent", 2)]
    assert len(inbox.messages) == 3


def digest_of(harness: Any, assignee: str) -> int:
    from campaignkit.core.db.schema import digests

    with harness.runtime.engine.connect() as conn:
        return int(conn.execute(select(digests.c.id).where(digests.c.assignee == assignee)).scalar_one())


def test_review_all_links_are_checked_like_item_links(review: Any, clock: Any) -> None:
    harness, inbox, launch, url = review
    campaign_id = launch("  digest: true")
    work_and_digest(harness)
    text, all_link = inbox.text_for("grace@example.org"), inbox.review_all_for("grace@example.org")
    item_token = ITEM_LINK.search(text).group(0).rsplit("/", 1)[1]  # type: ignore[union-attr]
    # A token made for one item does not open the approve-all page (a salt per purpose).
    assert httpx.post(f"{url}/review/all/{item_token}", data={"choice": "approve"}).status_code == 404
    assert httpx.post(all_link[:-3] + "xyz", data={"choice": "approve"}).status_code == 404
    harness.campaigns.terminate(campaign_id, harness.actor)
    closed = httpx.post(all_link, data={"choice": "approve"})
    assert closed.status_code == 410 and "closed" in closed.text
    assert history_summary(harness.runtime, campaign_id)["Approved"] == 0
    assert [a.details for a in audits(harness, "Link Rejected")] == [  # the same reason twice: audited once
        "review link rejected: this link is not valid",
        f"review link rejected: review closed (digest {digest_of(harness, 'grace@example.org')})"]
