"""The console's sign-in, sessions and first page: cookies, CSRF, time limits, lock-out, floods, and a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Harness
from servers import serving

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts

PASSWORD = "a long enough password"
FLOW = """
name: Welcome journey
folder: demo
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: end}}
    - {id: end, type: left_campaign}
"""


@pytest.fixture
def console(make_runtime: Any, actor: Any, tmp_path: Path) -> Iterator[tuple[str, Harness]]:
    harness = Harness(make_runtime(), actor, tmp_path)
    Accounts(harness.runtime).add("grace", Role.OPERATOR, actor, password=PASSWORD)
    with serving(create_app(harness.runtime)) as url:
        yield url, harness


def sign_in(url: str, name: str = "grace", password: str = PASSWORD, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/sign-in", data={"name": name, "password": password}, headers=headers)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_signing_in_opens_the_campaigns_and_signing_out_ends_the_session(console: Any) -> None:
    url, harness = console
    harness.create(FLOW)
    assert httpx.get(f"{url}/").headers["location"] == "/sign-in"
    assert httpx.get(f"{url}/campaigns").headers["location"] == "/sign-in"
    signed = sign_in(url)
    assert (signed.status_code, signed.headers["location"]) == (303, "/campaigns")
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # plain http here
    session = signed.cookies["ck_session"]
    page = httpx.get(f"{url}/campaigns", cookies={"ck_session": session})
    assert page.status_code == 200 and "Welcome journey" in page.text and "grace (operator)" in page.text
    assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in page.headers[
        "content-security-policy"]

    forged = httpx.post(f"{url}/sign-out", data={"csrf": "guess"}, cookies={"ck_session": session})
    assert forged.status_code == 403  # without the page's token nothing happens
    assert httpx.get(f"{url}/campaigns", cookies={"ck_session": session}).status_code == 200
    out = httpx.post(f"{url}/sign-out", data={"csrf": csrf_of(page.text)}, cookies={"ck_session": session})
    assert (out.status_code, out.headers["location"]) == (303, "/sign-in")
    assert httpx.get(f"{url}/campaigns", cookies={"ck_session": session}).headers["location"] == "/sign-in"
    trail = [(r.audit_type, r.audit_sub_type, r.user_name, r.computer_ip) for r in harness.audit()
             if r.audit_type == "System Access"]
    assert trail == [("System Access", "Login", "grace", "127.0.0.1"), ("System Access", "Log Out", "grace",
                                                                          "127.0.0.1")]


def test_a_refused_sign_in_says_one_thing_and_audits_no_password(console: Any) -> None:
    url, harness = console
    for name, password in (("grace", "wrong password here"), ("nobody", PASSWORD)):
        refused = sign_in(url, name, password)
        assert refused.status_code == 401 and "ck_session" not in refused.cookies
        assert "Wrong name or password, or the account is locked for a while." in refused.text
    (failed,) = harness.audit("Login Failed")  # the second is coalesced into the first's window
    assert failed.audit_type == "System Access" and failed.computer_ip == "127.0.0.1"
    assert "PASSWORD" not in failed.details and "wrong password here" not in failed.details
    cross = sign_in(url, Origin="https://evil.example")
    assert cross.status_code == 403 and "ck_session" not in cross.cookies


def test_an_account_locks_after_repeated_failures_then_opens_again(console: Any, clock: Any) -> None:
    url, harness = console
    for _ in range(harness.runtime.settings.web.sign_in_lockout_failures):
        assert sign_in(url, password="not the password").status_code == 401
    assert sign_in(url).status_code == 401  # locked: the right password is refused too
    clock.advance(timedelta(minutes=harness.runtime.settings.web.sign_in_lockout_minutes, seconds=1))
    assert sign_in(url).status_code == 303


def test_a_session_ends_when_idle_at_its_limit_or_when_its_account_is_disabled(console: Any, clock: Any) -> None:
    url, harness = console
    web = harness.runtime.settings.web

    def opens(session: str) -> bool:
        return httpx.get(f"{url}/campaigns", cookies={"ck_session": session}).status_code == 200

    idle = sign_in(url).cookies["ck_session"]
    clock.advance(timedelta(minutes=web.session_idle_minutes, seconds=1))
    assert not opens(idle)

    busy = sign_in(url).cookies["ck_session"]
    started, step = clock.now(), timedelta(minutes=web.session_idle_minutes - 1)
    while clock.now() + step < started + timedelta(hours=web.session_hours):
        clock.advance(step)
        assert opens(busy)  # activity keeps it alive...
    clock.advance(step)
    assert not opens(busy)  # ...until its absolute limit

    accounts = Accounts(harness.runtime)
    accounts.add("root", Role.ADMIN, harness.actor, password=PASSWORD)
    live = sign_in(url).cookies["ck_session"]
    assert opens(live)
    accounts.disable("grace", harness.actor)
    assert not opens(live)


def test_a_flood_of_failed_sign_ins_is_a_few_audit_rows_and_then_429(console: Any) -> None:
    url, harness = console
    answers = [sign_in(url, f"user{n}", "wrong password here").status_code for n in range(100)]
    limit = harness.runtime.settings.web.max_rejections_per_window
    assert answers == [401] * limit + [429] * (100 - limit)
    assert sign_in(url).status_code == 429  # the client is out, its right password included, for the window
    assert len(harness.audit("Login Failed")) <= 2


def test_a_secure_cookie_behind_https(make_runtime: Any, actor: Any, tmp_path: Path) -> None:
    harness = Harness(make_runtime(web={"base_url": "https://campaigns.example.org"}), actor, tmp_path)
    Accounts(harness.runtime).add("grace", Role.OPERATOR, actor, password=PASSWORD)
    with serving(create_app(harness.runtime)) as url:
        signed = sign_in(url)
    assert signed.status_code == 303 and "Secure" in signed.headers["set-cookie"]


def test_in_a_browser_an_operator_signs_in_sees_the_campaigns_and_signs_out(console: Any, page: Any,
                                                                            tmp_path: Path) -> None:
    url, harness = console
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key\nk1\nk2\n"))
    harness.run_to_idle()
    page.goto(f"{url}/")
    assert page.url == f"{url}/sign-in"
    page.fill("#name", "grace")
    page.fill("#password", "not it at all")
    page.click("#sign-in")
    assert "Wrong name or password" in page.locator("#message").inner_text()
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(f"{url}/campaigns")
    row = page.locator("#campaigns tbody tr").first
    launched = harness.runtime.clock.now().strftime("%Y-%m-%d %H:%M UTC")
    assert row.locator("td").all_inner_texts()[:9] == ["Welcome journey", "demo", "journey", "In Progress", "1.0",
                                                       "", launched, "2", "2"]
    assert page.locator("#who").inner_text() == "grace (operator)"
    page.screenshot(path=str(tmp_path / "campaigns.png"))

    page.click("text=Welcome journey")
    page.wait_for_url(f"{url}/campaigns/{campaign_id}")
    assert page.locator("#state").inner_text() == "In Progress"
    page.select_option("#f-sort", "target")
    page.click("#run-filters button")
    assert page.locator("#runs tbody tr td:first-child").all_inner_texts() == ["k1", "k2"]
    page.screenshot(path=str(tmp_path / "campaign.png"), full_page=True)
    page.click("#runs >> text=k1")
    assert page.locator("#status").inner_text() == "waiting (still running)"
    taken = page.locator("svg.workflow g.node.taken")
    assert sorted(taken.evaluate_all("nodes => nodes.map(n => n.dataset.node)")) == ["start", "wait"]
    assert page.locator("svg.workflow g.node.current").get_attribute("data-node") == "wait"
    page.screenshot(path=str(tmp_path / "execution.png"), full_page=True)
    page.click("#tab-timeline")
    assert page.locator("#timeline tbody tr td:nth-child(2)").all_inner_texts() == ["start", "wait"]
    page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)

    page.click("nav >> text=Audit log")
    page.select_option("#f-type", "System Access")
    page.click("#filter")
    assert page.locator("#audit tbody tr td:nth-child(13)").all_inner_texts() == ["Login", "Login Failed"]
    page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
    page.click("#sign-out")
    page.wait_for_url(f"{url}/sign-in")
    page.goto(f"{url}/campaigns")
    assert page.url == f"{url}/sign-in"


def signed(url: str, name: str = "grace") -> dict[str, str]:
    return {"ck_session": sign_in(url, name).cookies["ck_session"]}


def texts(html: str, table: str) -> list[list[str]]:
    """The cells of a table of the page, row by row (tags dropped)."""
    body = html.split(f'id="{table}"')[1].split("</table>")[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S) if "<td" in row]


def link(page: str, name: str) -> str:
    """The href of the page's link with this id (the executions' and the audit log's paging)."""
    found = re.search(rf'href="([^"]+)" id="{name}"', page)
    assert found, name
    return found.group(1).replace("&amp;", "&")


