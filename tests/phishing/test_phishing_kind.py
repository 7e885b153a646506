"""Phishing simulations as their operators use them: definitions checked at create, the launch's plan (attacks and
send moments), emails through a real SMTP relay (aiosmtpd on 127.0.0.1, offering DSN), bounced mailboxes, delivery
notifications and reports read in, and the audited operations of the CLI.

Time is the fake clock's (Monday 7 January 2030, 09:00 UTC at the start), so send moments and retries are exact.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from phishing_support import (
    DOCUMENT,
    PARCEL,
    TOKEN,
    Relay,
    audits,
    bounced,
    cli_on,
    dsn,
    events_of,
    forwarded_report,
    results,
    run_of,
    start,
)
from sqlalchemy import select

from campaignkit.core.db import reading
from campaignkit.core.db.schema import runs
from campaignkit.core.testing import CampaignHarness
from campaignkit.plugins.phishing.notifications import ingest_message
from campaignkit.plugins.phishing.operations import resend
from campaignkit.plugins.phishing.results import ResultsQuery, by_user

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LAUNCH = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # the fake clock's start: a Monday
UNKNOWN_USER = "550 5.1.1 <bob@corp.test>: Recipient address rejected: User unknown in virtual mailbox table"
GREYLISTED = "451 4.7.1 <cy@corp.test>: Recipient address rejected: Greylisted, try again in 60 seconds"
MAIL_AUDIENCE = """email,name,groups
ada@corp.test,Ada Lovelace,Finance
bob@corp.test,Bob Dylan,Sales
cy@corp.test,Cy Twombly,Sales
dee@corp.test,Dee Dee Ramone,Engineering
"""


@pytest.fixture
def relay() -> Iterator[Relay]:
    with Relay() as relay:
        yield relay


@pytest.fixture
def mail(make_runtime: Any, actor: Any, tmp_path: Path, relay: Relay) -> Iterator[CampaignHarness]:
    """A harness whose smtp sending profile relays to ``relay``."""
    harness = CampaignHarness(make_runtime(plugins={"config": {"smtp": relay.smtp_config()}}), actor, tmp_path)
    yield harness
    harness.close()


def smtp_settings(**extra: Any) -> dict[str, Any]:
    return {"channel": "smtp", "return_path": "bounces@corp.test", **extra}


# --- 1. definitions -------------------------------------------------------------------------------------------------


def example_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (EXAMPLES / "phishing.yaml").read_text(encoding="utf-8")
    assert old in text, old
    shutil.copy(EXAMPLES / "phishing.csv", tmp_path / "phishing.csv")
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "expected"), [
    pytest.param("kind: click", "kind: clack",
                 ["bad.yaml:", "settings.attacks[1].kind", "'click', 'credentials' or 'attachment'"], id="attack-kind"),
    pytest.param("name: Parcel notice", "name: Shared document",
                 ["bad.yaml:", "attacks: names must be unique", "Shared document"], id="duplicate-attack"),
    pytest.param("send_over: PT0S", "send_over: PT0S\n    business_hours: '17:00-09:00'",
                 ["bad.yaml:", "settings.sending.business_hours", "'17:00-09:00'", "start must be before the end"],
                 id="business-hours-reversed"),
    pytest.param("send_over: PT0S", "send_over: PT0S\n    business_hours: 9am-5pm",
                 ["bad.yaml:", "settings.sending.business_hours", "'9am-5pm'", "HH:MM-HH:MM"],
                 id="business-hours-syntax"),
    pytest.param("time_zone: Europe/London", "time_zone: Europe/Londn",
                 ["bad.yaml:", "settings.sending.time_zone", "'Europe/Londn'", "did you mean 'Europe/London'"],
                 id="time-zone"),
    pytest.param("confirm_clicks: false", "confirm_clicks: false\n    networks: [192.0.2.0/24, 10.0.0.0/33]",
                 ["bad.yaml:", "settings.scanners.networks", "'10.0.0.0/33' is not an address range"],
                 id="scanner-network"),
    pytest.param("template: email/phishing/parcel_notice", "template: email/phishing/parcel_notise",
                 ["bad.yaml:", "'email/phishing/parcel_notise/subject.txt' not found"], id="missing-template"),
])
def test_a_bad_definition_is_refused_at_create_naming_the_key_or_file(cli: Any, tmp_path: Path, old: str,
                                                                       new: str, expected: list[str]) -> None:
    cli("init")
    refused = cli("campaign", "create", str(example_with(tmp_path, old, new)), code=1)
    for text in expected:
        assert text in refused.stderr, refused.stderr
    assert json.loads(cli("campaign", "list", "--format", "json").stdout) == []  # nothing was created


def test_the_example_creates_and_launches_from_the_command_line(cli: Any, tmp_path: Path) -> None:
    for name in ("phishing.yaml", "phishing.csv"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    cli("init")
    assert "created campaign" in cli("campaign", "create", "phishing.yaml").stdout
    assert "6 run(s)" in cli("campaign", "launch", "Q4 phishing simulation").stdout
    listed = json.loads(cli("phishing", "results", "Q4 phishing simulation", "--format", "json").stdout)
    assert sorted(row["Email"] for row in listed) == [
        "ana.lima@example.org", "ben.okafor@example.org", "chloe.martin@example.org", "dev.patel@example.org",
        "emma.schmidt@example.org", "frank.miller@example.org"]
    assert {row["Attack"] for row in listed} <= {"Shared document", "Parcel notice"}


def test_the_example_sends_every_email_at_once(harness: CampaignHarness, clock: Any) -> None:
    """`send_over: PT0S` without business hours: launched, then `work --until-idle`, and every email is out, as the
    example says ("sends at once, to show its results today") -- whatever the launch's fraction of a second."""
    clock.set(LAUNCH + timedelta(milliseconds=400))
    campaign_id = harness.create(EXAMPLES / "phishing.yaml")
    assert harness.launch(campaign_id) == 6
    harness.run_to_idle()
    found = results(harness.runtime, campaign_id)
    assert {address: row.delivery for address, row in found.items()} == dict.fromkeys(found, "Pending")
    assert len(list((harness.runtime.settings.var_dir / "outbox").glob("*.eml"))) == 6


