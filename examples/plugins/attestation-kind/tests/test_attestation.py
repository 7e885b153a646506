"""The attestation kind end to end: a definition with ``kind: attestation`` is created, launched and run by
campaignkit's engine; people confirm through the link of their e-mail on the web app served on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from ck_attestation import Attestation
from conftest import AUDIENCE, DEFINITION, fetch, link_in, nonce_in
from typer.testing import CliRunner


def launched(ck_campaign: Any, ck_smtp: Any) -> tuple[str, dict[str, Any]]:
    """The campaign created, launched and run to idle: every request sent. Returns its id and its runs by key."""
    campaign_id = ck_campaign.create(DEFINITION)
    assert ck_campaign.launch(campaign_id, ck_campaign.csv(AUDIENCE)) == 3
    ck_campaign.run_to_idle()
    ck_smtp.wait_for(3)
    return campaign_id, {run.target_key: run for run in ck_campaign.runs(campaign_id)}


def confirm(link: str) -> Any:
    """Open the link's page and press its button, as a browser would."""
    page = fetch(link)
    assert page.status == 200, page.body
    return fetch(link, urlencode({"nonce": nonce_in(page.body)}).encode())


def status(ck_runtime: Any, *args: str) -> Any:
    result = CliRunner().invoke(Attestation.cli(), ["status", *args], obj=lambda: ck_runtime)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_person_confirms_through_their_link_and_the_run_records_it(
    ck_campaign: Any, ck_smtp: Any, ck_runtime: Any, ck_clock: Any, served: str
) -> None:
    campaign_id, runs = launched(ck_campaign, ck_smtp)
    assert {run.status for run in runs.values()} == {"waiting"}  # keyed by address: the kind's audience_key
    (request,) = ck_smtp.to("ada@example.org")
    assert request["Subject"] == "Please confirm: Acceptable use policy"
    link = link_in(request)
    assert link.startswith(f"{served}/attest/")

    page = fetch(link)  # opening the link shows the policy and confirms nothing
    assert page.status == 200 and "Acceptable use policy" in page.body and 'id="confirm"' in page.body
    assert "<p>Company devices are for work.</p>" in page.body
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    ck_campaign.run_to_idle()
    assert ck_campaign.runs(campaign_id)[0].status == "waiting"

    ck_clock.advance(timedelta(hours=1))
    form = urlencode({"nonce": nonce_in(page.body)}).encode()
    done = fetch(link, form, {"Origin": served, "Sec-Fetch-Site": "same-origin"})  # as a browser posts it
    assert done.status == 200 and "Thank you" in done.body
    again = fetch(link)  # before a worker applied it, the page already knows
    assert again.status == 200 and "already confirmed" in again.body and 'id="confirm"' not in again.body
    replayed = fetch(link, form)  # a double click, a reload: nothing more is recorded
    assert replayed.status == 200 and "Already confirmed" in replayed.body

    ck_campaign.run_to_idle()
    ada = next(run for run in ck_campaign.runs(campaign_id) if run.target_key == "ada@example.org")
    assert (ada.status, ada.response, ada.response_at) == ("completed", "Attested", ck_clock.now())
    path = [step.node_id for step in ck_campaign.steps(ada.id)]
    assert path == ["start", "request", "wait_0", "attested", "end"]
    assert ada.context["last_event"]["name"] == "attested"
    assert ada.context["last_event"]["payload"] == {"ip": "127.0.0.1"}
    (recorded,) = ck_campaign.audit("Attestation Recorded")  # once: the replays recorded nothing
    assert (recorded.user_name, recorded.computer_ip, recorded.audit_type) == (
        "ada@example.org",
        "127.0.0.1",
        "Interaction Event",
    )
    assert recorded.object_name == "Acceptable use 2030" and "Acceptable use policy" in recorded.details
    others = [run for run in ck_campaign.runs(campaign_id) if run.id != ada.id]
    assert {(run.status, run.response) for run in others} == {("waiting", None)}

    table = status(ck_runtime, "Acceptable use 2030")
    lines = table.splitlines()
    assert lines[0].split() == ["person", "email", "status", "at"]
    assert "ada@example.org" in lines[1] and "Attested" in lines[1] and ck_clock.now().isoformat()[:19] in lines[1]
    assert "grace@example.org" in table and "Pending" in table
    assert lines[-1] == "Acceptable use 2030, cycle 1: 1 of 3 attested, 2 not"
    pending = json.loads(status(ck_runtime, campaign_id[:8], "--pending", "--json"))
    assert (pending["people"], pending["attested"]) == (3, 1)
    assert [row["person"] for row in pending["rows"]] == ["alan@example.org", "grace@example.org"]
    assert fetch(link).body.count("already confirmed") == 1  # the link still shows what was done


def test_the_command_names_what_is_missing(ck_runtime: Any) -> None:
    unknown = CliRunner().invoke(Attestation.cli(), ["status", "Code of conduct"], obj=lambda: ck_runtime)
    assert unknown.exit_code != 0 and str(unknown.exception) == "no attestation campaign 'Code of conduct'"
    no_runtime = CliRunner().invoke(Attestation.cli(), ["status", "Acceptable use 2030"])
    assert no_runtime.exit_code != 0 and "run it as `campaignkit attestation" in str(no_runtime.exception)


