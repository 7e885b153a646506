"""The scim enforcement action against a real scim2-server on loopback, over HTTP and HTTPS with a private CA."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
from pydantic import ValidationError
from scim2_server.memory import InMemoryStorage
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.testserver.cli import ThreadingWSGIServer
from scim2_server.utils import load_default_provider

from campaignkit.core import EnforcementRequest, PermanentStepError, StepError
from campaignkit.plugins.access_review.history import HistoryQuery, history_page
from campaignkit.plugins.enforcement.scim import ScimAction, ScimConfig

TOKEN = "scim-test-token-0123456789"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class ScimServer:
    """A scim2-server with an in-memory store; seeded and inspected over SCIM HTTP, as a directory admin would."""

    def __init__(self, url: str, verify: Any) -> None:
        self.url = url
        self.unavailable: tuple[str, bytes] | None = None  # (content type, body) to answer 503 with
        self.http = httpx.Client(base_url=url, verify=verify, timeout=10,
                                 headers={"Authorization": f"Bearer {TOKEN}"})

    def user(self, user_name: str, *, active: bool = True) -> str:
        answer = self.http.post("/Users", json={"schemas": [USER_SCHEMA], "userName": user_name, "active": active,
                                                "emails": [{"value": f"{user_name}@example.org", "type": "work"}]})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def group(self, name: str, members: Iterable[str]) -> str:
        answer = self.http.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": name,
                                                 "members": [{"value": m} for m in members]})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def members(self, group_id: str) -> set[str]:
        answer = self.http.get(f"/Groups/{group_id}")
        assert answer.status_code == 200, answer.text
        return {m["value"] for m in answer.json().get("members") or []}

    def active(self, user_id: str) -> bool:
        answer = self.http.get(f"/Users/{user_id}")
        assert answer.status_code == 200, answer.text
        return bool(answer.json()["active"])


@contextmanager
def scim_server(tls: ssl.SSLContext | None = None, verify: Any = True) -> Iterator[ScimServer]:
    application = BearerTokenApplication(InMemoryStorage(), load_default_provider(), bearer_tokens=[TOKEN])
    state: dict[str, ScimServer] = {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # An outage on demand: the answer a busy server (or the proxy in front of it) gives.
        if state["server"].unavailable is not None:
            content_type, body = state["server"].unavailable
            start_response("503 Service Unavailable", [("Content-Type", content_type)])
            return [body]
        return application(environ, start_response)

    # The same threaded wsgiref server the scim2-server command runs; port 0 lets the OS pick a free port.
    httpd = make_server("127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=_Quiet)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    state["server"] = server = ScimServer(f"{scheme}://127.0.0.1:{httpd.server_port}/v2", verify)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.http.close()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def scim() -> Iterator[ScimServer]:
    with scim_server() as server:
        yield server


@pytest.fixture
def make_action() -> Iterator[Callable[..., ScimAction]]:
    built: list[ScimAction] = []

    def make(url: str, **config: Any) -> ScimAction:
        action = ScimAction(ScimConfig.model_validate({"url": url, "token": TOKEN, "timeout_seconds": 5,
                                                       "groups": {"Git": "git-users"}, **config}),
                            None)  # type: ignore[arg-type]  # the action never touches the runtime
        built.append(action)
        return action

    yield make
    for action in built:
        action.close()


def revoke(user: str, application: str = "Git", key: str = "run-1/enforce/1") -> EnforcementRequest:
    target = {"user": user, "user_email": f"{user}@example.org", "application": application,
              "approver": "linus@example.org"}
    return EnforcementRequest(target_key=f"{user}|{application}", target=target,
                              params={"application": application, "user": user},
                              idempotency_key=key, run_id=1, campaign_id="c1")


# --- the action on its own ------------------------------------------------------------------------------


def test_removes_the_membership_and_keeps_other_members(scim: ScimServer, make_action: Any) -> None:
    ada, bob = scim.user("ada"), scim.user("bob")
    group = scim.group("git-users", [ada, bob])
    result = make_action(scim.url).enforce(revoke("ada"))
    assert result.removed
    assert dict(result.detail) == {"mode": "remove_from_group", "user_id": ada, "group_id": group,
                                   "group": "git-users", "already": False}
    assert scim.members(group) == {bob}


def test_a_repeat_is_a_success_that_says_already(scim: ScimServer, make_action: Any) -> None:
    ada = scim.user("ada")
    group = scim.group("git-users", [ada])
    action = make_action(scim.url)
    assert action.enforce(revoke("ada")).detail["already"] is False
    again = action.enforce(revoke("ada", key="run-1/enforce/2"))
    assert again.removed and again.detail["already"] is True
    assert scim.members(group) == set()


def test_the_group_may_be_named_by_id(scim: ScimServer, make_action: Any) -> None:
    ada = scim.user("ada")
    group = scim.group("Git users (prod)", [ada])
    result = make_action(scim.url, groups={"Git": group}).enforce(revoke("ada"))
    assert result.removed and result.detail["group_id"] == group
    assert scim.members(group) == set()


def test_user_names_are_escaped_in_the_filter(scim: ScimServer, make_action: Any) -> None:
    tricky, plain = scim.user('o"brien\\x'), scim.user("o")
    group = scim.group("git-users", [tricky, plain])
    assert make_action(scim.url).enforce(revoke('o"brien\\x')).detail["user_id"] == tricky
    assert scim.members(group) == {plain}


def test_the_user_may_be_found_by_another_attribute_of_the_target(scim: ScimServer, make_action: Any) -> None:
    ada, bob = scim.user("ada"), scim.user("bob")
    group = scim.group("git-users", [ada, bob])
    action = make_action(scim.url, user_attribute="emails.value", user_param="user_email")
    assert action.enforce(revoke("ada")).detail["user_id"] == ada  # user_email is a column of the target
    assert scim.members(group) == {bob}


def test_deactivate_mode_sets_active_false(scim: ScimServer, make_action: Any) -> None:
    ada, bob = scim.user("ada"), scim.user("bob")
    action = make_action(scim.url, mode="deactivate", groups={})
    result = action.enforce(revoke("ada", application="Unmapped"))
    assert result.removed and dict(result.detail) == {"mode": "deactivate", "user_id": ada, "already": False,
                                                      "active": False}
    assert (scim.active(ada), scim.active(bob)) == (False, True)
    assert action.enforce(revoke("ada", application="Unmapped")).detail["already"] is True


def test_an_unknown_user_is_a_permanent_failure(scim: ScimServer, make_action: Any) -> None:
    scim.group("git-users", [scim.user("bob")])
    with pytest.raises(PermanentStepError, match="no user with userName 'ada'") as caught:
        make_action(scim.url).enforce(revoke("ada"))
    assert caught.value.temporary is False


def test_an_unmapped_application_or_a_missing_group_is_a_permanent_failure(scim: ScimServer,
                                                                          make_action: Any) -> None:
    scim.user("ada")
    action = make_action(scim.url)
    with pytest.raises(PermanentStepError, match=r"'Payroll' has no group in plugins\.config\.scim\.groups"):
        action.enforce(revoke("ada", application="Payroll"))
    with pytest.raises(PermanentStepError, match="no group with displayName or id 'git-users'"):
        action.enforce(revoke("ada"))


def test_a_server_that_is_down_is_a_temporary_failure(make_action: Any) -> None:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v2"
        with pytest.raises(StepError, match="unreachable") as caught:
            make_action(url).enforce(revoke("ada"))
    assert caught.value.temporary is True


@pytest.mark.parametrize("content_type, body", [
    ("application/scim+json", json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                          "status": "503", "detail": "maintenance"}).encode()),
    ("text/html", b"<html>bad gateway</html>"),
])
def test_a_busy_server_is_a_temporary_failure(scim: ScimServer, make_action: Any, content_type: str,
                                              body: bytes) -> None:
    scim.unavailable = (content_type, body)
    with pytest.raises(StepError, match="503") as caught:
        make_action(scim.url).enforce(revoke("ada"))
    assert caught.value.temporary is True


def test_a_refused_token_is_permanent_and_never_quoted(scim: ScimServer, make_action: Any) -> None:
    wrong = "wrong-token-abcdefghijklmnop"
    with pytest.raises(PermanentStepError, match="401") as caught:
        make_action(scim.url, token=wrong).enforce(revoke("ada"))
    assert wrong not in str(caught.value) and TOKEN not in str(caught.value)


def test_https_with_a_private_ca(make_action: Any, tmp_path: Any) -> None:
    import trustme

    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with scim_server(tls=tls, verify=ssl.create_default_context(cafile=str(ca_file))) as scim:
        ada = scim.user("ada")
        group = scim.group("git-users", [ada])
        with pytest.raises(PermanentStepError, match=r"unreachable.*CERTIFICATE_VERIFY_FAILED"):
            make_action(scim.url).enforce(revoke("ada"))  # the system CAs do not know this one
        assert make_action(scim.url, ca_file=str(ca_file)).enforce(revoke("ada")).removed
        assert scim.members(group) == set()


# --- configuration ----------------------------------------------------------------------------------------


def test_configuration_is_checked_and_the_token_never_shown() -> None:
    config = ScimConfig.model_validate({"url": "https://idp.example.org/scim/v2", "token": TOKEN})
    assert (config.mode, config.user_attribute, config.user_param) == ("remove_from_group", "userName", "user")
    assert TOKEN not in repr(config) and TOKEN not in str(config) and TOKEN not in config.model_dump_json()
    refused = [
        ({"url": "http://idp.example.org/scim/v2"}, "https"),
        ({"url": "https://idp.example.org/v2", "mode": "delete"}, "mode"),
        ({"url": "https://idp.example.org/v2", "user_attribute": 'userName pr or userName eq "x"'}, "attribute"),
        ({"url": "https://idp.example.org/v2", "password": "x"}, "password"),
        ({"url": "https://idp.example.org/v2", "token": f"{TOKEN} \r\nX-Evil: 1"}, "token"),
        ({"url": "https://idp.example.org/v2", "ca_file": "/nonexistent/ca.pem"}, "ca_file"),
    ]
    for values, key in refused:
        with pytest.raises(ValidationError, match=key) as caught:
            ScimConfig.model_validate(values)
        assert TOKEN not in str(caught.value)


def test_it_is_registered_and_its_settings_checked_at_start(make_runtime: Any) -> None:
    from campaignkit.core import ConfigurationError

    runtime = make_runtime(plugins={"config": {"scim": {"url": "https://idp.example.org/scim/v2", "token": TOKEN}}})
    assert isinstance(runtime.registry.enforcement_action("scim", runtime), ScimAction)
    with pytest.raises(ConfigurationError, match=r"plugins\.config\.scim\.url") as caught:
        make_runtime(plugins={"config": {"scim": {"url": "http://idp.example.org/scim/v2", "token": TOKEN}}})
    assert TOKEN not in str(caught.value)


# --- end to end through an access review -----------------------------------------------------------------

AUDIENCE = """user,user_email,application,approver
ada,ada@example.org,Git,linus@example.org
bob,bob@example.org,Git,linus@example.org
"""
REVIEW = """
name: SCIM review
kind: access_review
audience: {{source: csv, path: {path}}}
schedule: {{end_after: P14D}}
settings:
  channel: log
  on_revoke: revoke
  enforcement: scim
