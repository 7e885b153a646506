"""A phishing simulation tried with `campaign simulate` first: every recipient's email rendered with their own name and
a sample link, a bounced mailbox shown as Blocklisted, training emails for everyone when the definition says so; and
nothing sent, no results row, no delivery status, no enrolment."""

from __future__ import annotations

from typing import Any

from phishing_support import simulation
from sqlalchemy import func, select

from campaignkit.core.campaigns.simulate import SimulationOptions
from campaignkit.core.campaigns.simulations import run_simulation
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import bounced_mailboxes, phishing_results, runs
from campaignkit.plugins.phishing.vocabulary import SAMPLE_TOKEN

AUDIENCE = "email,name,groups\nada@example.org,Ada Lovelace,Finance\nbob@example.org,Bob Dylan,Sales\n" \
           "cy@example.org,Cy Twombly,Sales\n"


def node(summary: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in summary["nodes"] if n["id"] == node_id)


def test_a_phishing_campaign_is_simulated_with_its_emails_rendered_and_nothing_sent(ck_campaign: Any,
                                                                                    clock: Any) -> None:
    runtime = ck_campaign.runtime
    path = ck_campaign.csv(AUDIENCE, "drill.csv")
    campaign_id = ck_campaign.create(simulation(path, training={"assign": "everyone", "reminders": 0}))
    with writing(runtime.engine) as conn:  # cy's mailbox bounced in an earlier campaign
        conn.execute(bounced_mailboxes.insert().values(
            address="cy@example.org", code="5.1.1", error="no such user", first_seen=clock.now(),
            last_seen=clock.now(), campaign_id=None))

    summary = run_simulation(runtime, campaign_id, ck_campaign.actor, SimulationOptions())["summary"]

    # Ada and Bob get the email, then (everyone is trained) the training email, and would wait for the course to be
    # finished; cy's mailbox bounced before, so hers is Blocklisted and not attempted.
    assert summary["outcomes"] == {"completed": 1, "waiting": 2} and not summary["problems"]
    assert node(summary, "send")["left"] == {"next": 2, "undelivered": 1}
    assert (node(summary, "train")["left"], node(summary, "learning")["ended"]) == ({"next": 2}, {"waiting": 2})
    sent = [m for m in summary["messages"] if m["node"] == "send"]
    assert {m["to"] for m in sent} <= {"ada@example.org", "bob@example.org"} and sent
    assert {m["subject"] for m in sent} and all(m["text"] for m in sent)
    assert all(f"/p/{SAMPLE_TOKEN}" in m["text"] for m in sent)  # a sample link: no real recipient's token
    trained = [m for m in summary["messages"] if m["node"] == "train"]
    assert trained and all("/training" in m["text"] for m in trained)
    assert summary["effects"] == {"phishing_send": 3, "phishing_training": 2}  # the visits not carried out
    assert not (runtime.settings.var_dir / "outbox").exists() or not any(
        (runtime.settings.var_dir / "outbox").iterdir())
    with reading(runtime.engine) as conn:
        assert conn.execute(select(func.count()).select_from(runs)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(phishing_results)).scalar_one() == 0