def test_reminders_then_the_deadline_closes_unanswered_runs_and_their_links(
    ck_campaign: Any, ck_smtp: Any, ck_runtime: Any, ck_clock: Any, served: str
) -> None:
    campaign_id, _ = launched(ck_campaign, ck_smtp)
    confirm(link_in(ck_smtp.to("ada@example.org")[0]))
    ck_campaign.run_to_idle()

    ck_clock.advance(timedelta(days=3, seconds=1))  # remind_every P3D, one reminder
    ck_campaign.run_to_idle()
    reminders = ck_smtp.wait_for(5)[3:]
    assert sorted(str(m["To"]) for m in reminders) == ["alan@example.org", "grace@example.org"]
    assert {m["Subject"] for m in reminders} == {"Reminder: please confirm the Acceptable use policy"}
    grace_link = link_in(ck_smtp.to("grace@example.org")[1])
    ck_clock.advance(timedelta(days=7))
    ck_campaign.run_to_idle()
    assert len(ck_smtp.messages) == 5  # no second reminder

    ck_clock.advance(timedelta(days=5))  # past end_after (P14D): the scheduler's deadline job
    ck_campaign.apply_deadlines()
    ck_campaign.run_to_idle()
    final = {run.target_key: run for run in ck_campaign.runs(campaign_id)}
    assert {key: (run.status, run.response) for key, run in final.items()} == {
        "ada@example.org": ("completed", "Attested"),
        "grace@example.org": ("completed", "No Response"),
        "alan@example.org": ("completed", "No Response"),
    }
    assert ck_campaign.campaigns.get(campaign_id)["state"] == "completed"

    closed = fetch(grace_link)  # the link expired with the cycle
    assert closed.status == 410 and "expired" in closed.body
    table = status(ck_runtime, "Acceptable use 2030", "--pending")
    assert "No Response" in table and "ada@" not in table


def test_a_link_works_only_for_its_run_and_until_the_run_ends(ck_campaign: Any, ck_smtp: Any, served: str) -> None:
    campaign_id, _ = launched(ck_campaign, ck_smtp)
    link = link_in(ck_smtp.to("grace@example.org")[0])
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    assert fetch(tampered).status == 404
    assert fetch(f"{served}/attest/not-a-token").status == 404
    ck_campaign.campaigns.terminate(campaign_id, ck_campaign.actor)
    gone = fetch(link)
    assert gone.status == 410 and "closed" in gone.body
    refused = ck_campaign.audit("Link Rejected")
    assert refused and all("attestation link rejected" in record.details for record in refused)
    assert all("/attest/" not in record.details for record in refused)  # the token is a credential


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({"Origin": "https://evil.example"}, "nonce=NONCE", 403, "cross-site confirmation refused (Origin"),
        ({"Sec-Fetch-Site": "cross-site"}, "nonce=NONCE", 403, "cross-site confirmation refused (Sec-Fetch-Site"),
        ({"Content-Type": "application/json"}, '{"nonce": "NONCE"}', 415, "not a form"),
        ({}, "nonce=forged", 400, "without a page of this link"),
        ({}, "confirm=yes", 400, "without a page of this link"),
    ],
)
def test_only_the_page_s_own_form_confirms(
    ck_campaign: Any, ck_smtp: Any, served: str, headers: dict[str, str], body: str, status: int, reason: str
) -> None:
    campaign_id, runs = launched(ck_campaign, ck_smtp)
    link = link_in(ck_smtp.to("ada@example.org")[0])
    nonce = nonce_in(fetch(link).body)
    refused = fetch(link, body.replace("NONCE", nonce).encode(), headers)  # the nonce is URL-safe as it is
    assert refused.status == status, refused.body
    assert "nothing was confirmed" in refused.body or "out of date" in refused.body
    ck_campaign.run_to_idle()
    assert runs["ada@example.org"].id in {run.id for run in ck_campaign.runs(campaign_id) if run.status == "waiting"}
    assert any(reason in record.details for record in ck_campaign.audit("Link Rejected"))


def test_the_confirmation_cannot_be_posted_through_the_api(ck_campaign: Any, ck_smtp: Any, served: str) -> None:
    campaign_id, runs = launched(ck_campaign, ck_smtp)
    ada = runs["ada@example.org"]
    forged = fetch(
        f"{served}/api/runs/{ada.id}/events",
        json.dumps({"name": "attested"}).encode(),
        # An operator's write token: even an account that may send events cannot send this one.
        {"Authorization": f"Bearer {ck_campaign.api_token('operator', 'write')}", "Content-Type": "application/json"},
    )
    assert forged.status == 422, forged.body
    assert "reserved" in forged.body and "attested" in forged.body
    ck_campaign.run_to_idle()
    run = next(run for run in ck_campaign.runs(campaign_id) if run.id == ada.id)
    assert (run.status, run.response) == ("waiting", None)
