"""Decision links are bound to their recipient and assignment, decide only from our own page, and never through a
forged API call; templates see plain values; a flood of bad links neither fills the audit trail nor gets answered."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from review_support import AUDIENCE, ITEM_LINK, REVIEW, audits, decide, rows, work_and_digest
from sqlalchemy import select

from campaignkit.core.db.schema import events, runs, targets
from campaignkit.plugins.access_review.history import history_summary
from campaignkit.plugins.access_review.links import decision_link


def run_of(harness: Any, campaign_id: str, key: str) -> Any:
    return next(r for r in harness.runs(campaign_id) if r.target_key == key)


def field_of(harness: Any, key: str) -> dict[str, Any]:
    with harness.runtime.engine.connect() as conn:
        fields = conn.execute(select(targets.c.custom_fields).where(targets.c.key == key)).scalar_one()
    return dict(fields["Campaigns Approval"])


# --- item 1: a link outlives neither its recipient nor its assignment ---------------------------------------------

def test_a_link_stops_deciding_once_its_item_is_handed_on(review: Any, clock: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch()
    first = inbox.links_for("linus@example.org")[0]  # ada's access to Git, asked of linus
    clock.advance(timedelta(days=3, seconds=1))
    harness.run_to_idle()
    reminder = inbox.links_for("linus@example.org")[1]
    assert "linus" not in first  # the recipient is bound by a tag, not written into the URL
    opened = httpx.get(first)  # a reminder to the same approver keeps the first link working
    assert opened.status_code == 200 and httpx.get(reminder).status_code == 200

    clock.advance(timedelta(days=3))
    harness.run_to_idle()  # past escalate_after: handed to the fallback approver
    assert rows(harness, campaign_id)[("ada", "Git")]["Approver"] == "security@example.org"
    for link in (first, reminder):
        stale = decide(link, "revoke", opened)
        assert stale.status_code == 410 and "handed on" in stale.text
    assert httpx.get(first).status_code == 410
    harness.run_to_idle()
    assert rows(harness, campaign_id)[("ada", "Git")]["Response Status"] == "Pending Response"
    assert not audits(harness, "Decision Recorded")
    handed_on = [a for a in audits(harness, "Link Rejected") if "handed on" in (a.details or "")]
    assert handed_on and all(first.rsplit("/", 1)[1] not in (a.details or "") for a in handed_on)

    escalated = [t for to, s, t in inbox.messages if to == "security@example.org" and "ada still need Git" in s]
    link = ITEM_LINK.search(escalated[-1]).group(0)  # type: ignore[union-attr]
    assert decide(link, "approve").status_code == 200
    clock.advance(60)
    harness.run_to_idle()
    row = rows(harness, campaign_id)[("ada", "Git")]
    assert (row["Response Status"], row["Approver"], row["Result"]) == ("Approved", "security@example.org", "Success")
    assert field_of(harness, "ada|Git")["approver"] == "security@example.org"
    assert [a.user_name for a in audits(harness, "Decision Recorded")] == ["security@example.org"]


def test_the_decision_names_the_links_recipient_whoever_holds_the_item_when_it_is_applied(
        review: Any, clock: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch()
    link = inbox.links_for("linus@example.org")[0]
    assert decide(link, "revoke").status_code == 200  # decided, not yet applied by a worker
    ada_git = run_of(harness, campaign_id, "ada|Git")
    with harness.runtime.engine.begin() as conn:  # meanwhile the item changed hands (a reassignment)
        conn.execute(runs.update().where(runs.c.id == ada_git.id)
                     .values(assignee="security@example.org", assignment=ada_git.assignment + 1))
    harness.run_to_idle()
    field = field_of(harness, "ada|Git")
    assert (field["value"], field["approver"]) == ("Revoked", "linus@example.org")
    assert [a.user_name for a in audits(harness, "Decision Recorded")] == ["linus@example.org"]


def test_a_second_decision_on_a_decided_item_changes_nothing_and_is_on_the_record(review: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch()
    link = inbox.links_for("linus@example.org")[0]
    page = httpx.get(link)
    assert decide(link, "approve", page).status_code == 200
    for _ in range(5):  # the same form sent again, with the other button: shown the decision, nothing changes
        again = decide(link, "revoke", page)
        assert again.status_code == 200 and "Already decided" in again.text and "Approved" in again.text
    [refused] = audits(harness, "Decision Refused")  # five tries from one address in one window: one record
    assert (refused.audit_type, refused.user_name, refused.computer_ip) == (
        "Interaction Event", "linus@example.org", "127.0.0.1")
    assert refused.details.startswith("decision rejected: revoked refused: ada on Git is already Approved (run ")
    harness.run_to_idle()
    summary = history_summary(harness.runtime, campaign_id)
    assert (summary["Approved"], summary["Revoked"]) == (1, 0)


# --- item 2: no decision, time or result forged through the API or the CLI ----------------------------------------

def test_the_api_cannot_post_a_decision_and_a_payload_cannot_overwrite_an_event(make_runtime: Any, actor: Any,
                                                                                tmp_path: Any) -> None:
    from conftest import Harness
    from servers import serving
    from test_web import FLOW, auth

    from campaignkit.core.web import create_app

    harness = Harness(make_runtime(plugins={"config": {"smtp": {
        "host": "127.0.0.1", "port": 1, "security": "none", "sender": "r@example.org"}}}), actor, tmp_path)
    review_id = harness.create(REVIEW.format(path=harness.csv(AUDIENCE), extra="").replace("channel: smtp",
                                                                                          "channel: log"))
    harness.launch(review_id)
    harness.run_to_idle()
    journey_id = harness.create(FLOW)
    harness.launch(journey_id, harness.csv("key\nk1\n", "contacts.csv"))
    harness.run_to_idle()
    ada_git = run_of(harness, review_id, "ada|Git")
    contact = run_of(harness, journey_id, "k1")
    write = auth(harness.api_token("operator", "write", user="ops"))  # an account that may send events
    with serving(create_app(harness.runtime)) as url:
        for name in ("revoked", "approved", "deadline", "undeliverable"):
            forged = httpx.post(f"{url}/api/runs/{ada_git.id}/events", headers=write,
                                json={"name": name, "payload": {"at": "2001-01-01T00:00:00+00:00"}})
            assert forged.status_code == 422, name
            assert forged.json()["detail"][0]["loc"] == ["body", "name"] and "reserved" in forged.text
        nested = httpx.post(f"{url}/api/runs/{contact.id}/events", headers=write,
                            json={"name": "clicked", "payload": {"at": {"$date": 1}}})
        assert nested.status_code == 422 and nested.json()["detail"][0]["loc"][:2] == ["body", "payload"]
        posted = httpx.post(f"{url}/api/runs/{contact.id}/events", headers=write,
                            json={"name": "clicked", "payload": {"name": "revoked", "at": "not-a-date"}})
        assert posted.status_code == 201
    harness.run_to_idle()
    with harness.runtime.engine.connect() as conn:
        assert conn.execute(select(events.c.id).where(events.c.run_id == ada_git.id)).first() is None
        sent = conn.execute(select(events.c.sent_by, events.c.source).where(events.c.run_id == contact.id)).one()
        contact = conn.execute(select(runs).where(runs.c.id == contact.id)).one()
    assert tuple(sent) == ("ops", "api")
    assert rows(harness, review_id)[("ada", "Git")]["Response Status"] == "Pending Response"
    assert contact.status == "completed"  # a hostile payload cannot fail the run
    last = contact.context["last_event"]
    assert last["name"] == "clicked" and last["at"] == harness.runtime.clock.now().isoformat()
    assert last["payload"] == {"name": "revoked", "at": "not-a-date"}
    posted_by = [a for a in audits(harness, "Workflow Trigger Request")]
    assert [(a.user_name, a.computer_ip) for a in posted_by] == [("ops", "127.0.0.1")]


def test_the_cli_cannot_send_a_decision(monkeypatch: Any, tmp_path: Any) -> None:
    import json

    from cli_support import make_cli

    cli = make_cli(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'campaignkit.db'}")
    (tmp_path / "review.csv").write_text(AUDIENCE)
    (tmp_path / "review.yaml").write_text(REVIEW.format(path="review.csv", extra="").replace("channel: smtp",
                                                                                            "channel: log"))
    cli("init")
    cli("campaign", "create", "review.yaml")
    cli("campaign", "launch", "Quarterly access review")
    cli("work", "--until-idle")
    listed = json.loads(cli("runs", "Quarterly access review", "--format", "json").stdout)
    run_id = str(next(r["id"] for r in listed if r["target_key"] == "ada|Git"))
    refused = cli("event", "send", run_id, "approved", code=1)
    assert "reserved" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert "payload: at: must be text" in cli("event", "send", run_id, "noted", "--payload", '{"at": [1]}',
                                              code=1).stderr
    history = json.loads(cli("history", "Quarterly access review", "--format", "json").stdout)["rows"]
    assert next(r for r in history if r["User"] == "ada" and r["Application"] == "Git")["Response Status"] == (
        "Pending Response")


# --- item 3: templates see plain values, and no sandbox escape reaches a secret ------------------------------------

ESCAPES = [
    "{{ links.decision.__class__ }}", "{{ links.decision.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ links|attr('_runtime') }}",
    "{{ links.decision|attr('__class__') }}", "{{ '{0.__class__.__init__.__globals__}'.format(links.decision) }}",
    "{{ ('{0._runtime.settings.secret_key._secret_value}'|attr('format'))(links) }}",
    "{{ ('{0.__init__.__globals__}'|attr('format'))(links.decision) }}",
    "{{ now.__class__.__init__.__globals__ }}", "{{ cycler.__init__.__globals__ }}", "{{ lipsum.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}", "{{ namespace.__init__.__globals__ }}", "{{ self.__dict__ }}",
    "{{ self._TemplateReference__context }}", "{{ run.__class__.__base__.__subclasses__() }}",
    "{{ target.items.__self__ }}", "{{ context.update.__self__ }}", "{{ range.__self__ }}",
    "{{ links }}{{ run }}{{ target }}{{ context }}{{ now }}", "{{ links.decision() }}",
    "{% for k in links %}{{ links[k].__class__.mro() }}{% endfor %}",
    "{{ config }}", "{{ settings }}", "{{ runtime }}", "{{ request }}", "{{ links.__getitem__('decision') }}",
    "{{ links.decision.format_map(links) }}", "{{ (links.decision|attr('__reduce_ex__'))(2) }}",
    "{{ now.strftime('%Y')|attr('__class__') }}", "{{ target|attr('copy') }}",
]


def _secrets(runtime: Any) -> list[str]:
    settings = runtime.settings
    found = [settings.secret_key, settings.audit_key, settings.api_token,
             *settings.previous_secret_keys, *settings.previous_audit_keys]
    return [s.get_secret_value() for s in found if s is not None] + ["smtp-password-123"]


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value] + [v for item in value.values() for v in _walk(item)]
    if isinstance(value, list | tuple):
        return [value] + [v for item in value for v in _walk(item)]
    return [value]


def test_templates_receive_plain_values_and_escapes_reach_no_secret(make_runtime: Any, actor: Any,
                                                                    tmp_path: Any) -> None:
    import datetime as dt
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    import jinja2

    from campaignkit.core.engine.worker import Worker
    from campaignkit.core.step import StepContext
    from campaignkit.plugins.access_review.digests import DigestSender

    floor = next(d for d in tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
                 ["project"]["dependencies"] if d.lower().startswith("jinja2"))
    assert floor == "Jinja2>=3.1.6" and tuple(map(int, version("jinja2").split(".")[:3])) >= (3, 1, 6)

    from conftest import Harness

    runtime = make_runtime(api_token="pQ7-vN2xR9sK4mW8tY1zB6cF3hJ5gL0dA", plugins={"config": {"smtp": {
        "host": "127.0.0.1", "port": 25, "security": "none", "sender": "r@example.org",
        "password": "smtp-password-123"}}})
    harness = Harness(runtime, actor, tmp_path)
    review_id = harness.create(REVIEW.format(path=harness.csv(AUDIENCE), extra="  digest: true")
                               .replace("channel: smtp", "channel: log"))
    harness.launch(review_id)
    harness.run_to_idle()
    run = run_of(harness, review_id, "ada|Git")
    kind = runtime.kind("access_review")  # the variables a step sees: the engine's and the kind's
    settings = kind.settings(harness.campaigns.definition(review_id)[0].settings)
    ctx = StepContext(run_id=run.id, campaign_id=review_id, target_key=run.target_key, target=run.target,
                      context=dict(run.context), node_id="request", visit=1, attempt=1, now=runtime.clock.now(),
                      config=None, idempotency_key="k", runtime=runtime,
                      facets={"assignee": run.assignee, "assignment": run.assignment},
                      kind_variables=lambda ctx: kind.template_variables(settings, ctx))
    variables = ctx.template_vars()
    assert "decision" in variables["links"]
    plain = (str, int, float, bool, type(None), dt.datetime, dict, list, tuple)
    assert all(isinstance(v, plain) for v in _walk(variables)), [type(v) for v in _walk(variables)]
    sender = DigestSender(runtime)
    batch = next(b for b in sender._due_batches(runtime.clock.now()) if b.assignee == "linus@example.org")
    with harness.runtime.engine.connect() as conn:
        items = sender._pending_items(conn, batch)
    digest = sender.variables(batch, items, "request", 7, runtime.clock.now())
    assert all(isinstance(v, plain) for v in _walk(digest)), [type(v) for v in _walk(digest)]
    variables = {**variables, **digest}  # every name either kind of template receives

    secrets = _secrets(runtime)
    for environment in (runtime.jinja, runtime.pages):
        for payload in ESCAPES:
            try:
                output = environment.from_string(payload).render(variables)
            except (jinja2.exceptions.SecurityError, jinja2.exceptions.UndefinedError, jinja2.TemplateError,
                    TypeError, ValueError, AttributeError, KeyError, IndexError):
                continue
            leaked = [s for s in secrets if s in output]
            assert not leaked, f"{payload!r} leaked a secret"
    Worker(runtime).close()


# --- item 4: a digest's review-all link decides the items it listed, and only while they are its recipient's ------

def test_review_all_decides_only_what_the_digest_listed_and_the_page_showed(review: Any, clock: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch("  digest: true")
    work_and_digest(harness)
    security_all, grace_all = inbox.review_all_for("security@example.org"), inbox.review_all_for("grace@example.org")

    clock.advance(timedelta(days=6))
    work_and_digest(harness)  # every item escalated to security@ and sent in a new digest
    page = httpx.get(security_all)  # the first digest listed linus's own item only
    assert page.status_code == 200 and re.search(r'id="pending">1<', page.text)
    assert decide(security_all, "approve", page).status_code == 200
    clock.advance(60)
    work_and_digest(harness)
    history = rows(harness, campaign_id)
    assert history[("linus", "Git")]["Response Status"] == "Approved"
    assert [k for k, r in history.items() if r["Response Status"] == "Pending Response"] == [
        ("ada", "Git"), ("ada", "Payroll"), ("barbara", "CRM")]
    handed_on = httpx.get(grace_all)  # grace's items were handed on: her page decides nothing
    assert handed_on.status_code == 200 and "handed on" in handed_on.text and 'id="approve"' not in handed_on.text


def test_review_all_refuses_when_the_list_changed_since_the_page_was_opened(review: Any, clock: Any) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch("  digest: true")
    work_and_digest(harness)
    text, all_link = inbox.text_for("grace@example.org"), inbox.review_all_for("grace@example.org")
    page = httpx.get(all_link)
    assert re.search(r'id="pending">2<', page.text)
    assert decide(ITEM_LINK.findall(text)[0], "revoke").status_code == 200  # one item decided meanwhile
    changed = decide(all_link, "approve", page)
    assert changed.status_code == 409 and 'id="changed"' in changed.text and re.search(r'id="pending">1<',
                                                                                      changed.text)
    clock.advance(60)
    work_and_digest(harness)
    statuses = {k: r["Response Status"] for k, r in rows(harness, campaign_id).items() if k[0] in ("ada", "barbara")
                and r["Approver"] == "grace@example.org"}
    assert sorted(statuses.values()) == ["Pending Response", "Revoked"]
    assert decide(all_link, "approve", changed).status_code == 200  # the fresh page decides what it shows
    assert len(audits(harness, "Decision Recorded")) == 2


# --- item 9: self-review cannot be dodged -----------------------------------------------------------------------

SELF_REVIEW = """user,user_email,application,approver
ada,Ada@Example.org,Payroll,ada+reviews@example.org
bob,bob@corp.example.org,Payroll,BOB@example.org
carol,carol@example.org,Git,dave@example.org
"""


def test_self_review_compares_canonical_identities_and_rechecks_every_hand_over(make_runtime: Any, actor: Any,
                                                                              tmp_path: Any, clock: Any) -> None:
    from conftest import Harness

    harness = Harness(make_runtime(), actor, tmp_path)
    extra = ("  identity: {domain_aliases: {corp.example.org: example.org}}\n"
             "  fallback_approver: [carol@example.org, erin@example.org]")
    definition = (REVIEW.format(path=harness.csv(SELF_REVIEW), extra=extra).replace("channel: smtp", "channel: log")
                  .replace("  fallback_approver: security@example.org\n", ""))
    campaign_id = harness.create(definition)
    harness.launch(campaign_id)
    harness.run_to_idle()
    history = rows(harness, campaign_id)
    assert history[("ada", "Payroll")]["Approver"] == "carol@example.org"  # plus-alias of herself
    assert history[("bob", "Payroll")]["Approver"] == "carol@example.org"  # his address on an alias domain
    assert history[("carol", "Git")]["Approver"] == "dave@example.org"
    clock.advance(timedelta(days=6))
    harness.run_to_idle()  # escalation: carol's own item goes past her to erin; the others to erin too
    history = rows(harness, campaign_id)
    assert history[("carol", "Git")]["Approver"] == "erin@example.org"
    assert history[("ada", "Payroll")]["Approver"] == "erin@example.org"


def test_a_review_refuses_rows_without_the_users_identity_at_launch(make_runtime: Any, actor: Any,
                                                                  tmp_path: Any) -> None:
    from conftest import Harness

    from campaignkit.core.errors import AudienceError

    harness = Harness(make_runtime(), actor, tmp_path)
    audience = harness.csv(AUDIENCE.replace("ada,ada@example.org,Git", "ada, ,Git")
                           .replace("alan,alan@example.org", "alan,"))
    campaign_id = harness.create(REVIEW.format(path=audience, extra="").replace("channel: smtp", "channel: log"))
    try:
        harness.launch(campaign_id)
    except AudienceError as exc:
        message = str(exc)
    else:
        raise AssertionError("the launch was accepted")
    assert "user_email" in message and ":3" in message and ":6" in message
    assert harness.runs(campaign_id) == []  # nothing half-launched


# --- items 11 and 15: only our own page's form decides; a closed item answers 410, never 500 ----------------------

def test_only_a_form_from_our_own_page_decides(review: Any, clock: Any) -> None:
    harness, inbox, launch, url = review
    campaign_id = launch()
    link = inbox.links_for("linus@example.org")[0]
    page = httpx.get(link)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = {"choice": "revoke", "nonce": nonce}
    assert httpx.post(link, content=f"choice=revoke&nonce={nonce}",
                      headers={"Content-Type": "text/plain"}).status_code == 415
    assert httpx.post(link, data=form, headers={"Origin": "https://evil.example"}).status_code == 403
    assert httpx.post(link, data=form, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert httpx.post(link, data=form, headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert httpx.post(link, data={"choice": "revoke"}).status_code == 400  # no page nonce
    other_page = httpx.get(inbox.links_for("grace@example.org")[0])
    borrowed = re.search(r'name="nonce" value="([^"]+)"', other_page.text).group(1)  # type: ignore[union-attr]
    assert httpx.post(link, data={"choice": "revoke", "nonce": borrowed}).status_code == 400
    clock.advance(timedelta(hours=3))
    assert httpx.post(link, data=form).status_code == 400  # a page opened hours ago
    clock.advance(timedelta(hours=-3))
    assert history_summary(harness.runtime, campaign_id)["Revoked"] == 0
    refused = [a.details for a in audits(harness, "Link Rejected")]
    assert any("Origin https://evil.example" in d for d in refused) and any("content type" in d for d in refused)
    assert httpx.post(link, data=form, headers={"Origin": url, "Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_a_link_to_a_finished_item_answers_410_with_its_state(review: Any) -> None:
    harness, _, launch, _ = review
    campaign_id = launch()
    alan = run_of(harness, campaign_id, "alan|CRM")  # his approver's address bounced: Message Delivery Failed
    link = decision_link(harness.runtime, alan.id, alan.assignee, alan.assignment,
                         harness.runtime.clock.now() + timedelta(days=1))
    shown = httpx.get(link)
    assert shown.status_code == 410 and "Message Delivery Failed" in shown.text and 'id="approve"' not in shown.text
    posted = httpx.post(link, data={"choice": "approve"})
    assert posted.status_code == 410 and "Message Delivery Failed" in posted.text
    assert sum("Message Delivery Failed" in (a.details or "") for a in audits(harness, "Link Rejected")) >= 1
    assert rows(harness, campaign_id)[("alan", "CRM")]["Response Status"] == "Message Delivery Failed"


# --- item 6: a flood of refusals is coalesced in the audit trail and then answered 429 -----------------------------

def test_a_flood_of_forged_links_is_two_audit_records_and_then_429s(review: Any, clock: Any) -> None:
    harness, _, launch, url = review
    launch()
    before = len(harness.audit())
    answers = [httpx.post(f"{url}/review/forged-{i}", data={"choice": "approve"}).status_code for i in range(100)]
    limit = harness.runtime.settings.web.max_rejections_per_window
    assert answers == [404] * limit + [429] * (100 - limit)
    api = httpx.get(f"{url}/api/campaigns", headers={"Authorization": "Bearer guess"})
    assert api.status_code == 429 and api.headers["Retry-After"] == "60"  # the API is closed to that client too
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    assert other.post(f"{url}/review/forged", data={"choice": "approve"}).status_code == 404  # another address
    rejected = audits(harness, "Link Rejected")
    assert [(a.computer_ip, a.details) for a in rejected] == [
        ("127.0.0.1", "review link rejected: this link is not valid"),
        ("127.0.0.2", "review link rejected: this link is not valid")]

    clock.advance(61)  # the window closes: the count is written, and the address may try again
    assert httpx.post(f"{url}/review/forged", data={"choice": "approve"}).status_code == 404
    rejected = audits(harness, "Link Rejected")
    counted = [a.details for a in rejected if a.computer_ip == "127.0.0.1" and "more time" in a.details]
    assert counted == [f"review link rejected {limit - 1} more time(s) from this address between "
                       "2030-01-07T09:00:00+00:00 and 2030-01-07T09:01:01+00:00: this link is not valid"]
    assert len(harness.audit()) - before == 4  # 101 refused links, 2 addresses: four records
    other.close()
