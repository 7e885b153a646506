"""The ck_ fixtures campaignkit ships for plugin authors, run as an author's test session would run them
(pytester: a pytest session of its own in a temporary folder, with a plugin module and an ini file)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

PLUGIN = '''
from campaignkit.core import Channel, Delivery, Message, hookimpl
from pydantic import BaseModel, ConfigDict

class PagerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = ">"

class Pager(Channel):
    name = "pager"
    Config = PagerConfig
    sent: list = []

    def send(self, message: Message) -> Delivery:
        Pager.sent.append(self.config.prefix + message.text)
        return Delivery(message_id=message.idempotency_key)

@hookimpl
def register_channels():
    return [Pager]
'''

FLOW = '''
FLOW = """
name: Page
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: later}
    - {id: later, type: time_delay, config: {duration: PT1H}, next: page}
    - id: page
      type: send_message
      config: {channel: CHANNEL, to: "{{ target.email }}", subject: s, text: "hi {{ target.key }}"}
      next: done
    - {id: done, type: left_campaign}
"""
'''


@pytest.fixture
def author(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(pager=PLUGIN)
    pytester.makeini("[pytest]\ncampaignkit_plugin = pager\n")
    pytester.syspathinsert()
    return pytester


def test_the_fixtures_run_a_campaign_through_the_plugin_under_test(author: pytest.Pytester) -> None:
    author.makepyfile(test_pager=FLOW.replace("CHANNEL", "pager") + '''
from datetime import timedelta
import pytest
import pager

@pytest.fixture
def ck_settings():
    return {"plugins": {"config": {"pager": {"prefix": "!"}}}}

def test_registered(ck_pm, ck_plugin):
    assert ck_plugin is pager and ck_pm.is_registered(pager)

def test_waits_until_the_clock_moves(ck_campaign, ck_clock):
    pager.Pager.sent.clear()
    (run,) = ck_campaign.run_campaign(FLOW, "key,email\\nada,ada@example.org\\n")
    assert run.status == "waiting" and pager.Pager.sent == []
    ck_clock.advance(timedelta(hours=1))
    ck_campaign.run_to_idle()
    assert ck_campaign.runs(run.campaign_id)[0].status == "completed" and pager.Pager.sent == ["!hi ada"]
    assert ck_campaign.audit("Created")

def test_other_settings_for_one_test(ck_make_campaign):
    pager.Pager.sent.clear()
    campaign = ck_make_campaign(plugins={"config": {"pager": {"prefix": "#"}}})
    assert campaign.runtime.settings.plugin_config("pager") == {"prefix": "#"}

def test_a_bad_setting_is_named(ck_make_runtime):
    from campaignkit.core import ConfigurationError
    with pytest.raises(ConfigurationError, match=r"plugins\\.config\\.pager\\.colour"):
        ck_make_runtime(plugins={"config": {"pager": {"colour": "red"}}})
''')
    author.runpytest().assert_outcomes(passed=4)


def test_without_the_ini_option_the_fixtures_say_what_to_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_runtime(ck_runtime):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*set `campaignkit_plugin = \"your_module\"` under [[]tool.pytest.ini_options]*"])


def test_ck_smtp_receives_what_the_smtp_channel_sends_and_scripts_refusals(author: pytest.Pytester) -> None:
    author.makepyfile(test_mail=FLOW.replace("CHANNEL", "smtp") + '''
from datetime import timedelta
import pytest

@pytest.fixture
def ck_settings(ck_smtp):
    return {"plugins": {"config": {"smtp": ck_smtp.channel_config()}}}

def test_mail(ck_campaign, ck_smtp, ck_clock):
    ck_smtp.answers["grace@example.org"] = ["451 4.3.0 try later"]
    runs = ck_campaign.run_campaign(FLOW, "key,email\\nada,ada@example.org\\ngrace,grace@example.org\\n")
    ck_clock.advance(timedelta(hours=1))
    ck_campaign.run_to_idle()
    assert [m["Subject"] for m in ck_smtp.to("ada@example.org")] == ["s"]
    assert ck_smtp.to("grace@example.org") == []  # deferred: retried after its backoff
    ck_clock.advance(timedelta(hours=1))
    ck_campaign.run_to_idle()
    assert len(ck_smtp.wait_for(2)) == 2
    assert {r.status for r in ck_campaign.runs(runs[0].campaign_id)} == {"completed"}
''')
    author.runpytest().assert_outcomes(passed=1)


def test_ck_http_records_requests_and_answers_as_scripted(author: pytest.Pytester) -> None:
    author.makepyfile(test_http='''
import httpx
from campaignkit.core.testing import answer_in_turn

def test_http(ck_http):
    ck_http.answer = lambda seen: (201, b'{"id": 7}', {"X-Message-Id": "m-7"})
    reply = httpx.post(ck_http.url + "/hooks/a?x=1", json={"text": "hi"}, headers={"Authorization": "Bearer t"})
    assert reply.status_code == 201 and reply.headers["X-Message-Id"] == "m-7"
    assert httpx.get(ck_http.url + "/people?page=2").json() == {"id": 7}
    first, second = ck_http.seen
    assert (first.method, first.path, first.json(), first.headers["Authorization"]) == (
        "POST", "/hooks/a?x=1", {"text": "hi"}, "Bearer t")
    assert (second.method, second.path) == ("GET", "/people?page=2")
    ck_http.answer = answer_in_turn(503)
    assert [httpx.get(ck_http.url).status_code for _ in range(2)] == [503, 200]
''')
    author.runpytest().assert_outcomes(passed=1)
