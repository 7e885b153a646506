"""Accounts, roles and personal API tokens: who may call what (the table in docs/accounts.md is the contract), tokens
that stop working, and every change audited."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Harness
from servers import serving
from sqlalchemy import select

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role, Scope
from campaignkit.core.accounts.sessions import Sessions
from campaignkit.core.accounts.tokens import Tokens
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.db import reading
from campaignkit.core.db.schema import api_tokens
from campaignkit.core.engine.events import send_event
from campaignkit.core.errors import CampaignkitError, InvalidState
from campaignkit.core.web.limits import is_api

DOCS = Path(__file__).resolve().parent.parent / "docs" / "accounts.md"
SHARED = "s7Kq2-Lm9xP4vB8nR3tW6yZ1cF5hJ0dG-shared-token"
FLOW = """
name: Waiting
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: end}}
    - {id: end, type: left_campaign}
"""


def documented_matrix() -> tuple[list[str], dict[tuple[str, str], list[str]]]:
    """The table under "What each role may call": its callers, and each route's expected answers."""
    section = DOCS.read_text().split("## What each role may call")[1].split("\n## ")[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    header, body = rows[0], rows[2:]
    return header[2:], {(row[0], row[1]): row[2:] for row in body}


@pytest.fixture
def served(make_runtime: Any, actor: Any, tmp_path: Path) -> Any:
    harness = Harness(make_runtime(api_token=SHARED), actor, tmp_path)
    with serving(create_app(harness.runtime)) as url:
        yield url, harness


@pytest.fixture
def unthrottled(make_runtime: Any, actor: Any, tmp_path: Path) -> Any:
    """As ``served``, with room for every refusal the whole table brings from one address in one window."""
    harness = Harness(make_runtime(api_token=SHARED, web={"max_rejections_per_window": 10_000}), actor, tmp_path)
    with serving(create_app(harness.runtime)) as url:
        yield url, harness


def test_every_route_answers_each_caller_as_the_table_in_the_docs_says(unthrottled: Any) -> None:
    url, harness = unthrottled
    callers, matrix = documented_matrix()
    tokens = {
        "no token": None,
        "shared api_token": SHARED,
        "auditor": harness.api_token("auditor", "read"),
        "operator, read token": harness.api_token("operator", "read"),
        "operator, write token": harness.api_token("operator", "write"),
        "admin, write token": harness.api_token("admin", "write"),
    }
    assert callers == list(tokens)
    routes = {(method.upper(), path) for path, item in create_app(harness.runtime).openapi()["paths"].items()
              if path.startswith("/api/") for method in item} | {("GET", "/openapi.json")}
    assert set(matrix) == routes  # every route is in the table, and the table names no route that is gone

    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key\nk1\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    bodies = {"POST": {"name": "opened"}}
    for (method, path), expected in sorted(matrix.items()):
        concrete = path.replace("{campaign_id}", campaign_id).replace("{run_id}", str(run.id)).replace("{key}", "k1")
        for caller, want in zip(callers, expected, strict=True):
            token = tokens[caller]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = httpx.request(method, f"{url}{concrete}", json=bodies.get(method), headers=headers).status_code
            got = "yes" if answer not in (401, 403) and answer < 500 else str(answer)
            assert got == want, f"{method} {path} as {caller}: {answer}, the docs say {want}"


def test_a_token_stops_at_revocation_expiry_and_a_disabled_account(served: Any, clock: Any) -> None:
    url, harness = served
    accounts, tokens = Accounts(harness.runtime), Tokens(harness.runtime)
    accounts.add("ada@example.org", Role.OPERATOR, harness.actor, password="correct horse battery")
    kept, _ = tokens.create("ada@example.org", "kept", Scope.READ, harness.actor)
    revoked, revoked_info = tokens.create("ada@example.org", "revoked", Scope.READ, harness.actor)
    expiring, _ = tokens.create("ada@example.org", "expiring", Scope.READ, harness.actor, timedelta(hours=1))

    def answer(token: str) -> int:
        return httpx.get(f"{url}/api/campaigns", headers={"Authorization": f"Bearer {token}"}).status_code

    assert [answer(t) for t in (kept, revoked, expiring)] == [200, 200, 200]
    tokens.revoke(revoked_info.id, harness.actor)
    clock.advance(timedelta(hours=1))
    assert [answer(t) for t in (kept, revoked, expiring)] == [200, 401, 401]
    accounts.add("root-admin", Role.ADMIN, harness.actor)
    accounts.disable("ada@example.org", harness.actor)
    assert answer(kept) == 401
    accounts.enable("ada@example.org", harness.actor)
    assert answer(kept) == 200
    assert answer(kept[:-1] + ("A" if kept[-1] != "A" else "B")) == 401  # one character off

    refused = harness.audit("Login Failed")
    assert refused and all(kept not in (r.details or "") and revoked not in (r.details or "") for r in refused)
    with reading(harness.runtime.engine) as conn:
        used = dict(conn.execute(select(api_tokens.c.name, api_tokens.c.last_used_at)).all())
        stored = conn.execute(select(api_tokens.c.token_hash)).scalars().all()
    assert used["kept"] == clock.now() and used["revoked"] is not None  # used before its revocation
    assert kept not in stored and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)