def harness_id(harness: Harness, campaign_id: str, key: str) -> int:
    return next(run.id for run in harness.runs(campaign_id) if run.target_key == key)


def test_a_campaign_s_page_counts_its_runs_and_lists_its_executions(console: Any, clock: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from campaignkit.core.web.console import campaigns

    monkeypatch.setattr(campaigns, "PAGE_SIZE", 2)
    url, harness = console
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key\nada\nalan\ngrace\n"))
    harness.run_to_idle()
    ada = next(run for run in harness.runs(campaign_id) if run.target_key == "ada")
    from campaignkit.core import send_event

    send_event(harness.runtime, ada.id, "clicked")
    harness.run_to_idle()
    cookies = signed(url)
    page = httpx.get(f"{url}/campaigns/{campaign_id}", params={"sort": "target"}, cookies=cookies).text
    assert "<b>2</b>waiting" in page and "<b>1</b>completed" in page
    assert [row[:3] for row in texts(page, "runs")] == [["ada", "completed", "end"], ["alan", "waiting", "wait"]]
    older = link(page, "older")
    assert older == f"/campaigns/{campaign_id}?sort=target&after={harness_id(harness, campaign_id, 'alan')}&at=alan"
    second = httpx.get(f"{url}{older}", cookies=cookies).text
    assert [row[0] for row in texts(second, "runs")] == ["grace"] and 'id="older"' not in second
    back = httpx.get(f"{url}{link(second, 'newer')}", cookies=cookies).text
    assert [row[0] for row in texts(back, "runs")] == ["ada", "alan"] and 'id="newer"' not in back
    bookmark = httpx.get(f"{url}/campaigns/{campaign_id}", params={"sort": "target", "page": 2}, cookies=cookies).text
    assert [row[0] for row in texts(bookmark, "runs")] == ["grace"] and 'id="older"' not in bookmark  # old bookmarks
    waiting = httpx.get(f"{url}/campaigns/{campaign_id}", params={"status": "waiting", "search": "gra"},
                        cookies=cookies).text
    assert [row[0] for row in texts(waiting, "runs")] == ["grace"]
    assert httpx.get(f"{url}/campaigns/nope", cookies=cookies).status_code == 404
    assert httpx.get(f"{url}/campaigns/{campaign_id}").headers["location"] == "/sign-in"

    timeline = httpx.get(f"{url}/runs/{ada.id}", params={"view": "timeline"}, cookies=cookies).text
    assert [row[1:3] + row[4:6] for row in texts(timeline, "timeline")] == [
        ["start", "entered campaign", "ok", "next"], ["wait", "wait for event", "ok", "clicked"],
        ["end", "left campaign", "ok", ""]]
    assert "completed (finished)" in timeline and "<dt>key</dt><dd>ada</dd>" in timeline


def test_the_audit_log_shows_every_column_filters_and_pages_by_id(console: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from campaignkit.core.web.console import audit

    monkeypatch.setattr(audit, "PAGE_SIZE", 3)
    url, harness = console
    for n in range(4):
        harness.create(FLOW.replace("Welcome journey", f"Journey {n}"))
    cookies = signed(url)  # a Login record too
    page = httpx.get(f"{url}/audit", cookies=cookies).text
    headers = re.findall(r'<th scope="col">([^<]+)</th>', page.split('id="audit"')[1].split("</thead>")[0])
    assert headers == [title for _, title in audit.COLUMNS] and len(headers) == 16
    first = texts(page, "audit")
    assert [row[12] for row in first] == ["Login", "Created", "Created"]  # newest first
    older = re.search(r'href="([^"]+)" id="older"', page).group(1).replace("&amp;", "&")
    rest = texts(httpx.get(f"{url}{older}", cookies=cookies).text, "audit")
    assert [int(row[0]) for row in rest] == [int(first[-1][0]) - 1 - n for n in range(3)]
    created = texts(httpx.get(f"{url}/audit", params={"type": "Object Change", "object": "Journey 2"},
                              cookies=cookies).text, "audit")
    assert [(row[7], row[12]) for row in created] == [("Journey 2", "Created")]
    bad = httpx.get(f"{url}/audit", params={"since": "last tuesday"}, cookies=cookies).text
    assert "since: &#39;last tuesday&#39; is not an ISO 8601 time" in bad
    assert httpx.get(f"{url}/audit").headers["location"] == "/sign-in"


BRANCHING = """
name: Branching journey
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: split}
    - {id: split, type: branch, config: {condition: "target.plan == 'pro'"}, edges: {'true': pro, 'false': basic}}
    - {id: pro, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: end}}
    - {id: basic, type: left_campaign}
    - {id: end, type: left_campaign}
"""


def marked(html: str, what: str) -> set[str]:
    """The node ids (or source:label edges) the page's map marks, by class."""
    return {name for kind, name in re.findall(rf'<g class="{what}([^"]*)" data-{what}="([^"]+)"', html)
            if " taken" in kind}


def test_an_execution_s_map_marks_exactly_what_it_went_through(console: Any) -> None:
    url, harness = console
    campaign_id = harness.create(BRANCHING)
    harness.launch(campaign_id, harness.csv("key,plan\nada,pro\nalan,basic\n"))
    harness.run_to_idle()
    runs = {run.target_key: run for run in harness.runs(campaign_id)}
    cookies = signed(url)
    ada = httpx.get(f"{url}/runs/{runs['ada'].id}", cookies=cookies).text
    alan = httpx.get(f"{url}/runs/{runs['alan'].id}", cookies=cookies).text
    every_node = set(re.findall(r'data-node="([^"]+)"', ada))
    assert every_node == {"start", "split", "pro", "basic", "end"}  # the whole workflow is drawn for both
    assert marked(ada, "node") == {"start", "split", "pro"} and marked(ada, "edge") == {"start:next", "split:true"}
    assert 'class="node taken current" data-node="pro"' in ada and "(still running)" in ada
    assert marked(alan, "node") == {"start", "split", "basic"} and marked(alan, "edge") == {"start:next",
                                                                                            "split:false"}
    assert " current" not in alan and "(finished)" in alan
    timeline = httpx.get(f"{url}/runs/{runs['alan'].id}", params={"view": "timeline"}, cookies=cookies).text
    assert 'id="timeline"' in timeline and 'id="workflow"' not in timeline
    full = httpx.get(f"{url}/runs/{runs['ada'].id}/map", cookies=cookies).text
    assert marked(full, "node") == {"start", "split", "pro"} and 'id="back"' in full


def test_the_map_layout_sets_loops_aside_and_routes_long_edges_around_nodes() -> None:
    from campaignkit.core.definitions.workflow import Workflow
    from campaignkit.core.web.console.workflow_map import NODE_WIDTH, draw

    workflow = Workflow.model_validate({"nodes": [
        {"id": "start", "type": "entered_campaign", "next": "ask"},
        {"id": "ask", "type": "send_message", "next": "wait", "edges": {"failure": "end"}},
        {"id": "wait", "type": "wait_for_event", "config": {"events": ["done"], "timeout": "P3D"},
         "edges": {"done": "end", "timeout": "remind"}},
        {"id": "remind", "type": "send_message", "next": "wait"},  # back up: a loop
        {"id": "end", "type": "left_campaign"},
    ]})
    drawn = draw(workflow, ["start", "ask", "wait", "remind", "wait"], [("wait", "timeout"), ("remind", "next")],
                 current="wait")
    layers = {node.id: node.layer for node in drawn.nodes}
    assert layers == {"start": 0, "ask": 1, "wait": 2, "remind": 3, "end": 3}
    assert len({(node.x, node.y) for node in drawn.nodes}) == len(drawn.nodes)  # no two nodes on one spot
    edges = {(edge.source, edge.label): edge for edge in drawn.edges}
    assert edges[("remind", "next")].loop and not edges[("wait", "timeout")].loop
    assert {key for key, edge in edges.items() if edge.taken} == {("wait", "timeout"), ("remind", "next")}
    # ask -> end skips the layer of wait: its lane runs right of wait's box.
    lane = float(edges[("ask", "failure")].path.split("L")[1].split(",")[0])
    assert lane > drawn.by_id["wait"].x + NODE_WIDTH / 2
    assert [node.id for node in drawn.nodes if node.current] == ["wait"]


def test_an_operator_launches_pauses_and_terminates_from_the_console_an_auditor_cannot(console: Any) -> None:
    url, harness = console
    audience = harness.csv("key\nk1\nk2\n")
    campaign_id = harness.create(FLOW.replace("folder: demo",
                                              f"folder: demo\naudience: {{source: csv, path: {audience}}}"))
    Accounts(harness.runtime).add("ida", Role.AUDITOR, harness.actor, password=PASSWORD)
    grace, ida = signed(url), signed(url, "ida")
    page = httpx.get(f"{url}/campaigns/{campaign_id}", cookies=grace).text
    assert 'id="action-launch"' in page and 'id="action-pause"' not in page
    assert 'id="actions"' not in httpx.get(f"{url}/campaigns/{campaign_id}", cookies=ida).text

    def act(action: str, cookies: dict[str, str], **headers: str) -> httpx.Response:
        confirm = httpx.get(f"{url}/campaigns/{campaign_id}/confirm", params={"action": action}, cookies=cookies)
        csrf = csrf_of(confirm.text) if confirm.status_code == 200 else "none"
        return httpx.post(f"{url}/campaigns/{campaign_id}/actions", data={"action": action, "csrf": csrf},
                          cookies=cookies, headers=headers)

    assert httpx.get(f"{url}/campaigns/{campaign_id}/confirm", params={"action": "launch"},
                     cookies=ida).status_code == 403
    assert act("launch", ida).status_code == 403
    assert httpx.post(f"{url}/campaigns/{campaign_id}/actions", data={"action": "launch", "csrf": "guess"},
                      cookies=grace).status_code == 403
    assert act("launch", grace, Origin="https://evil.example").status_code == 403
    assert harness.runs(campaign_id) == []  # nothing of that happened

    launched = act("launch", grace)
    assert (launched.status_code, launched.headers["location"]) == (303, f"/campaigns/{campaign_id}?done=launch")
    assert len(harness.runs(campaign_id)) == 2
    assert act("pause", grace).status_code == 303
    page = httpx.get(f"{url}/campaigns/{campaign_id}?done=pause", cookies=grace).text
    assert "Paused." in page and 'id="action-resume"' in page and ">Paused<" in page
    assert act("terminate", grace).status_code == 303
    assert {run.status for run in harness.runs(campaign_id)} == {"terminated"}
    again = act("terminate", grace)  # a second tab, an old page: the service says why, nothing changes
    assert again.status_code == 409 and "terminated" in again.text
    trail = [(r.audit_sub_type, r.user_name) for r in harness.audit() if r.object_id == campaign_id
             and r.audit_sub_type.startswith("Workflow")]
    assert trail == [("Workflow Started", "grace"), ("Workflow Pause Request", "grace"),
                     ("Workflow Termination Request", "grace")]


def test_an_operator_launches_at_a_time_from_the_console(console: Any, clock: Any) -> None:
    url, harness = console
    audience = harness.csv("key\nk1\n")
    campaign_id = harness.create(FLOW.replace("folder: demo",
                                              f"folder: demo\naudience: {{source: csv, path: {audience}}}"))
    grace = signed(url)
    confirm = httpx.get(f"{url}/campaigns/{campaign_id}/confirm", params={"action": "launch"}, cookies=grace).text
    assert 'type="datetime-local" name="at"' in confirm
    later = clock.now() + timedelta(days=2)
    bad = httpx.post(f"{url}/campaigns/{campaign_id}/actions", cookies=grace,
                     data={"action": "launch", "csrf": csrf_of(confirm), "at": "next tuesday"})
    assert bad.status_code == 400 and "is not a time" in bad.text and harness.campaigns.get(campaign_id)[
        "state"] == "draft"
    at = later.strftime("%Y-%m-%dT%H:%M")  # what the browser's datetime-local sends: no zone, read as UTC
    scheduled = httpx.post(f"{url}/campaigns/{campaign_id}/actions", cookies=grace,
                           data={"action": "launch", "csrf": csrf_of(confirm), "at": at})
    assert scheduled.headers["location"] == f"/campaigns/{campaign_id}?done=scheduled"
    summary = harness.campaigns.get(campaign_id)
    assert summary["state"] == "scheduled" and harness.runs(campaign_id) == []
    page = httpx.get(f"{url}/campaigns/{campaign_id}?done=scheduled", cookies=grace).text
    assert "Scheduled: its first cycle" in page and later.strftime("%Y-%m-%d %H:%M") in page


def test_admins_change_roles_and_disable_accounts_others_cannot(console: Any) -> None:
    url, harness = console
    Accounts(harness.runtime).add("root", Role.ADMIN, harness.actor, password=PASSWORD)
    root, grace = signed(url, "root"), signed(url)
    assert 'href="/users"' not in httpx.get(f"{url}/campaigns", cookies=grace).text
    assert httpx.get(f"{url}/users", cookies=grace).status_code == 403
    page = httpx.get(f"{url}/users", cookies=root)
    assert page.status_code == 200 and 'href="/users" aria-current="page"' in page.text
    rows = {row[0]: row[1:3] for row in texts(page.text, "users")}
    assert rows == {"grace": ["operator", "active"], "root": ["admin", "active"]}
    csrf = csrf_of(page.text)

    def change(name: str, cookies: dict[str, str], **fields: str) -> httpx.Response:
        return httpx.post(f"{url}/users/{name}", data={"csrf": csrf, **fields}, cookies=cookies)

    assert change("grace", grace, change="set-role", role="admin").status_code == 403  # an operator cannot
    assert change("grace", root, change="set-role", role="admin", csrf="guess").status_code == 403
    assert change("grace", root, change="set-role", role="auditor").headers["location"] == "/users"
    assert change("root", root, change="disable").status_code == 409  # the last active admin stays
    assert change("grace", root, change="disable").status_code == 303
    assert httpx.get(f"{url}/campaigns", cookies=grace).headers["location"] == "/sign-in"  # her session ended
    rows = {row[0]: row[1:3] for row in texts(httpx.get(f"{url}/users", cookies=root).text, "users")}
    assert rows["grace"] == ["auditor", "disabled"]
    trail = [(r.audit_sub_type, r.user_name, r.details) for r in harness.audit()
             if r.audit_sub_type in ("Role Changed", "User Disabled")]
    assert trail == [("Role Changed", "root", "user 'grace': role operator -> auditor"),
                     ("User Disabled", "root", "user 'grace' disabled")]


def test_a_campaign_s_map_counts_the_runs_at_each_node_and_edge(console: Any) -> None:
    url, harness = console
    campaign_id = harness.create(BRANCHING)
    harness.launch(campaign_id, harness.csv("key,plan\nada,pro\nalan,basic\nlinus,pro\nmargaret,pro\n"))
    harness.run_to_idle()
    from campaignkit.core import send_event

    ada = next(run for run in harness.runs(campaign_id) if run.target_key == "ada")
    send_event(harness.runtime, ada.id, "clicked")
    harness.run_to_idle()
    cookies = signed(url)
    page = httpx.get(f"{url}/campaigns/{campaign_id}", cookies=cookies).text
    overview = page.split('id="workflow"')[1].split("</svg>")[0]
    edges = dict(re.findall(r'data-edge="([^"]+)" data-count="(\d+)"', overview))
    assert edges == {"start:next": "4", "split:true": "3", "split:false": "1", "pro:clicked": "1"}
    counted = dict(re.findall(r'data-node="([^"]+)"[^>]*>\s*<title>[^<]*</title>\s*<rect[^>]*/>\s*<text[^>]*>[^<]*'
                              r'</text>\s*<text[^>]*data-counts>([^<]*)</text>', overview))
    assert counted == {"start": "4 entered", "split": "4 entered", "pro": "3 entered · 2 waiting",
                       "basic": "1 entered", "end": "1 entered"}
    assert marked(page, "node") == {"start", "split", "pro", "basic", "end"}
    assert re.search(r'class="node taken current" data-node="pro"', overview)  # runs wait there
    assert [row[:3] for row in texts(page, "node-counts")] == [
        ["4", "0", "0"], ["4", "0", "0"], ["3", "2", "0"], ["1", "0", "0"], ["1", "0", "0"]]
    waiting = httpx.get(f"{url}/campaigns/{campaign_id}", params={"node": "pro", "sort": "target"},
                        cookies=cookies).text
    assert [row[:3] for row in texts(waiting, "runs")] == [["linus", "waiting", "pro"], ["margaret", "waiting", "pro"]]


def test_a_contact_s_page_lists_its_runs_in_every_campaign(console: Any, clock: Any) -> None:
    url, harness = console
    first = harness.create(FLOW)
    second = harness.create(BRANCHING)
    harness.launch(first, harness.csv("key,plan\nada@example.org,pro\nalan@example.org,basic\n"))
    harness.launch(second, harness.csv("key,plan\nada@example.org,pro\n"))
    harness.run_to_idle()
    cookies = signed(url)
    page = httpx.get(f"{url}/contacts/ada@example.org", cookies=cookies).text
    assert [row[:5] for row in texts(page, "contact-runs")] == [
        ["Branching journey", "journey", row_cycle(harness, second), "waiting", "pro"],
        ["Welcome journey", "journey", row_cycle(harness, first), "waiting", "wait"]]
    assert "<dt>plan</dt><dd>pro</dd>" in page
    ada = next(run for run in harness.runs(second) if run.target_key == "ada@example.org")
    execution = httpx.get(f"{url}/runs/{ada.id}", cookies=cookies).text
    link = re.search(r'href="([^"]+)" id="contact"', execution).group(1)
    assert link == "/contacts/ada%40example.org" and httpx.get(f"{url}{link}", cookies=cookies).text == page
    assert httpx.get(f"{url}/contacts/nobody@example.org", cookies=cookies).status_code == 404
    assert httpx.get(f"{url}/contacts/ada@example.org").headers["location"] == "/sign-in"
    token = harness.api_token("auditor", "read")
    api = httpx.get(f"{url}/api/contacts/ada@example.org", headers={"Authorization": f"Bearer {token}"}).json()
    assert [(r["campaign_name"], r["status"]) for r in api["runs"]] == [("Branching journey", "waiting"),
                                                                         ("Welcome journey", "waiting")]


def row_cycle(harness: Harness, campaign_id: str) -> str:
    (run, *_) = harness.runs(campaign_id)
    return str(run.launch_id)


def test_the_api_reference_is_a_page_for_signed_in_people(console: Any) -> None:
    url, harness = console
    assert httpx.get(f"{url}/api/docs").headers["location"] == "/sign-in"  # no session: no reference, and no 401
    page = httpx.get(f"{url}/api/docs", cookies=signed(url)).text
    listed = re.findall(r'<li><a href="#op-\d+"><code>([A-Z]+ [^<]+)</code></a>', page)
    documented = {f"{method.upper()} {path}" for path, item in create_app(harness.runtime).openapi()["paths"].items()
                  for method in item}
    assert set(listed) == documented and "POST /api/campaigns/{campaign_id}/launch" in listed
    assert "<script" not in page and "cdn" not in page.lower()
    sections = {re.search(r"<h2><code>([^<]+)</code></h2>", part).group(1): part
                for part in page.split('<section class="operation"')[1:]}
    assert "Needs a token of an admin." in sections["GET /api/plugins"]
    assert "Needs a write token of an operator or admin." in sections["POST /api/campaigns/{campaign_id}/launch"]
    assert "Needs a token of any account." in sections["GET /api/campaigns"]


def test_in_a_browser_runs_that_took_different_branches_are_marked_apart_and_an_auditor_sees_no_action(
        console: Any, page: Any, tmp_path: Path) -> None:
    url, harness = console
    campaign_id = harness.create(BRANCHING)
    harness.launch(campaign_id, harness.csv("key,plan\nada,pro\nalan,basic\n"))
    harness.run_to_idle()
    Accounts(harness.runtime).add("ida", Role.AUDITOR, harness.actor, password=PASSWORD)
    page.goto(f"{url}/sign-in")
    page.fill("#name", "ida")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(f"{url}/campaigns")
    assert page.locator("#new-campaign").count() == 0  # an auditor creates nothing
    page.click("text=Branching journey")
    assert page.locator("#actions").count() == 0 and page.locator("text=Edit definition").count() == 0

    def marked(what: str) -> list[str]:
        return sorted(page.locator(f"svg.workflow g.{what}.taken").evaluate_all(
            f"found => found.map(g => g.dataset.{what})"))

    executed = {}
    for key in ("ada", "alan"):
        page.goto(f"{url}/campaigns/{campaign_id}")
        page.fill("#f-search", key)
        page.click("#run-filters button")
        page.click(f"#runs >> text={key}")
        executed[key] = (marked("node"), marked("edge"))
        page.screenshot(path=str(tmp_path / f"{key}.png"), full_page=True)
    assert executed == {"ada": (["pro", "split", "start"], ["split:true", "start:next"]),
                        "alan": (["basic", "split", "start"], ["split:false", "start:next"])}
    assert page.locator("svg.workflow g.node.current").count() == 0  # alan's run has finished
    page.click("#tab-timeline")
    assert page.locator("#timeline tbody tr td:nth-child(2)").all_inner_texts() == ["start", "split", "basic"]
