"""Single sign-on to the console with OpenID Connect, against a real provider on 127.0.0.1 (oidc-provider-mock, run
as its own process): the whole browser flow driven with httpx, redirects followed by hand. The provider's form is
answered as a person would answer it: POST the authorization URL with the subject (or action=deny); its claims are
set beforehand with PUT /users/<sub>."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from conftest import Harness
from pydantic import ValidationError
from servers import serving

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.errors import InvalidState
from campaignkit.core.settings import OidcSettings
from campaignkit.core.testing import free_port
from campaignkit.core.web.oidc import OidcClient, OidcError, Pending

ROLE_MAP = {"ck-admins": "admin", "ck-operators": "operator", "ck-auditors": "auditor"}
LABEL = "Corp SSO"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """oidc-provider-mock on a free port of 127.0.0.1 for this module; its issuer is its URL. Its log goes to a file
    (a pipe nobody reads would stop it once full)."""
    port = free_port()
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port",
                                    str(port), "--require-nonce", "true"], stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "NO_COLOR": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/.well-known/openid-configuration").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(10)
            pytest.fail(f"oidc-provider-mock did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Sso:
    url: str  # the console
    provider: str
    harness: Harness

    def person(self, **claims: Any) -> str:
        """A new subject at the provider with these claims; returns the subject."""
        sub = f"sub-{uuid.uuid4().hex[:12]}"
        self.claims(sub, **claims)
        return sub

    def claims(self, sub: str, **claims: Any) -> None:
        answer = httpx.put(f"{self.provider}/users/{quote(sub, safe='')}", json=claims)
        assert answer.status_code == 204, answer.text

    def start(self) -> tuple[str, str]:
        """GET /sign-in/sso: the provider's authorization URL and the pending sign-in's cookie."""
        started = httpx.get(f"{self.url}/sign-in/sso")
        assert started.status_code == 303, started.text
        return started.headers["location"], started.cookies["ck_sso"]

    def at_provider(self, authorize: str, sub: str | None) -> str:
        """The person picks ``sub`` at the provider (None: denies); returns the callback URL it redirects to."""
        answered = httpx.post(authorize, data={"sub": sub} if sub is not None else {"action": "deny"})
        assert answered.status_code == 302, answered.text
        callback = answered.headers["location"]
        assert callback.startswith(f"{self.url}/sign-in/sso/callback?")
        return callback

    def sign_in(self, sub: str | None) -> httpx.Response:
        authorize, pending = self.start()
        return httpx.get(self.at_provider(authorize, sub), cookies={"ck_sso": pending})

    def opens(self, response: httpx.Response) -> str:
        """The page /campaigns shows with the session a successful sign-in set."""
        assert (response.status_code, response.headers["location"]) == (303, "/campaigns"), response.text
        page = httpx.get(f"{self.url}/campaigns", cookies={"ck_session": response.cookies["ck_session"]})
        assert page.status_code == 200
        return page.text

    def records(self, sub_type: str) -> list[Any]:
        return self.harness.audit(sub_type)


@pytest.fixture
def sso(provider: str, make_runtime: Any, actor: Any, tmp_path: Path) -> Iterator[Sso]:
    port = free_port()
    runtime = make_runtime(web={"base_url": f"http://127.0.0.1:{port}"}, oidc={
        "issuer": provider, "client_id": "campaignkit", "client_secret": "a client secret of the provider",
        "role_map": ROLE_MAP, "button_label": LABEL})
    with serving(create_app(runtime), port) as url:
        yield Sso(url, provider, Harness(runtime, actor, tmp_path))


def refused_with(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert text in response.text, response.text
    assert "ck_session" not in response.cookies and "Traceback" not in response.text


def test_an_admin_group_signs_in_as_admin_to_an_account_made_for_them(sso: Sso) -> None:
    page = httpx.get(f"{sso.url}/sign-in")
    assert 'href="/sign-in/sso"' in page.text and f"Sign in with {LABEL}" in page.text

    sub = sso.person(email="ada@corp.test", groups=["staff", "ck-operators", "ck-admins"])
    authorize, pending = sso.start()
    asked = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{sso.provider}/oauth2/authorize?")
    assert {key: value[0] for key, value in asked.items() if key not in ("state", "nonce", "code_challenge")} == {
        "response_type": "code", "client_id": "campaignkit", "scope": "openid profile email",
        "redirect_uri": f"{sso.url}/sign-in/sso/callback", "code_challenge_method": "S256"}
    assert all(len(asked[key][0]) >= 40 for key in ("state", "nonce", "code_challenge"))
    assert "verifier" not in authorize  # the PKCE verifier stays in the signed cookie

    signed = httpx.get(sso.at_provider(authorize, sub), cookies={"ck_sso": pending})
    assert "ada@corp.test (admin)" in sso.opens(signed)  # the most powerful of the mapped groups
    cookie = signed.headers.get_list("set-cookie")
    assert any(c.startswith("ck_session=") and "HttpOnly" in c and "SameSite=lax" in c for c in cookie)
    assert any(c.startswith("ck_sso=") and "Max-Age=0" in c for c in cookie)  # the pending sign-in is over

    user = Accounts(sso.harness.runtime).get("ada@corp.test")
    assert (user.role, user.sso, user.has_password, user.active) == (Role.ADMIN, True, False, True)
    (created,) = sso.records("User Created")
    assert (created.audit_type, created.user_name, created.computer_ip) == ("Security", "ada@corp.test", "127.0.0.1")
    assert "first single sign-on" in created.details and sub in created.details
    (login,) = sso.records("Login")
    assert (login.audit_type, login.user_name) == ("System Access", "ada@corp.test")
    assert login.details == "signed in to the console through single sign-on as admin"

    # No password works for it, and none can be given.
    refused = httpx.post(f"{sso.url}/sign-in", data={"name": "ada@corp.test", "password": "any password at all"})
    assert refused.status_code == 401
    with pytest.raises(InvalidState, match="single sign-on"):
        Accounts(sso.harness.runtime).reset_password("ada@corp.test", sso.harness.actor)

    # The next sign-in finds the same account by its subject, even after the e-mail changed.
    sso.claims(sub, email="ada.lovelace@corp.test", groups=["ck-admins"])
    assert "ada@corp.test (admin)" in sso.opens(sso.sign_in(sub))
    assert len(sso.records("User Created")) == 1 and len(sso.records("Login")) == 2


def test_someone_whose_groups_map_to_no_role_is_refused_and_audited(sso: Sso) -> None:
    sub = sso.person(email="mallory@corp.test", groups=["staff", "ck-admins-not-quite"])
    refused_with(sso.sign_in(sub), 403, "none of your groups gives a role in campaignkit")
    (failed,) = sso.records("Login Failed")
    assert (failed.audit_type, failed.user_name, failed.computer_ip) == ("System Access", "mallory@corp.test",
                                                                         "127.0.0.1")
    assert "console single sign-on rejected: no role" in failed.details
    assert not sso.records("User Created") and not sso.records("Login")
    assert [u.name for u in Accounts(sso.harness.runtime).list()] == []

    nothing = sso.person(email="nogroups@corp.test")  # no groups claim at all
    refused_with(sso.sign_in(nothing), 403, "none of your groups gives a role")


def test_a_role_changed_at_the_provider_changes_the_account_at_the_next_sign_in(sso: Sso) -> None:
    sub = sso.person(email="grace@corp.test", groups=["ck-operators"])
    first = sso.sign_in(sub)
    assert "grace@corp.test (operator)" in sso.opens(first)

    sso.claims(sub, email="grace@corp.test", groups=["ck-auditors"])
    assert "grace@corp.test (auditor)" in sso.opens(sso.sign_in(sub))
    assert Accounts(sso.harness.runtime).get("grace@corp.test").role == Role.AUDITOR
    (changed,) = sso.records("Role Changed")
    assert (changed.audit_type, changed.user_name) == ("Security", "grace@corp.test")
    assert "role operator -> auditor" in changed.details and "'groups'" in changed.details

    sso.claims(sub, email="grace@corp.test", groups=["ck-auditors"])
    sso.opens(sso.sign_in(sub))
    assert len(sso.records("Role Changed")) == 1  # the same role again changes nothing

    sso.claims(sub, email="grace@corp.test", groups=[])
    refused_with(sso.sign_in(sub), 403, "none of your groups gives a role")  # taken out of every group: no way in
    assert Accounts(sso.harness.runtime).get("grace@corp.test").role == Role.AUDITOR


def test_a_tampered_missing_or_stale_state_is_refused(sso: Sso, clock: Any) -> None:
    sub = sso.person(email="eve@corp.test", groups=["ck-admins"])

    authorize, pending = sso.start()
    callback = urlsplit(sso.at_provider(authorize, sub))
    query = parse_qs(callback.query)
    forged = urlunsplit(callback._replace(query=urlencode({"code": query["code"][0], "state": "x" * 43})))
    refused_with(httpx.get(forged, cookies={"ck_sso": pending}), 400, "does not belong to the sign-in this browser")
    (failed,) = sso.records("Login Failed")
    assert failed.user_name == "anonymous" and "the state does not match" in failed.details

    # The answer carried to another browser (no cookie), or with a cookie not signed by us.
    refused_with(httpx.get(urlunsplit(callback)), 400, "This sign-in was not started here")
    refused_with(httpx.get(urlunsplit(callback), cookies={"ck_sso": pending[:-4] + "AAAA"}), 400, "not started here")

    # Too late: the pending sign-in has expired.
    authorize, pending = sso.start()
    late = sso.at_provider(authorize, sub)
    clock.advance(timedelta(minutes=11))
    refused_with(httpx.get(late, cookies={"ck_sso": pending}), 400, "took longer than 10 minutes")

    # A code used once does not open a second session.
    authorize, pending = sso.start()
    callback_url = sso.at_provider(authorize, sub)
    sso.opens(httpx.get(callback_url, cookies={"ck_sso": pending}))
    refused_with(httpx.get(callback_url, cookies={"ck_sso": pending}), 400, "The sign-in code was refused")
    assert len(sso.records("Login")) == 1


def test_a_denial_at_the_provider_says_so(sso: Sso) -> None:
    authorize, pending = sso.start()
    denied = sso.at_provider(authorize, None)
    assert "error=access_denied" in denied
    refused_with(httpx.get(denied, cookies={"ck_sso": pending}), 401, f"The sign-in was cancelled at {LABEL}")
    (failed,) = sso.records("Login Failed")
    assert "the provider answered access_denied" in failed.details
    injected = f"{sso.url}/sign-in/sso/callback?error=<b>call+this+number</b>&error_description=phish"
    refused_with(httpx.get(injected), 401, "could not sign you in (an error)")  # their text is never shown


def test_a_disabled_account_stays_disabled_whatever_the_provider_says(sso: Sso) -> None:
    sub = sso.person(email="bob@corp.test", groups=["ck-operators"])
    session = sso.sign_in(sub).cookies["ck_session"]
    accounts = Accounts(sso.harness.runtime)
    accounts.disable("bob@corp.test", sso.harness.actor)
    assert httpx.get(f"{sso.url}/campaigns", cookies={"ck_session": session}).status_code == 303

    sso.claims(sub, email="bob@corp.test", groups=["ck-admins"])
    refused_with(sso.sign_in(sub), 403, "Your campaignkit account is disabled")
    user = accounts.get("bob@corp.test")
    assert (user.active, user.role) == (False, Role.OPERATOR)  # neither enabled nor promoted
    (failed,) = sso.records("Login Failed")
    assert failed.user_name == "bob@corp.test" and "the account is disabled" in failed.details
    assert not sso.records("Role Changed")


def test_a_name_taken_by_a_password_account_is_not_taken_over(sso: Sso) -> None:
    accounts = Accounts(sso.harness.runtime)
    accounts.add("root@corp.test", Role.ADMIN, sso.harness.actor, password="a long enough password")
    sub = sso.person(email="root@corp.test", groups=["ck-auditors"])
    refused_with(sso.sign_in(sub), 403, "An account named root@corp.test already exists")
    user = accounts.get("root@corp.test")
    assert (user.sso, user.role) == (False, Role.ADMIN)


def test_the_id_token_must_carry_the_nonce_of_this_sign_in(provider: str) -> None:
    """The client on its own against the provider: a token answered to another sign-in's nonce is refused."""
    settings = OidcSettings(issuer=provider, client_id="campaignkit", client_secret="a client secret")
    client = OidcClient(settings, "http://127.0.0.1:9/callback")
    httpx.put(f"{provider}/users/nonce-check", json={"email": "n@corp.test"})
    authorize, pending = client.begin()
    answered = httpx.post(authorize, data={"sub": "nonce-check"})
    code = parse_qs(urlsplit(answered.headers["location"]).query)["code"][0]
    with pytest.raises(OidcError, match="could not be verified") as refused:
        client.finish(code, Pending(pending.state, "another sign-in's nonce", pending.verifier))
    assert "nonce" in refused.value.reason