def test_changes_to_accounts_and_tokens_are_audited_and_the_last_admin_stays(harness: Any) -> None:
    accounts, tokens = Accounts(harness.runtime), Tokens(harness.runtime)
    made = accounts.add("grace", Role.ADMIN, harness.actor)
    assert made is not None and len(made) >= 16
    assert accounts.check_password("grace", made) is not None
    assert accounts.check_password("grace", made + "x") is None and accounts.check_password("nobody", made) is None
    with pytest.raises(InvalidState, match="last active admin"):
        accounts.disable("grace", harness.actor)
    with pytest.raises(InvalidState, match="last active admin"):
        accounts.set_role("grace", Role.OPERATOR, harness.actor)
    with pytest.raises(InvalidState, match="already exists"):
        accounts.add("grace", Role.OPERATOR, harness.actor)
    with pytest.raises(CampaignkitError, match="at least 12 characters"):
        accounts.add("linus", Role.AUDITOR, harness.actor, password="short")
    accounts.add("linus", Role.AUDITOR, harness.actor, password="a long enough password")
    with pytest.raises(InvalidState, match="auditor"):
        tokens.create("linus", "script", Scope.WRITE, harness.actor)
    accounts.set_role("linus", Role.OPERATOR, harness.actor)
    token, info = tokens.create("linus", "script", Scope.WRITE, harness.actor)
    accounts.reset_password("linus", harness.actor, password="another long password")
    assert accounts.check_password("linus", "a long enough password") is None
    accounts.add("barbara", Role.ADMIN, harness.actor)
    accounts.disable("grace", harness.actor)  # another admin is left now
    assert accounts.check_password("grace", made) is None  # a disabled account does not sign in
    tokens.revoke(info.id, harness.actor)

    trail = [(r.audit_type, r.audit_sub_type, r.user_name, r.details) for r in harness.audit()
             if r.audit_type in ("Security", "System Access")]
    assert [row[:2] for row in trail] == [
        ("Security", "User Created"), ("Security", "User Created"), ("Security", "Role Changed"),
        ("Security", "Token Created"), ("System Access", "Change Password"), ("Security", "User Created"),
        ("Security", "User Disabled"), ("Security", "Token Revoked")]
    assert {row[2] for row in trail} == {harness.actor.user_name}
    assert trail[2][3] == "user 'linus': role auditor -> operator"
    assert all(token not in (row[3] or "") and made not in (row[3] or "") for row in trail)


