"""The ldap_group action against a real slapd: in campaigns end to end, and on its own for each way it can fail."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from ck_ldap import LdapGroupAction, LdapGroupConfig
from conftest import (
    READER_DN,
    READER_PASSWORD,
    SERVICE_PASSWORD,
    Slapd,
    action_config,
    group_dn,
    user_dn,
)

from campaignkit.core import EnforcementRequest, PermanentStepError, StepError

REVOKE_FLOW = """
name: LDAP revocation {name}
audience: {source: csv, path: audience.csv, key: [user, application]}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: revoke}
    - id: revoke
      type: enforcement_action
      config: {action: ldap_group, params: {user: "{{ target.user }}", application: "{{ target.application }}"}}
      retry: {max_attempts: 3, backoff_seconds: 60}
      next: done
    - {id: done, type: left_campaign}
"""


def revoke_flow(name: str = "1") -> str:
    return REVOKE_FLOW.replace("{name}", name)


@pytest.fixture
def git(slapd: Slapd) -> str:
    """cn=git-users with ada, bob and carol."""
    return slapd.add_group("git-users", [slapd.add_user(uid) for uid in ("ada", "bob", "carol")])


@pytest.fixture
def ck_settings(slapd: Slapd) -> dict[str, Any]:
    return {"plugins": {"config": {"ldap_group": action_config(slapd)}}}


@pytest.fixture
def make_action(slapd: Slapd) -> Callable[..., LdapGroupAction]:
    def make(**overrides: Any) -> LdapGroupAction:
        config = LdapGroupConfig.model_validate(action_config(slapd, **overrides))
        return LdapGroupAction(config, None)  # type: ignore[arg-type]  # the action never touches the runtime

    return make


def revoke(user: str, application: str = "Git", key: str = "run-1/revoke/1") -> EnforcementRequest:
    return EnforcementRequest(target_key=f"{user}|{application}", target={"user": user, "application": application},
                              params={"user": user, "application": application}, idempotency_key=key, run_id=1,
                              campaign_id="c1")


def lower(*dns: str) -> set[str]:
    return {dn.lower() for dn in dns}


# --- end to end: a campaign whose enforcement_action node names ldap_group ------------------------------------


def test_a_campaign_removes_the_users_from_the_group_in_slapd(ck_campaign: Any, slapd: Slapd, git: str) -> None:
    runs = ck_campaign.run_campaign(revoke_flow(), "user,application\nada,Git\ncarol,Git\n")
    assert [(r.target_key, r.status) for r in runs] == [("ada|Git", "completed"), ("carol|Git", "completed")]
    assert slapd.members(git) == lower(user_dn("bob"))  # read from slapd itself
    [step] = [s for s in ck_campaign.steps(runs[0].id) if s.node_id == "revoke"]
    assert (step.outcome, step.attempt) == ("ok", 1)
    assert step.detail == {"action": "ldap_group", "removed": True, "user_dn": user_dn("ada"), "group_dn": git,
                           "attribute": "member", "already": False}


def test_a_second_campaign_for_the_same_user_succeeds_and_says_already(ck_campaign: Any, slapd: Slapd,
                                                                       git: str) -> None:
    ck_campaign.run_campaign(revoke_flow("first"), "user,application\nada,Git\n")
    [again] = ck_campaign.run_campaign(revoke_flow("second"), "user,application\nada,Git\n")
    assert again.status == "completed"
    [step] = [s for s in ck_campaign.steps(again.id) if s.node_id == "revoke"]
    assert step.outcome == "ok" and step.detail["already"] is True
    assert slapd.members(git) == lower(user_dn("bob"), user_dn("carol"))


def test_an_unknown_user_fails_the_run_at_once(ck_campaign: Any, slapd: Slapd, git: str) -> None:
    [run] = ck_campaign.run_campaign(revoke_flow(), "user,application\nzoe,Git\n")
    assert run.status == "failed" and "no user matches (uid=zoe)" in run.error
    steps = [s for s in ck_campaign.steps(run.id) if s.node_id == "revoke"]
    assert [(s.outcome, s.attempt) for s in steps] == [("failed", 1)]  # permanent: no retry
    assert SERVICE_PASSWORD not in json.dumps(steps[0].detail)
    assert len(slapd.members(git)) == 3


def test_a_stopped_slapd_is_retried_and_the_removal_happens_once_it_is_back(ck_campaign: Any, ck_clock: Any,
                                                                          slapd: Slapd, git: str) -> None:
    slapd.stop()
    campaign_id = ck_campaign.create(revoke_flow())
    ck_campaign.launch(campaign_id, ck_campaign.csv("user,application\nada,Git\n"))
    ck_campaign.run_to_idle()
    [run] = ck_campaign.runs(campaign_id)
    [first] = ck_campaign.steps(run.id)[1:]
    assert (run.status, first.outcome) == ("active", "retrying")
    assert "unreachable" in first.detail["error"] and first.detail["retry_at"]

    slapd.start()
    ck_clock.advance(timedelta(seconds=61))
    ck_campaign.run_to_idle()
    [run] = ck_campaign.runs(campaign_id)
    assert run.status == "completed"
    # The ledger keeps one record per (run, node, visit): the second attempt's replaced the first one's.
    assert [(s.outcome, s.attempt) for s in ck_campaign.steps(run.id) if s.node_id == "revoke"] == [("ok", 2)]
    assert slapd.members(git) == lower(user_dn("bob"), user_dn("carol"))


# --- the action on its own ------------------------------------------------------------------------------------


def test_a_repeat_with_the_same_key_succeeds_and_says_already(make_action: Any, slapd: Slapd, git: str) -> None:
    action = make_action()
    first = action.enforce(revoke("ada"))
    again = action.enforce(revoke("ada"))
    assert (first.removed, first.detail["already"]) == (True, False)
    assert (again.removed, again.detail["already"]) == (True, True)
    assert slapd.members(git) == lower(user_dn("bob"), user_dn("carol"))


def test_a_group_of_unique_names(make_action: Any, slapd: Slapd) -> None:
    wiki = slapd.add_group("wiki-users", [slapd.add_user("ada"), slapd.add_user("bob")], unique=True)
    action = make_action(membership_attribute="uniqueMember", groups={}, group_dn=wiki)
    result = action.enforce(revoke("ada", application="Wiki"))  # not in groups: group_dn applies
    assert result.removed and result.detail["group_dn"] == wiki
    assert slapd.members(wiki, "uniqueMember") == lower(user_dn("bob"))


def test_the_wrong_membership_attribute_is_not_taken_for_a_done_removal(make_action: Any, slapd: Slapd,
                                                                        git: str) -> None:
    with pytest.raises(PermanentStepError, match=r"has no uniqueMember values at all.*membership_attribute"):
        make_action(membership_attribute="uniqueMember").enforce(revoke("ada"))
    assert len(slapd.members(git)) == 3


@pytest.mark.parametrize("value", ["ad*", "*", "*)(uid=*", "x)(|(uid=ada)", "ada\\", "ada\x00"])
def test_filter_injection_in_the_target_matches_nobody(make_action: Any, slapd: Slapd, git: str,
                                                       value: str) -> None:
    # Unescaped, "ad*" would find ada alone and remove her; escaped, it is the literal uid "ad*".
    with pytest.raises(PermanentStepError, match="no user matches"):
        make_action().enforce(revoke(value))
    assert len(slapd.members(git)) == 3


def test_filter_characters_in_a_real_uid_find_exactly_that_user(make_action: Any, slapd: Slapd) -> None:
    tricky, plain = slapd.add_user("o*(b)\\x"), slapd.add_user("o")
    group = slapd.add_group("odd", [tricky, plain])
    result = make_action(groups={"Odd": group}).enforce(revoke("o*(b)\\x", application="Odd"))
    assert result.detail["user_dn"].startswith("uid=o*(b)")  # slapd spells the backslash as \5c
    assert slapd.members(group) == lower(plain)


def test_the_user_filter_template_may_search_another_attribute(make_action: Any, slapd: Slapd, git: str) -> None:
    action = make_action(user_filter="(&(objectClass=inetOrgPerson)(mail={user}))")
    assert action.enforce(revoke("carol@example.org")).detail["user_dn"] == user_dn("carol")
    assert slapd.members(git) == lower(user_dn("ada"), user_dn("bob"))


def test_a_missing_group_or_application_is_a_permanent_failure(make_action: Any, slapd: Slapd, git: str) -> None:
    with pytest.raises(PermanentStepError, match=r"noSuchObject \(32\).*check plugins\.config\.ldap_group\.groups"):
        make_action(groups={"Git": group_dn("no-such-group")}).enforce(revoke("ada"))
    with pytest.raises(PermanentStepError, match=r"'Payroll' has no group in plugins\.config\.ldap_group\.groups"):
        make_action().enforce(revoke("ada", application="Payroll"))
    with pytest.raises(PermanentStepError, match=r"base_dn 'ou=nobody,dc=example,dc=org' does not exist"):
        make_action(base_dn="ou=nobody,dc=example,dc=org").enforce(revoke("ada"))


def test_the_last_member_of_a_group_of_names_cannot_be_removed(make_action: Any, slapd: Slapd) -> None:
    solo = slapd.add_group("solo", [slapd.add_user("ada")])
    with pytest.raises(PermanentStepError, match=r"objectClassViolation.*this is the last one"):
        make_action(groups={"Solo": solo}).enforce(revoke("ada", application="Solo"))
    assert slapd.members(solo) == lower(user_dn("ada"))


def test_bad_credentials_are_permanent_and_never_quoted(make_action: Any, slapd: Slapd, git: str) -> None:
    wrong = "not-the-password-9876"
    with pytest.raises(PermanentStepError, match=r"invalidCredentials \(49\).*bind_dn and bind_password") as caught:
        make_action(bind_password=wrong).enforce(revoke("ada"))
    assert wrong not in str(caught.value) and SERVICE_PASSWORD not in str(caught.value)
    assert len(slapd.members(git)) == 3


def test_an_account_without_write_access_is_a_permanent_failure(make_action: Any, slapd: Slapd, git: str) -> None:
    action = make_action(bind_dn=READER_DN, bind_password=READER_PASSWORD)
    with pytest.raises(PermanentStepError, match=r"insufficientAccessRights \(50\).*may not modify member"):
        action.enforce(revoke("ada"))
    assert len(slapd.members(git)) == 3


def test_a_stopped_slapd_is_a_temporary_failure(make_action: Any, slapd: Slapd) -> None:
    action = make_action()
    slapd.stop()
    with pytest.raises(StepError, match=f"127.0.0.1:{slapd.port} unreachable") as caught:
        action.enforce(revoke("ada"))
    assert caught.value.temporary is True


@pytest.fixture
def paused(slapd: Slapd) -> Iterator[Slapd]:
    slapd.pause()
    try:
        yield slapd
    finally:
        slapd.resume()


def test_a_hung_slapd_times_out_as_a_temporary_failure(make_action: Any, git: str, paused: Slapd) -> None:
    started = time.monotonic()
    with pytest.raises(StepError, match=r"unreachable.*timed out") as caught:
        make_action(timeout_seconds=1).enforce(revoke("ada"))
    assert caught.value.temporary is True and time.monotonic() - started < 5
    paused.resume()
    assert len(paused.members(git)) == 3


@pytest.mark.parametrize("how", ["starttls", "ldaps"])
def test_tls_with_a_private_ca(make_action: Any, slapd: Slapd, git: str, how: str) -> None:
    settings = {"use_starttls": True} if how == "starttls" else {"url": slapd.tls_url}
    with pytest.raises(PermanentStepError, match=r"certificate of .* is not trusted.*set ca_file"):
        make_action(**settings).enforce(revoke("ada"))  # the system's CAs do not know this one
    assert len(slapd.members(git)) == 3
    assert make_action(ca_file=str(slapd.certificates.ca), **settings).enforce(revoke("ada")).removed
    assert slapd.members(git) == lower(user_dn("bob"), user_dn("carol"))


def test_starttls_refused_by_the_server_is_a_permanent_failure(make_slapd: Any) -> None:
    plain = make_slapd(tls=False)
    plain.add_group("git-users", [plain.add_user("ada")])
    config = LdapGroupConfig.model_validate(action_config(plain, use_starttls=True))
    action = LdapGroupAction(config, None)  # type: ignore[arg-type]
    with pytest.raises(PermanentStepError, match=f"connecting at {plain.url}: startTLS failed"):
        action.enforce(revoke("ada"))