# --- 2. the launch's plan ---------------------------------------------------------------------------------------------


def test_each_email_is_due_in_business_hours_of_its_recipients_own_time_zone(harness: CampaignHarness,
                                                                             clock: Any) -> None:
    zones = ["America/New_York", "Asia/Kolkata", "Europe/Berlin", "Australia/Sydney", "Mars/Olympus_Mons", ""]
    audience = "email,name,time_zone\n" + "".join(
        f"user{i:02d}@example.org,User {i},{zones[i % len(zones)]}\n" for i in range(48))
    holiday = date(2030, 1, 8)
    campaign_id = start(harness, audience, sending={
        "send_over": "P3D", "business_hours": "10:00-16:00", "weekdays": ["mon", "tue", "wed", "thu", "fri"],
        "holidays": [holiday.isoformat()], "time_zone": "Europe/London", "per_minute": 2})
    found = results(harness.runtime, campaign_id)
    with reading(harness.runtime.engine) as conn:
        due = {row.id: row.due_at for row in conn.execute(select(runs).where(runs.c.campaign_id == campaign_id))}
    assert len(found) == 48
    per_minute: Counter[datetime] = Counter()
    for row in found.values():
        # The run is due at its send moment; a moment drawn at the launch's own second (one of the allowed seconds of
        # a recipient whose business hours are open then) went out at once, when start() worked the due runs.
        if row.send_at > LAUNCH:
            assert row.send_at == due[row.run_id]
        else:
            assert row.send_at == row.sent_at == LAUNCH
        zone_name = zones[int(row.email[4:6]) % len(zones)]
        zone = ZoneInfo(zone_name if zone_name in ("America/New_York", "Asia/Kolkata", "Europe/Berlin",
                                                   "Australia/Sydney") else "Europe/London")
        local = row.send_at.astimezone(zone)
        assert time(10) <= local.time() < time(16), (row.email, zone_name, local)
        assert local.weekday() < 5 and local.date() != holiday, (row.email, local)
        assert LAUNCH <= row.send_at <= LAUNCH + timedelta(days=3), (row.email, row.send_at)
        per_minute[row.send_at.replace(second=0, microsecond=0)] += 1
    assert max(per_minute.values()) <= 2  # the throttle over the whole campaign

    # Nothing goes out before its moment; at a moment, exactly the emails due by then have gone.
    assert all(row.sent_at is None for row in found.values() if row.send_at > LAUNCH)
    middle = sorted(row.send_at for row in found.values())[24]
    clock.set(middle)
    harness.run_to_idle()
    found = results(harness.runtime, campaign_id)
    assert {a for a, r in found.items() if r.sent_at is not None} == {a for a, r in found.items()
                                                                       if r.send_at <= middle}
    assert all(row.sent_at == (middle if row.send_at > LAUNCH else LAUNCH) for row in found.values()
               if row.sent_at is not None)