def test_an_event_a_read_token_posts_changes_nothing(served: Any) -> None:
    url, harness = served
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key\nk1\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    read = harness.api_token("operator", "read")
    answer = httpx.post(f"{url}/api/runs/{run.id}/events", json={"name": "clicked"},
                        headers={"Authorization": f"Bearer {read}"})
    assert answer.status_code == 403 and "read token" in answer.json()["detail"]
    harness.run_to_idle()
    assert harness.runs(campaign_id)[0].status == "waiting"
    send_event(harness.runtime, run.id, "clicked")  # the run itself was fine
    harness.run_to_idle()
    assert harness.runs(campaign_id)[0].status == "completed"


def test_a_refused_request_is_audited_as_access_denied_and_a_flood_is_one_record(served: Any) -> None:
    url, harness = served
    campaign_id = harness.create(FLOW)
    auditor = harness.api_token("auditor", "read", user="iris")
    headers = {"Authorization": f"Bearer {auditor}"}
    answers = [httpx.post(f"{url}/api/campaigns/{campaign_id}/launch", json={}, headers=headers).status_code
               for _ in range(40)]  # more than web.max_rejections_per_window: a known account is not throttled
    assert answers == [403] * 40 and harness.campaigns.get(campaign_id)["state"] == "draft"
    assert httpx.get(f"{url}/api/plugins", headers=headers).status_code == 403  # a route's own refusal
    denied = [(r.audit_type, r.user_name, r.computer_ip, r.details) for r in harness.audit("Access Denied")]
    assert denied == [
        ("Security", "iris", "127.0.0.1",
         f"API request rejected: auditor, read token, may not change anything (POST /api/campaigns/{campaign_id}"
         "/launch)"),
        ("Security", "iris", "127.0.0.1", "API request rejected: iris (auditor) may not read the plugins' settings: "
                                          "admins only (GET /api/plugins)")]
    # The console's forms: an auditor's post is refused and audited the same way.
    Accounts(harness.runtime).add("ivy", Role.AUDITOR, harness.actor, password="a long enough password")
    token, session = Sessions(harness.runtime).open(Accounts(harness.runtime).get("ivy"), "127.0.0.1", "test")
    posted = httpx.post(f"{url}/campaigns/{campaign_id}/actions", cookies={"ck_session": token},
                        data={"csrf": session.csrf, "action": "launch"},
                        headers={"Origin": harness.runtime.settings.web.base_url.rstrip("/")})
    assert posted.status_code == 403 and harness.campaigns.get(campaign_id)["state"] == "draft"
    (console,) = [r for r in harness.audit("Access Denied") if r.user_name == "ivy"]
    assert console.details == ("console form rejected: auditors read campaigns; they do not change them "
                               f"(POST /campaigns/{campaign_id}/actions)")


def test_an_operator_runs_a_campaign_through_the_api_and_each_step_is_audited_as_them(served: Any) -> None:
    url, harness = served
    audience = harness.csv("key\nk1\nk2\n")
    campaign_id = harness.create(FLOW.replace("name: Waiting",
                                              f"name: Waiting\naudience: {{source: csv, path: {audience}}}"))
    write = {"Authorization": f"Bearer {harness.api_token('operator', 'write', user='ops@example.org')}"}
    read = {"Authorization": f"Bearer {harness.api_token('auditor', 'read')}"}

    def post(action: str, headers: dict[str, str], **body: Any) -> httpx.Response:
        return httpx.post(f"{url}/api/campaigns/{campaign_id}/{action}", json=body or None, headers=headers)

    assert post("launch", read).status_code == 403
    launched = post("launch", write)
    assert launched.status_code == 200 and launched.json()["runs"] == 2
    assert post("launch", write).status_code == 409  # in progress already
    assert post("pause", write).json()["message"] == "'Waiting' paused: 2 run(s) parked"
    assert post("resume", write).json()["runs"] == 2
    assert post("terminate", write).json()["runs"] == 2
    assert httpx.post(f"{url}/api/campaigns/nope/pause", headers=write).status_code == 404
    assert post("launch", write, at="not a time").status_code == 422
    done = [(r.audit_sub_type, r.user_name, r.computer_ip) for r in harness.audit()
            if r.object_id == campaign_id and r.audit_sub_type != "Created"]
    assert {row[1:] for row in done} == {("ops@example.org", "127.0.0.1")}
    assert [row[0] for row in done if row[0].startswith("Workflow")] == [
        "Workflow Started", "Workflow Pause Request", "Workflow Resume Request", "Workflow Termination Request"]