"""


def run_review(make_runtime: Any, actor: Any, tmp_path: Any, scim: ScimServer) -> dict[tuple[str, str], Any]:
    from conftest import Harness

    from campaignkit.core.engine.events import send_event

    runtime = make_runtime(plugins={"config": {"scim": {
        "url": scim.url, "token": TOKEN, "timeout_seconds": 5, "groups": {"Git": "git-users"}}}})
    harness = Harness(runtime, actor, tmp_path)
    try:
        campaign_id = harness.create(REVIEW.format(path=harness.csv(AUDIENCE)))
        harness.campaigns.launch(campaign_id, actor)
        harness.run_to_idle()
        ada_git = next(r for r in harness.runs(campaign_id) if r.target_key == "ada|Git")
        send_event(runtime, ada_git.id, "revoked", {"approver": "linus@example.org"})
        harness.run_to_idle()
        page = history_page(runtime, HistoryQuery(campaign_id, limit=100))
        enforce = [s for s in harness.steps(ada_git.id) if s.node_id == "enforce"]
        return {**{(r["User"], r["Application"]): r for r in page}, ("steps", "enforce"): enforce}
    finally:
        harness.worker.close()


def test_a_revoke_decision_removes_the_membership_on_the_server(make_runtime: Any, actor: Any, tmp_path: Any,
                                                                scim: ScimServer) -> None:
    ada, bob = scim.user("ada"), scim.user("bob")
    group = scim.group("git-users", [ada, bob])
    rows = run_review(make_runtime, actor, tmp_path, scim)
    assert (rows[("ada", "Git")]["Response Status"], rows[("ada", "Git")]["Result"]) == ("Revoked", "Success")
    assert rows[("bob", "Git")]["Response Status"] == "Pending Response"
    assert scim.members(group) == {bob}
    [step] = rows[("steps", "enforce")]
    assert step.outcome == "ok" and step.detail["group_id"] == group and step.detail["user_id"] == ada


def test_a_refusal_by_the_server_fails_the_revocation(make_runtime: Any, actor: Any, tmp_path: Any,
                                                      scim: ScimServer) -> None:
    bob = scim.user("bob")  # ada has no account on the server
    group = scim.group("git-users", [bob])
    rows = run_review(make_runtime, actor, tmp_path, scim)
    assert (rows[("ada", "Git")]["Response Status"], rows[("ada", "Git")]["Result"]) == ("Revoked", "Failure")
    assert scim.members(group) == {bob}
    [step] = rows[("steps", "enforce")]
    assert step.outcome == "failed" and "no user with userName 'ada'" in json.dumps(step.detail)
    assert TOKEN not in json.dumps(step.detail)