def test_random_assignment_gives_both_attacks_and_records_each_runs_attack(harness: CampaignHarness) -> None:
    audience = "email,name\n" + "".join(f"user{i:02d}@example.org,User {i}\n" for i in range(50))
    random_id = start(harness, audience, name="Random drill", assignment="random", attacks=[PARCEL, DOCUMENT])
    same_id = start(harness, audience, name="Same drill", assignment="same", attacks=[DOCUMENT, PARCEL])
    random_rows = results(harness.runtime, random_id)
    counts = Counter(row.attack for row in random_rows.values())
    assert set(counts) == {"Parcel notice", "Shared document"}, counts  # 2 ** -49 to fail by chance
    for run in harness.runs(random_id):
        assert run.context["attack"] == next(r.attack for r in random_rows.values() if r.run_id == run.id)
    assert {row.attack for row in results(harness.runtime, same_id).values()} == {"Shared document"}
    # The email each recipient got is their run's attack's.
    outbox = harness.runtime.settings.var_dir / "outbox"
    senders = Counter(line.split(":", 1)[1].strip() for path in outbox.glob("*.eml")
                      for line in path.read_text().splitlines() if line.startswith("From:"))
    assert senders[PARCEL["sender"]] == counts["Parcel notice"]
    assert senders[DOCUMENT["sender"]] == counts["Shared document"] + 50


# --- 2. sending through the relay -------------------------------------------------------------------------------------


def test_emails_carry_their_token_attack_sender_and_verp_envelope_and_refusals_are_recorded(
        mail: CampaignHarness, relay: Relay, clock: Any) -> None:
    relay.rcpt_answers["bob@corp.test"] = [UNKNOWN_USER]
    relay.rcpt_answers["cy@corp.test"] = [GREYLISTED]
    campaign_id = start(mail, MAIL_AUDIENCE, **smtp_settings(assignment="random", attacks=[PARCEL, DOCUMENT]))
    found = results(mail.runtime, campaign_id)
    for address in ("ada@corp.test", "dee@corp.test"):
        row = found[address]
        assert (row.delivery, row.sent_at) == ("Pending", LAUNCH)
        assert TOKEN.match(row.token)
        [seen] = relay.to(address)
        message = seen.message
        assert message["X-Campaignkit-Token"] == row.token
        assert str(message["From"]) == (PARCEL if row.attack == PARCEL["name"] else DOCUMENT)["sender"]
        assert f"/p/{row.token}" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert seen.mail_from == f"bounces+{row.token}-0@corp.test"  # VERP: the token and the attempt (0: the first)
        assert "NOTIFY=SUCCESS,FAILURE" in seen.rcpt_options  # the relay offers DSN: asked for
        assert {"RET=HDRS", f"ENVID={row.token}-0".upper()} <= set(seen.mail_options)
    assert len({row.token for row in found.values()}) == 4

    bob = found["bob@corp.test"]
    assert (bob.delivery, bob.sent_at, bob.delivery_at) == ("Failed", None, LAUNCH)
    assert bob.delivery_detail["code"] == "5.1.1" and bob.delivery_detail["smtp_code"] == "550"
    assert "User unknown in virtual mailbox table" in bob.delivery_detail["text"]
    [listed] = by_user(mail.runtime, ResultsQuery(campaign_id, delivery="Failed"))
    assert listed["Email"] == "bob@corp.test" and listed["Delivery Status"] == "Failed"
    assert listed["Delivery Detail"].startswith("5.1.1 ") and "User unknown" in listed["Delivery Detail"]
    entry = bounced(mail.runtime)["bob@corp.test"]
    assert entry.code == "5.1.1" and "User unknown" in entry.error and entry.campaign_id == campaign_id
    assert (run_of(mail.runtime, bob.run_id).current_node, run_of(mail.runtime, bob.run_id).status) == (
        "undelivered", "waiting")
    assert relay.tried.count("bob@corp.test") == 1  # a permanent refusal is not retried

    cy = found["cy@corp.test"]  # deferred: tried again after the step's backoff
    assert (cy.delivery, cy.sent_at, relay.to("cy@corp.test")) == (None, None, [])
    assert set(bounced(mail.runtime)) == {"bob@corp.test"}
    clock.advance(61)
    mail.run_to_idle()
    cy = results(mail.runtime, campaign_id)["cy@corp.test"]
    assert cy.delivery == "Pending" and relay.tried.count("cy@corp.test") == 2
    [seen] = relay.to("cy@corp.test")
    assert seen.message["X-Campaignkit-Token"] == cy.token
    assert set(bounced(mail.runtime)) == {"bob@corp.test"}