def test_a_provider_that_cannot_be_reached_or_names_another_issuer_is_explained(make_runtime: Any, provider: str,
                                                                                tmp_path: Path) -> None:
    for issuer, said in ((f"http://127.0.0.1:{free_port()}", "could not be reached"),
                         (f"{provider}/", "not configured as campaignkit expects")):
        port = free_port()
        runtime = make_runtime(web={"base_url": f"http://127.0.0.1:{port}"},
                               oidc={"issuer": issuer, "client_id": "campaignkit", "role_map": ROLE_MAP})
        with serving(create_app(runtime), port) as url:
            refused_with(httpx.get(f"{url}/sign-in/sso"), 502, said)


def test_without_an_issuer_there_is_no_single_sign_on(make_runtime: Any) -> None:
    port = free_port()
    with serving(create_app(make_runtime(web={"base_url": f"http://127.0.0.1:{port}"})), port) as url:
        assert "/sign-in/sso" not in httpx.get(f"{url}/sign-in").text
        assert httpx.get(f"{url}/sign-in/sso").status_code == 404


def test_the_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="client_id must be set"):
        OidcSettings(issuer="https://login.corp.test")
    with pytest.raises(ValidationError, match="https"):
        OidcSettings(issuer="http://login.corp.test", client_id="ck")
    with pytest.raises(ValidationError):
        OidcSettings(issuer="https://login.corp.test", client_id="ck", role_map={"g": "superuser"})
    settings = OidcSettings(issuer="https://login.corp.test/", client_id="ck", scopes=["email"],
                            client_secret="s3cret")
    assert settings.scopes == ["openid", "email"] and settings.issuer == "https://login.corp.test/"
    assert "s3cret" not in repr(settings)
