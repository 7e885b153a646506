"""End to end through a real mail system: the simulation sends through a private Postfix from its VERP address
asking for DSNs; Postfix delivers one email and bounces the other; the notifications land in the bounce mailbox,
which campaignkit reads over IMAP from a private Dovecot and applies to the results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mail_servers
import pytest
from sqlalchemy import select

from campaignkit.core.db import reading
from campaignkit.core.db.schema import bounced_mailboxes, phishing_results, runs
from campaignkit.plugins.phishing.mailboxes import drain_configured

PASSWORD = "secret-Imap-pw-9"
USERS = ("bounces", "alice")
SIMULATION = """
name: Postfix simulation
kind: phishing
audience: {source: csv, path: %s}
settings:
  channel: smtp
  return_path: bounces@corp.test
  attacks: [{name: Parcel, template: email/phishing/parcel_notice, sender: "Parcel <parcel@corp.test>"}]
  sending: {business_hours_only: false}
"""


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[mail_servers.Postfix, mail_servers.Dovecot]]:
    mail_servers.require_programs(*mail_servers.POSTFIX_PROGRAMS, *mail_servers.DOVECOT_PROGRAMS)
    with mail_servers.private_directory() as base, mail_servers.postfix(base, USERS) as postfix, \
            mail_servers.dovecot(base, postfix.mail, {f"{u}@{mail_servers.DOMAIN}": PASSWORD for u in USERS}) as imap:
        yield postfix, imap


@pytest.fixture
def ck_settings(servers: tuple[mail_servers.Postfix, mail_servers.Dovecot]) -> dict[str, Any]:
    postfix, imap = servers
    return {"plugins": {"config": {
        # The listener that accepts every recipient and bounces the unknown ones afterwards, with a DSN.
        "smtp": {"host": mail_servers.HOST, "port": postfix.accept_port, "security": "none",
                 "sender": "campaignkit@corp.test", "timeout_seconds": 5},
        "phishing": {"mailbox": {"host": imap.host, "port": imap.port, "security": "none",
                                 "username": f"bounces@{mail_servers.DOMAIN}", "password": PASSWORD,
                                 "timeout_seconds": 5}},
    }}}


def test_postfix_s_notifications_come_back_over_imap_as_delivered_and_failed(
    servers: tuple[mail_servers.Postfix, mail_servers.Dovecot], ck_campaign: Any
) -> None:
    postfix, _ = servers
    runtime = ck_campaign.runtime
    campaign_id = ck_campaign.create(SIMULATION % ck_campaign.csv("email,name\nalice@corp.test,Alice\n"
                                                                  "nosuch@corp.test,Nobody\n"))
    ck_campaign.launch(campaign_id)
    ck_campaign.run_to_idle()
    with reading(runtime.engine) as conn:
        sent = {row.email: row for row in conn.execute(select(phishing_results))}
    assert {email: row.delivery for email, row in sent.items()} == {"alice@corp.test": "Pending",
                                                                    "nosuch@corp.test": "Pending"}
    postfix.wait_for_mail("alice", 1)
    delivered = postfix.maildir("alice")
    message = delivered.get_message(next(iter(delivered.keys())))
    assert message["X-Campaignkit-Token"] == sent["alice@corp.test"].token
    assert message["Return-Path"] == f"<bounces+{sent['alice@corp.test'].token}-0@corp.test>"  # VERP: token, attempt
    postfix.wait_for_mail("bounces", 2)  # alice's success report and nosuch's failure report

    found = drain_configured(runtime)
    assert (found.delivered, found.failed) == (1, 1)
    assert drain_configured(runtime).summary() == "nothing"  # drained: read once
    with reading(runtime.engine) as conn:
        results = {row.email: row for row in conn.execute(select(phishing_results))}
        bounced = conn.execute(select(bounced_mailboxes)).all()
    alice, nobody = results["alice@corp.test"], results["nosuch@corp.test"]
    assert alice.delivery == "Delivered" and alice.delivery_detail["code"] == "2.0.0"
    assert "delivered to maildir" in alice.delivery_detail["text"]
    assert nobody.delivery == "Failed" and nobody.delivery_detail["code"] == "5.1.1"
    assert nobody.delivery_detail["text"] == 'unknown user: "nosuch@corp.test"'
    assert [(b.address, b.code, b.campaign_id) for b in bounced] == [("nosuch@corp.test", "5.1.1", campaign_id)]

    ck_campaign.run_to_idle()  # the failed one moves to where a resend can reach it
    with reading(runtime.engine) as conn:
        nodes = dict(conn.execute(select(runs.c.target_key, runs.c.current_node)).all())
    assert nodes == {"alice@corp.test": "observe", "nosuch@corp.test": "undelivered"}