def test_a_bounced_mailbox_is_blocklisted_by_later_campaigns_until_a_resend_is_delivered(
        mail: CampaignHarness, relay: Relay, clock: Any) -> None:
    relay.rcpt_answers["bob@corp.test"] = [UNKNOWN_USER]
    start(mail, "email,name\nbob@corp.test,Bob\n", name="First drill", **smtp_settings())
    assert "bob@corp.test" in bounced(mail.runtime)
    clock.advance(timedelta(days=1))

    second = start(mail, "email,name\nBob@Corp.test,Bob\nada@corp.test,Ada\n", name="Second drill",
                   **smtp_settings())
    bob = results(mail.runtime, second)["Bob@Corp.test"]
    assert (bob.delivery, bob.sent_at) == ("Blocklisted", None)
    assert relay.tried == ["bob@corp.test", "ada@corp.test"]  # the relay never saw the second attempt
    assert run_of(mail.runtime, bob.run_id).current_node == "undelivered"
    assert results(mail.runtime, second)["ada@corp.test"].delivery == "Pending"

    assert resend(mail.runtime, second, ["bob@corp.test"], mail.actor) == {"resent": 1, "skipped": []}
    mail.run_to_idle()
    bob = results(mail.runtime, second)["Bob@Corp.test"]
    assert bob.delivery == "Pending" and bob.attempt == 1
    [seen] = relay.to("Bob@Corp.test")
    assert seen.message["X-Campaignkit-Token"] == bob.token
    assert "bob@corp.test" in bounced(mail.runtime)  # until a notification says it arrived

    done = ingest_message(mail.runtime, dsn("dsn-success-delivered.eml", bob.token, "Bob@Corp.test"))
    assert (done.delivered, done.failed, done.ignored) == (1, 0, 0)
    assert results(mail.runtime, second)["Bob@Corp.test"].delivery == "Delivered"
    assert "bob@corp.test" not in bounced(mail.runtime)
    third = start(mail, "email,name\nbob@corp.test,Bob\n", name="Third drill", **smtp_settings())
    assert results(mail.runtime, third)["bob@corp.test"].delivery == "Pending"


def test_a_refused_sender_fails_the_emails_without_putting_the_recipients_on_the_bounced_mailboxes(
        mail: CampaignHarness, relay: Relay) -> None:
    """The relay refuses the envelope sender (a return_path it does not accept): the recipients' mailboxes did
    not bounce, so later campaigns still send to them."""
    refusal = "553 5.7.1 <bounces@corp.test>: Sender address rejected: not owned by user campaigns"
    relay.mail_answers = [refusal, refusal]
    first = start(mail, "email,name\nada@corp.test,Ada\nbob@corp.test,Bob\n", name="First drill",
                  **smtp_settings())
    found = results(mail.runtime, first)
    assert {row.delivery for row in found.values()} == {"Failed"}
    assert all("Sender address rejected" in row.delivery_detail["text"] for row in found.values())
    assert relay.tried == [] and relay.accepted == []
    assert bounced(mail.runtime) == {}
    second = start(mail, "email,name\nada@corp.test,Ada\nbob@corp.test,Bob\n", name="Second drill",
                   **smtp_settings())
    assert {row.delivery for row in results(mail.runtime, second).values()} == {"Pending"}
    assert sorted(relay.tried) == ["ada@corp.test", "bob@corp.test"]