CONSOLE_CALLERS = ("no session", "auditor", "operator", "admin")


def console_routes(app: Any, link_paths: tuple[str, ...]) -> set[tuple[str, str]]:
    """Every route a person opens in the browser: not the API (but its reference page), not the recipients' pages
    (opened through their links: the kinds' link_paths), not the health check."""
    from fastapi.routing import iter_route_contexts

    found = set()
    for context in iter_route_contexts(app.routes):
        route = getattr(context, "starlette_route", None) or context.original_route
        path = getattr(route, "path", "").replace("{key:path}", "{key}")
        if (is_api(path) and path != "/api/docs") or path in ("/openapi.json", "/health") \
                or path.startswith(link_paths):
            continue
        found |= {(method, path) for method in getattr(route, "methods", ()) if method != "HEAD"}
    return found


def documented_console_matrix() -> dict[tuple[str, str], list[str]]:
    section = DOCS.read_text().split("## What each role may open in the console")[1].split("\n## ")[0]
    rows = [[cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    assert rows[0][2:] == list(CONSOLE_CALLERS)
    return {(row[0], row[1]): row[2:] for row in rows[2:]}


def test_every_console_page_and_form_answers_each_role_as_the_table_in_the_docs_says(served: Any) -> None:
    """GET each page, and POST each form with the session's CSRF token from our own origin but asking for nothing
    that exists (an unknown action, an empty definition), so that no answer depends on another."""
    url, harness = served
    matrix = documented_console_matrix()
    link_paths = tuple(path for kind in harness.runtime.kinds.values() for path in kind.link_paths)
    assert "/review/" in link_paths and "/p/" in link_paths
    # Every page, and no page that is gone.
    assert set(matrix) == console_routes(create_app(harness.runtime), link_paths)
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key\nk1\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    accounts, sessions = Accounts(harness.runtime), Sessions(harness.runtime)
    signed: dict[str, Any] = {"no session": None}
    for role in CONSOLE_CALLERS[1:]:
        accounts.add(f"{role}-person", Role(role), harness.actor, password="a long enough password")
        signed[role] = sessions.open(accounts.get(f"{role}-person"), "127.0.0.1", "matrix")
    own = {"Origin": harness.runtime.settings.web.base_url.rstrip("/")}
    for (method, path), expected in sorted(matrix.items(), key=lambda item: item[0][1] == "/sign-out"):
        concrete = (path.replace("{campaign_id}", campaign_id).replace("{run_id}", str(run.id))
                    .replace("{key}", "k1").replace("{name}", "admin-person"))
        for caller, want in zip(CONSOLE_CALLERS, expected, strict=True):
            token, session = signed[caller] or (None, None)
            cookies = {"ck_session": token} if token else {}
            data = {"csrf": session.csrf if session else "", "action": "nothing", "change": "nothing",
                    "name": "nobody", "password": "not the password"}  # /sign-in: a wrong one, 401 for anyone
            answer = httpx.request(method, f"{url}{concrete}", cookies=cookies, headers=own,
                                   data=data if method == "POST" else None)
            to_sign_in = answer.status_code == 303 and answer.headers["location"] == "/sign-in"
            got = "sign-in" if to_sign_in else str(answer.status_code) if answer.status_code in (401, 403) \
                or answer.status_code >= 500 else "yes"
            assert got == want, f"{method} {path} as {caller}: {answer.status_code}, the docs say {want}"
