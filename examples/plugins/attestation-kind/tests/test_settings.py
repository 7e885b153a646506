"""What `campaign create` and `campaign launch` refuse, and the workflow the settings expand into."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ck_attestation import AttestationSettings
from ck_attestation.workflow import attestation_workflow
from conftest import DEFINITION

from campaignkit.core import AudienceError, CampaignkitError, DefinitionError

MINIMAL = """
name: Code of conduct
kind: attestation
settings:
{settings}
"""


def definition(settings: str) -> str:
    return MINIMAL.format(settings="\n".join(f"  {line}" for line in settings.strip().splitlines()))


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("channel: smtp", "settings.policy: Field required"),
        ("policy: {title: Code of conduct}", "settings.policy: Value error, give the policy's url, its text, or both"),
        ("policy: {title: '', text: Be kind}", "settings.policy.title: String should have at least 1 character"),
        (
            "policy: {title: Code, url: 'javascript:alert(1)'}",
            "settings.policy.url: Value error, must start with https://",
        ),
        ("policy: {title: Code, text: Be kind, version: 2}", "settings.policy.version: Extra inputs are not permitted"),
        ("policy: {title: Code, text: Be kind}\nchanel: smtp", "settings.chanel: Extra inputs are not permitted"),
        (
            "policy: {title: Code, text: Be kind}\nremind_every: PT5M",
            "settings.remind_every: Value error, must be between one hour (PT1H) and a year (P365D)",
        ),
        (
            "policy: {title: Code, text: Be kind}\nremind_every: P3D\nreminders: 11",
            "settings.reminders: Input should be less than or equal to 10",
        ),
        ("policy: {title: Code, text: Be kind}\nreminders: 2", "reminders needs remind_every"),
        ("policy: {title: Code, text: Be kind}\nemail_column: '{{ x }}'", "settings.email_column: Value error"),
    ],
)
def test_bad_settings_fail_creation_naming_the_key(ck_campaign: Any, settings: str, expected: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        ck_campaign.create(definition(settings))
    message = str(caught.value)
    assert expected in message, message
    assert re.search(r"test\.yaml:\d+:\d+: settings", message), message  # where in the file
    with pytest.raises(CampaignkitError, match="no campaign"):  # nothing was created
        ck_campaign.campaigns.resolve("Code of conduct")


def test_an_unknown_channel_fails_creation(ck_campaign: Any) -> None:
    with pytest.raises(CampaignkitError, match="no channel named 'pigeon'"):
        ck_campaign.create(definition("policy: {title: Code, text: Be kind}\nchannel: pigeon"))


def test_a_row_without_an_address_refuses_the_whole_launch(ck_campaign: Any) -> None:
    # Keyed by employee id here (the audience names its key), so a row may lack an address: the kind refuses it.
    campaign_id = ck_campaign.create(DEFINITION.replace("source: csv", "source: csv\n  key: id"))
    audience = "id,email\ne1,ada@example.org\ne2,\ne3,not an address\n"
    with pytest.raises(AudienceError) as caught:
        ck_campaign.launch(campaign_id, ck_campaign.csv(audience))
    message = str(caught.value)
    assert message.count("no address in 'email' (where the request goes)") == 2, message
    assert ck_campaign.runs(campaign_id) == []


def test_settings_expand_into_a_workflow_with_one_wait_per_reminder() -> None:
    settings = AttestationSettings.model_validate(
        {"policy": {"title": "Code", "text": "Be kind"}, "remind_every": "P3D", "reminders": 2, "email_column": "mail"}
    )
    nodes = {node["id"]: node for node in attestation_workflow(settings)["nodes"]}
    assert [node for node in nodes if node.startswith(("wait", "remind"))] == [
        "wait_0",
        "remind_1",
        "wait_1",
        "remind_2",
        "wait_2",
    ]
    assert nodes["wait_0"]["config"] == {"events": ["attested", "deadline"], "timeout": "PT259200S"}
    assert "timeout" not in nodes["wait_2"]["config"]  # after the last reminder: the deadline or a confirmation
    assert nodes["request"]["config"]["to"] == '{{ target["mail"] }}'
    quiet = AttestationSettings.model_validate({"policy": {"title": "Code", "url": "https://example.org/p"}})
    assert not any(node["id"].startswith("remind") for node in attestation_workflow(quiet)["nodes"])


def test_templates_see_the_policy_and_a_plain_link(ck_campaign: Any, ck_smtp: Any) -> None:
    (run,) = ck_campaign.run_campaign(DEFINITION, "email\nada@example.org\n")
    (message,) = ck_smtp.wait_for(1)
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Acceptable use policy (https://intranet.example.org/policies/acceptable-use)" in text
    assert '<a href="http://127.0.0.1:' in html and "/attest/" in html
    assert run.status == "waiting"