def test_a_send_retried_after_the_relay_read_the_message_repeats_its_bytes_and_a_resend_is_new(
        mail: CampaignHarness, relay: Relay, clock: Any) -> None:
    relay.data_answers["ada@corp.test"] = ["451 4.3.0 Error: queue file write error"]
    campaign_id = start(mail, "email,name\nada@corp.test,Ada\n", **smtp_settings())
    [refused] = relay.refused  # the relay had the whole message, then did not take it
    assert relay.accepted == [] and results(mail.runtime, campaign_id)["ada@corp.test"].delivery is None
    clock.advance(61)
    mail.run_to_idle()
    [accepted] = relay.accepted
    assert accepted.content == refused.content  # the same bytes: same Message-ID, Date, boundary
    assert accepted.message["Message-ID"] == refused.message["Message-ID"]
    row = results(mail.runtime, campaign_id)["ada@corp.test"]
    assert row.delivery == "Pending" and accepted.message["X-Campaignkit-Token"] == row.token

    assert resend(mail.runtime, campaign_id, ["ada@corp.test"], mail.actor)["resent"] == 1
    mail.run_to_idle()
    assert len(relay.accepted) == 2
    again = relay.accepted[1].message
    assert again["Message-ID"] != accepted.message["Message-ID"]  # a new attempt, under a new idempotency key
    assert again["X-Campaignkit-Token"] == row.token  # the recipient's links stay theirs
    assert results(mail.runtime, campaign_id)["ada@corp.test"].attempt == 1


# --- 5. notifications and reports -------------------------------------------------------------------------------------


def snapshot(runtime: Any, campaign_id: str) -> Any:
    found = results(runtime, campaign_id)
    return ({address: row._asdict() for address, row in found.items()},
            {address: row._asdict() for address, row in bounced(runtime).items()},
            {address: [(e.name, e.payload, e.consumed_at) for e in events_of(runtime, row.run_id)]
             for address, row in found.items()},
            {address: (run_of(runtime, row.run_id).current_node, run_of(runtime, row.run_id).status)
             for address, row in found.items()})


def test_notifications_set_delivered_and_failed_once_however_often_they_are_read(harness: CampaignHarness,
                                                                                  clock: Any) -> None:
    campaign_id = start(harness, "email,name\nalice@corp.test,Alice\nnosuch@corp.test,Nobody\n")
    clock.advance(timedelta(hours=1))
    tokens = {address: row.token for address, row in results(harness.runtime, campaign_id).items()}
    success = dsn("dsn-success-delivered.eml", tokens["alice@corp.test"])
    failure = dsn("dsn-failure-unknown-user.eml", tokens["nosuch@corp.test"])
    assert ingest_message(harness.runtime, success).delivered == 1
    assert ingest_message(harness.runtime, failure).failed == 1
    harness.run_to_idle()

    found = results(harness.runtime, campaign_id)
    alice, nosuch = found["alice@corp.test"], found["nosuch@corp.test"]
    assert (alice.delivery, alice.delivery_at) == ("Delivered", datetime(2026, 12, 1, 22, 57, 35, tzinfo=UTC))
    assert alice.delivery_detail["code"] == "2.0.0"
    assert alice.delivery_detail["text"] == "delivery via virtual: delivered to maildir"
    assert nosuch.delivery == "Failed" and nosuch.delivery_detail["code"] == "5.1.1"
    assert nosuch.delivery_detail["text"] == 'unknown user: "nosuch@corp.test"'
    assert bounced(harness.runtime)["nosuch@corp.test"].code == "5.1.1"
    assert run_of(harness.runtime, nosuch.run_id).current_node == "undelivered"
    assert run_of(harness.runtime, alice.run_id).current_node == "observe"
    assert alice.sent_at == nosuch.sent_at == LAUNCH  # Email sent is kept

    before = snapshot(harness.runtime, campaign_id)
    clock.advance(60)  # the next poll reads them again (at-least-once: removing them had failed)
    ingest_message(harness.runtime, success)
    ingest_message(harness.runtime, failure)
    harness.run_to_idle()
    after = snapshot(harness.runtime, campaign_id)
    assert after[0] == before[0]  # the results
    assert after[2] == before[2]  # the runs' events: no second delivered or undelivered waiting to be consumed
    assert after[3] == before[3]
    assert after[1] == before[1]  # the bounced mailboxes, their Last Seen included: nothing bounced again

    # Resent and accepted, the run watches for the recipient's clicks again.
    resend(harness.runtime, campaign_id, ["nosuch@corp.test"], harness.actor)
    harness.run_to_idle()
    nosuch = results(harness.runtime, campaign_id)["nosuch@corp.test"]
    assert nosuch.delivery == "Pending"
    assert (run_of(harness.runtime, nosuch.run_id).current_node, run_of(harness.runtime, nosuch.run_id).status) == (
        "observe", "waiting")

    # The resend went out from the token's next VERP address (attempt 1): a late bounce of the first email
    # (attempt 0) says nothing about it, and the resend's own success takes the address off the bounced mailboxes.
    token = tokens["nosuch@corp.test"]
    assert ingest_message(harness.runtime, dsn("dsn-failure-unknown-user.eml", f"{token}-0")).ignored == 1
    assert results(harness.runtime, campaign_id)["nosuch@corp.test"].delivery == "Pending"
    delivered = dsn("dsn-success-delivered.eml", f"{token}-1", "nosuch@corp.test")
    assert ingest_message(harness.runtime, delivered).delivered == 1
    assert results(harness.runtime, campaign_id)["nosuch@corp.test"].delivery == "Delivered"
    assert "nosuch@corp.test" not in bounced(harness.runtime)


