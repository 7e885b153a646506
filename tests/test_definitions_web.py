"""Campaigns created and edited from a definition's text, through the API and the console: the same loader and the same
problems as `campaignkit campaign create`, by line, column and node; files named only inside definitions.files_dir;
writers only; audited as the person; and a browser that pastes a mistake, sees where it is, fixes it and lands on
the campaign."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Harness
from servers import serving
from test_console import PASSWORD, csrf_of, sign_in

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.campaigns.queries import list_campaigns
from campaignkit.core.definitions.loader import load_definition_file
from campaignkit.core.definitions.problems import parse_problem
from campaignkit.core.definitions.remote import files_dir
from campaignkit.core.errors import DefinitionError

FLOW = """\
# Greets, waits for a click, leaves.
name: Welcome journey
folder: web
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: end}}
    - {id: end, type: left_campaign}
"""
BROKEN = FLOW.replace("type: wait_for_event", "type: wait_for_evnt")  # line 7: the node "wait"
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def web(make_runtime: Any, actor: Any, tmp_path: Path) -> Iterator[tuple[str, Harness]]:
    harness = Harness(make_runtime(var_dir=tmp_path / "var"), actor, tmp_path)
    accounts = Accounts(harness.runtime)
    accounts.add("grace", Role.OPERATOR, actor, password=PASSWORD)
    accounts.add("audrey", Role.AUDITOR, actor, password=PASSWORD)
    with serving(create_app(harness.runtime)) as url:
        yield url, harness


def bearer(harness: Harness, role: str = "operator", scope: str = "write") -> dict[str, str]:
    return {"Authorization": f"Bearer {harness.api_token(role, scope)}"}


def test_the_api_creates_a_campaign_from_yaml_or_json_and_gives_back_what_was_written(web: Any) -> None:
    url, harness = web
    writer = {**bearer(harness), **YAML}
    made = httpx.post(f"{url}/api/campaigns", content=FLOW, headers=writer)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body == {"id": body["id"], "name": "Welcome journey", "version": "1.0", "created": True}
    assert made.headers["location"] == f"/api/campaigns/{body['id']}"

    reader = bearer(harness, "auditor", "read")
    back = httpx.get(f"{url}/api/campaigns/{body['id']}/definition", headers=reader).json()
    assert back == {"id": body["id"], "name": "Welcome journey", "version": "1.0", "source": "web:<request>",
                    "text": FLOW, "as_written": True}  # comments and all
    (created,) = harness.audit("Created")
    assert (created.user_name, created.computer_ip, created.object_id) == ("operator-tester", "127.0.0.1", body["id"])

    as_json = ('{"name": "From JSON", "workflow": {"nodes": [{"id": "start", "type": "entered_campaign", '
               '"next": "end"}, {"id": "end", "type": "left_campaign"}]}}')
    made = httpx.post(f"{url}/api/campaigns?filename=ci/flow.json", content=as_json,
                      headers={**bearer(harness), "Content-Type": "application/json"})
    assert made.status_code == 201 and made.json()["name"] == "From JSON"
    assert harness.campaigns.get(made.json()["id"])["name"] == "From JSON"
    again = httpx.post(f"{url}/api/campaigns", content=FLOW, headers=writer)
    assert again.status_code == 409 and "already exists" in again.json()["detail"]


def test_an_invalid_definition_is_422_with_each_problem_at_its_line_column_and_node(web: Any, tmp_path: Path) -> None:
    url, harness = web
    refused = httpx.post(f"{url}/api/campaigns?filename=welcome.yaml", content=BROKEN,
                         headers={**bearer(harness), **YAML})
    assert refused.status_code == 422
    (problem,) = refused.json()["detail"]
    assert problem["line"] == 7 and problem["column"] == 18 and problem["node"] == "wait"
    assert problem["path"] == "workflow.nodes[1].type"
    assert problem["message"].startswith("unknown step type 'wait_for_evnt'") and "did you mean 'wait_for_event'" in \
        problem["message"]
    # The same problem, word for word, as `campaignkit campaign create welcome.yaml` prints.
    file = tmp_path / "welcome.yaml"
    file.write_text(BROKEN)
    with pytest.raises(DefinitionError) as cli:
        harness.campaigns.create(load_definition_file(file, kinds=harness.runtime.kinds), harness.actor)
    assert problem["problem"] == cli.value.problems[0].replace(str(file), "welcome.yaml")

    syntax = httpx.post(f"{url}/api/campaigns", content="name: x\nworkflow: [a\n", headers={**bearer(harness), **YAML})
    (problem,) = syntax.json()["detail"]
    assert syntax.status_code == 422 and (problem["line"], problem["node"]) == (3, None)
    assert problem["problem"].startswith("<request>:3:1: ")
    assert httpx.post(f"{url}/api/campaigns", content="", headers={**bearer(harness), **YAML}).status_code == 422
    form = httpx.post(f"{url}/api/campaigns", data={"definition": FLOW}, headers=bearer(harness))
    assert form.status_code == 415
    latin = httpx.post(f"{url}/api/campaigns", content=FLOW,
                       headers={**bearer(harness), "Content-Type": "application/yaml; charset=latin-1"})
    assert latin.status_code == 415
    assert list_campaigns(harness.runtime) == [] and harness.audit("Created") == []


def test_a_new_version_through_the_api_and_who_may_send_one(web: Any) -> None:
    url, harness = web
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key\nk1\n"))
    changed = FLOW.replace("events: [clicked]", "events: [clicked, opened]").replace(
        "edges: {clicked: end}", "edges: {clicked: end, opened: end}")
    path = f"{url}/api/campaigns/{campaign_id}/definition"
    for role, scope in (("auditor", "read"), ("operator", "read")):
        assert httpx.put(path, content=changed, headers={**bearer(harness, role, scope), **YAML}).status_code == 403
        assert httpx.post(f"{url}/api/campaigns", content=changed.replace("Welcome", "Other"),
                          headers={**bearer(harness, role, scope), **YAML}).status_code == 403
    assert httpx.put(path, content=changed, headers=YAML).status_code == 401
    saved = httpx.put(path, content=changed, headers={**bearer(harness, "admin"), **YAML})
    assert saved.status_code == 200 and saved.json()["version"] == "1.1" and not saved.json()["created"]
    assert httpx.get(path, headers=bearer(harness, "auditor", "read")).json()["text"] == changed
    (edited,) = harness.audit("Edited")
    assert edited.user_name == "admin-tester" and "version 1.1" in edited.details
    refused = httpx.put(path, content=BROKEN, headers={**bearer(harness), **YAML})
    assert refused.status_code == 422 and refused.json()["detail"][0]["node"] == "wait"
    assert httpx.put(f"{url}/api/campaigns/nope/definition", content=FLOW,
                     headers={**bearer(harness), **YAML}).status_code == 404
    assert httpx.get(f"{url}/api/campaigns/nope/definition", headers=bearer(harness)).status_code == 404
    assert len(harness.audit("Edited")) == 1


AUDIENCE = FLOW.replace("workflow:", "audience: {source: csv, path: PATH}\nworkflow:")


@pytest.mark.parametrize("path", ["/etc/passwd", "../../x.csv", "lists/../../x.csv", "..\\\\x.csv", "~/x.csv",
                                  "C:\\\\x.csv", "escape/passwd"])
def test_a_sent_definition_names_no_file_outside_the_definition_files_folder(web: Any, path: str) -> None:
    url, harness = web
    folder = files_dir(harness.runtime.settings)
    folder.mkdir(parents=True)
    (folder / "escape").symlink_to("/etc")  # a link in the folder does not lead out of it either
    refused = httpx.post(f"{url}/api/campaigns", content=AUDIENCE.replace("PATH", f'"{path}"'),
                         headers={**bearer(harness), **YAML})
    assert refused.status_code == 422, refused.text
    (problem,) = refused.json()["detail"]
    assert (problem["line"], problem["path"]) == (4, "audience.path"), problem
    assert "definitions.files_dir" in problem["message"] and str(folder) not in refused.text
    assert list_campaigns(harness.runtime) == [] and harness.audit("Created") == []


def test_a_sent_definition_reads_its_audience_from_the_definition_files_folder(web: Any, tmp_path: Path,
                                                                                monkeypatch: Any) -> None:
    url, harness = web
    folder = files_dir(harness.runtime.settings)
    (folder / "lists").mkdir(parents=True)
    (folder / "lists" / "staff.csv").write_text("key\nfrom-the-folder\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "staff.csv").write_text("key\nfrom-the-working-directory\n")
    made = httpx.post(f"{url}/api/campaigns", content=AUDIENCE.replace("PATH", "lists/staff.csv"),
                      headers={**bearer(harness), **YAML})
    assert made.status_code == 201, made.text
    launched = httpx.post(f"{url}/api/campaigns/{made.json()['id']}/launch", json={}, headers=bearer(harness))
    assert launched.status_code == 200, launched.text
    assert [run.target_key for run in harness.runs(made.json()["id"])] == ["from-the-folder"]
    assert harness.campaigns.get(made.json()["id"])["state"] == "in_progress"


def test_a_template_folder_is_looked_up_among_the_template_folders_only(web: Any) -> None:
    url, harness = web
    climbing = FLOW.replace("{id: end, type: left_campaign}", "{id: end, type: send_message, config: "
                            "{channel: log, template: ../../../../etc}}")
    refused = httpx.post(f"{url}/api/campaigns", content=climbing, headers={**bearer(harness), **YAML})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["node"] == "end" and "not found" in refused.json()["detail"][0]["message"]


def test_a_definition_up_to_definitions_max_file_bytes_is_taken_and_a_larger_one_refused(web: Any) -> None:
    url, harness = web
    limit = harness.runtime.settings.definitions.max_file_bytes
    large = FLOW + ("#" + "x" * 98 + "\n") * ((limit - len(FLOW)) // 100)  # comments: text, not values
    assert len(large) > harness.runtime.settings.web.max_api_body_bytes  # more than any other API body
    made = httpx.post(f"{url}/api/campaigns", content=large, headers={**bearer(harness), **YAML})
    assert made.status_code == 201, made.text
    larger = large.replace("Welcome", "Other") + "#" * 200
    assert httpx.post(f"{url}/api/campaigns", content=larger, headers={**bearer(harness), **YAML}).status_code == 413


def test_problem_lines_split_into_their_parts() -> None:
    problem = parse_problem("f.yaml:3:5: workflow.nodes[0].config.to (node 'a b'): template syntax error", "f.yaml")
    assert (problem.line, problem.column, problem.path, problem.node) == (3, 5, "workflow.nodes[0].config.to", "a b")
    assert problem.message == "template syntax error"
    plain = parse_problem("f.yaml: the definition is larger than 10 bytes (definitions.max_file_bytes)", "f.yaml")
    assert (plain.line, plain.path, plain.node) == (None, None, None) and plain.message.startswith("the definition")
    named = parse_problem("f.yaml: node 'x', text: template 'a' not found", "f.yaml")
    assert named.node == "x" and named.path is None


# --- the console ---------------------------------------------------------------------------------------------------


def signed_in(url: str, name: str = "grace") -> dict[str, str]:
    return {"ck_session": sign_in(url, name).cookies["ck_session"]}


def test_in_the_console_an_operator_pastes_a_definition_and_an_auditor_may_not(web: Any) -> None:
    url, harness = web
    grace = signed_in(url)
    listing = httpx.get(f"{url}/campaigns", cookies=grace)
    assert 'href="/campaigns/new"' in listing.text
    form = httpx.get(f"{url}/campaigns/new", cookies=grace)
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    csrf = csrf_of(form.text)

    refused = httpx.post(f"{url}/campaigns/new", data={"csrf": csrf, "text": BROKEN.replace("\n", "\r\n")},
                         cookies=grace)
    assert refused.status_code == 422
    assert 'href="#line-7" class="where">line 7, column 18</a>' in refused.text
    assert '<code class="node">wait</code>' in refused.text and "unknown step type" in refused.text
    assert "type: wait_for_evnt, config: {events: [clicked]}" in refused.text  # the text is kept, to be fixed
    assert '<li id="line-7" class="marked">' in refused.text
    assert list_campaigns(harness.runtime) == []

    assert httpx.post(f"{url}/campaigns/new", data={"text": FLOW}, cookies=grace).status_code == 403  # no CSRF
    crossed = httpx.post(f"{url}/campaigns/new", data={"csrf": csrf, "text": FLOW}, cookies=grace,
                         headers={"Origin": "https://evil.example"})
    assert crossed.status_code == 403 and list_campaigns(harness.runtime) == []

    saved = httpx.post(f"{url}/campaigns/new", data={"csrf": csrf, "text": FLOW}, cookies=grace)
    assert saved.status_code == 303
    (campaign,) = list_campaigns(harness.runtime)
    assert saved.headers["location"] == f"/campaigns/{campaign['id']}?done=created"
    page = httpx.get(f"{url}{saved.headers['location']}", cookies=grace)
    assert "Created." in page.text and f'href="/campaigns/{campaign["id"]}/definition"' in page.text
    (created,) = harness.audit("Created")
    assert (created.user_name, created.computer_ip) == ("grace", "127.0.0.1")
    assert "web:<pasted>" in created.details

    audrey = signed_in(url, "audrey")
    assert 'href="/campaigns/new"' not in httpx.get(f"{url}/campaigns", cookies=audrey).text
    assert "/definition" not in httpx.get(f"{url}/campaigns/{campaign['id']}", cookies=audrey).text
    assert httpx.get(f"{url}/campaigns/new", cookies=audrey).status_code == 403
    assert httpx.get(f"{url}/campaigns/{campaign['id']}/definition", cookies=audrey).status_code == 403
    audrey_csrf = csrf_of(httpx.get(f"{url}/campaigns", cookies=audrey).text)
    other = FLOW.replace("Welcome", "Other")
    assert httpx.post(f"{url}/campaigns/new", data={"csrf": audrey_csrf, "text": other},
                      cookies=audrey).status_code == 403
    assert len(list_campaigns(harness.runtime)) == 1


def test_in_the_console_a_file_is_uploaded_and_a_definition_edited_into_a_new_version(web: Any) -> None:
    url, harness = web
    grace = signed_in(url)
    csrf = csrf_of(httpx.get(f"{url}/campaigns/new", cookies=grace).text)
    uploaded = httpx.post(f"{url}/campaigns/new", data={"csrf": csrf, "text": ""}, cookies=grace,
                          files={"file": ("C:\\flows\\welcome.yaml", FLOW.encode(), "application/yaml")})
    assert uploaded.status_code == 303, uploaded.text
    (campaign,) = list_campaigns(harness.runtime)
    assert harness.campaigns.get(campaign["id"])["name"] == "Welcome journey"
    harness.launch(campaign["id"], harness.csv("key\nk1\n"))

    bad_file = httpx.post(f"{url}/campaigns/new", data={"csrf": csrf}, cookies=grace,
                          files={"file": ("bad.yaml", b"name: x\n\xff\n", "application/yaml")})
    assert bad_file.status_code == 422 and "bad.yaml:2:1" not in bad_file.text  # shown as parts, not one line
    assert "line 2, column 1" in bad_file.text and "not valid UTF-8" in bad_file.text

    edit = httpx.get(f"{url}/campaigns/{campaign['id']}/definition", cookies=grace)
    assert edit.status_code == 200 and "# Greets, waits for a click, leaves." in edit.text  # as written
    changed = FLOW.replace("# Greets", "# Still greets")
    saved = httpx.post(f"{url}/campaigns/{campaign['id']}/definition", data={"csrf": csrf, "text": changed},
                       cookies=grace)
    assert saved.status_code == 303 and saved.headers["location"].endswith("?done=edited")
    assert harness.campaigns.get(campaign["id"])["name"] == "Welcome journey"
    assert list_campaigns(harness.runtime)[0]["version"] == "1.1"  # it has runs: a version of its own
    assert "# Still greets" in httpx.get(f"{url}/campaigns/{campaign['id']}/definition", cookies=grace).text

    taken = harness.create(FLOW.replace("Welcome", "Taken"))
    clash = httpx.post(f"{url}/campaigns/{taken}/definition", data={"csrf": csrf, "text": FLOW}, cookies=grace)
    assert clash.status_code == 409 and 'id="refusal"' in clash.text


def test_in_a_browser_a_mistake_is_shown_by_line_and_node_then_fixed(web: Any, page: Any, tmp_path: Path) -> None:
    url, harness = web
    page.goto(f"{url}/sign-in")
    page.fill("#name", "grace")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(f"{url}/campaigns")
    page.click("#new-campaign")
    page.wait_for_url(f"{url}/campaigns/new")
    page.fill("#text", BROKEN)
    page.click("#save")
    problems = page.locator("#problems li")
    assert problems.count() == 1
    assert problems.first.locator(".where").inner_text() == "line 7, column 18"
    assert problems.first.locator(".node").inner_text() == "wait"
    assert page.locator("#source li.marked").get_attribute("id") == "line-7"
    screenshots = os.environ.get("CAMPAIGNKIT_TEST_SCREENSHOTS")
    page.screenshot(path=str((Path(screenshots) if screenshots else tmp_path) / "definition-errors.png"),
                    full_page=True)
    page.fill("#text", page.input_value("#text").replace("wait_for_evnt", "wait_for_event"))
    page.click("#save")
    (campaign,) = list_campaigns(harness.runtime)
    page.wait_for_url(f"{url}/campaigns/{campaign['id']}?done=created")
    assert page.locator("#done").inner_text() == "Created."
    assert page.locator("#name").inner_text() == "Welcome journey"