def test_phishing_ingest_applies_notification_and_report_files_once(
        harness: CampaignHarness, clock: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        database_url: str) -> None:
    campaign_id = start(harness, "email,name\nalice@corp.test,Alice\nnosuch@corp.test,Nobody\n"
                                 "carol@corp.test,Carol\n")
    found = results(harness.runtime, campaign_id)
    outbox = {path.read_bytes() for path in (harness.runtime.settings.var_dir / "outbox").glob("*.eml")}
    carols = next(raw for raw in outbox if found["carol@corp.test"].token.encode() in raw)
    files = tmp_path / "mail"
    files.mkdir()
    (files / "success.eml").write_bytes(dsn("dsn-success-delivered.eml", found["alice@corp.test"].token))
    (files / "failure.eml").write_bytes(dsn("dsn-failure-unknown-user.eml", found["nosuch@corp.test"].token))
    (files / "report.eml").write_bytes(forwarded_report(carols, "carol@corp.test"))
    cli = cli_on(harness, monkeypatch, tmp_path, database_url)

    done = cli("phishing", "ingest", *(str(files / name) for name in ("success.eml", "failure.eml", "report.eml")))
    assert "1 delivered, 1 failed, 1 reported" in done.stdout
    found = results(harness.runtime, campaign_id)
    assert found["alice@corp.test"].delivery == "Delivered"
    assert (found["nosuch@corp.test"].delivery, found["nosuch@corp.test"].delivery_detail["code"]) == (
        "Failed", "5.1.1")
    assert "nosuch@corp.test" in bounced(harness.runtime)
    carol = found["carol@corp.test"]
    assert carol.reported_at is not None and carol.clicked_at is None and carol.opened_at is None
    assert [e.name for e in events_of(harness.runtime, carol.run_id, "reported")] == ["reported"]
    harness.run_to_idle()
    assert run_of(harness.runtime, found["nosuch@corp.test"].run_id).current_node == "undelivered"

    before = snapshot(harness.runtime, campaign_id)
    cli("phishing", "ingest", *(str(path) for path in sorted(files.iterdir())))
    harness.run_to_idle()
    after = snapshot(harness.runtime, campaign_id)
    assert after[0] == before[0]  # the results
    assert after[2] == before[2]  # the runs' events: no second delivered, undelivered or reported
    assert after[3] == before[3]
    assert after[1] == before[1]  # the bounced mailboxes, their Last Seen included


# --- 7. operations from the command line, audited ---------------------------------------------------------------------


def test_cli_operations_are_audited_and_clear_events_keeps_email_sent(
        harness: CampaignHarness, clock: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        database_url: str) -> None:
    from campaignkit.plugins.phishing.tracking import HitRequest, record_hits

    campaign_id = start(harness, "email,name\nada@corp.test,Ada\nbob@corp.test,Bob\ncy@corp.test,Cy\n"
                                 "nosuch@corp.test,Nobody\n", attacks=[DOCUMENT])
    found = results(harness.runtime, campaign_id)
    ingest_message(harness.runtime, dsn("dsn-failure-unknown-user.eml", found["nosuch@corp.test"].token))
    clock.advance(timedelta(minutes=5))

    def hit(address: str, event: str, agent: str) -> None:
        from campaignkit.core.db import writing

        request = HitRequest(token=found[address].token, event=event, method="GET" if event != "submitted"
                             else "POST", user_agent=agent, client_ip="203.0.113.5",
                             fields=("username", "password") if event == "submitted" else ())
        with writing(harness.runtime.engine) as conn:
            record_hits(conn, harness.runtime, [(request, clock.now())], lambda _conn, _id: {})

    browser = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
    for address, event in (("ada@corp.test", "opened"), ("ada@corp.test", "clicked"), ("ada@corp.test", "submitted"),
                           ("bob@corp.test", "opened"), ("bob@corp.test", "reported"), ("cy@corp.test", "clicked")):
        hit(address, event, browser)
    hit("ada@corp.test", "clicked", "Proofpoint URL Defense")  # a scanner's: filtered
    harness.run_to_idle()
    cli = cli_on(harness, monkeypatch, tmp_path, database_url)

    cleared = cli("phishing", "clear-events", campaign_id, "--user", "ADA@corp.test", "--user", "bob@corp.test",
                  "--yes")
    assert "cleared 6 event(s) of 2 user(s)" in cleared.stdout
    after = results(harness.runtime, campaign_id)
    for address in ("ada@corp.test", "bob@corp.test"):
        row = after[address]
        assert (row.opened_at, row.clicked_at, row.submitted_at, row.reported_at, row.filtered_hits) == (
            None, None, None, None, 0)
        assert (row.sent_at, row.delivery) == (found[address].sent_at, "Pending")  # Email sent and its status kept
        assert [e.name for e in events_of(harness.runtime, row.run_id, "opened", "clicked", "submitted",
                                          "reported", "filtered_hit")] == []
    assert after["cy@corp.test"].clicked_at is not None  # not selected: untouched
    assert [e.name for e in events_of(harness.runtime, after["cy@corp.test"].run_id, "clicked")] == ["clicked"]
    [record] = audits(harness.runtime, "Campaign Events Cleared")
    assert record.audit_type == "Operations" and record.object_id == campaign_id
    assert record.details == "cleared 6 event(s) of 2 user(s): ada@corp.test, bob@corp.test"
    assert record.class_name.endswith(".clear_events")  # the code that cleared them, as every record names it

    assert "resending to 1 user(s)" in cli("phishing", "resend", campaign_id, "--user", "nosuch@corp.test").stdout
    [record] = audits(harness.runtime, "Resend Requested")
    assert record.details == "resend to 1 user(s): nosuch@corp.test" and record.object_id == campaign_id
    assert record.class_name.endswith(".resend")

    missing = cli("phishing", "unbounce", "nobody@corp.test", code=1)
    assert "'nobody@corp.test' is not on the bounced mailboxes" in missing.stderr
    assert "removed" in cli("phishing", "unbounce", "NOSUCH@corp.test").stdout
    assert "nosuch@corp.test" not in bounced(harness.runtime)
    [record] = audits(harness.runtime, "Bounced Mailbox Removed")
    assert record.details.startswith("removed nosuch@corp.test (5.1.1 unknown user") and record.object_id == campaign_id
    assert record.class_name.endswith(".remove_bounced")
    assert {r.user_name for r in audits(harness.runtime, "Campaign Events Cleared")
            + audits(harness.runtime, "Resend Requested") + audits(harness.runtime, "Bounced Mailbox Removed")} == {
        record.user_name}  # the person at the terminal
