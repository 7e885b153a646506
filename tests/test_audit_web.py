"""The audit trail on the web: the API's keyset-cursor paging, streamed CSV and JSON lines exports (audited, open to
every role), the chain's verification state (from the last full verification, re-hashing only what came after it),
and the console's audit log with its state, Verify now and export links."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import Cli
from conftest import Harness
from servers import serving
from sqlalchemy import delete, select, update

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.audit import Actor, AuditObject, AuditSubType, AuditType, append, entry
from campaignkit.core.audit import verification as chain
from campaignkit.core.audit.checkpoints import take_checkpoint
from campaignkit.core.audit.queries import AuditExport, AuditFilter
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import audit_chain, audit_history
from campaignkit.core.web.api_audit import FIELDS

PASSWORD = "a long enough password"
KINDS = [(AuditType.OBJECT_CHANGE, AuditSubType.EDITED), (AuditType.SECURITY, AuditSubType.LINK_REJECTED),
         (AuditType.CLIENT_JOB, AuditSubType.FILE_IMPORT)]


@pytest.fixture
def site(make_runtime: Any, actor: Any, tmp_path: Path) -> Iterator[tuple[str, Harness]]:
    harness = Harness(make_runtime(), actor, tmp_path)
    accounts = Accounts(harness.runtime)
    accounts.add("grace", Role.OPERATOR, actor, password=PASSWORD)
    accounts.add("linus", Role.AUDITOR, actor, password=PASSWORD)
    with serving(create_app(harness.runtime)) as url:
        yield url, harness


def write(runtime: Any, n: int) -> None:
    """n records of three types by three users; every third pair shares a timestamp (ties are paged by id)."""
    start = runtime.clock.now()
    with writing(runtime.engine) as conn:
        append(conn, [entry(actor=Actor(f"user{i % 3}", "host", "10.0.0.1"), audit_type=KINDS[i % 3][0],
                            sub_type=KINDS[i % 3][1], at=start + timedelta(seconds=i // 2),
                            obj=AuditObject("c-1", "Review"), details=f"record {i}") for i in range(n)])


def expected_ids(runtime: Any, where: AuditFilter) -> list[int]:
    c = audit_history.c
    with reading(runtime.engine) as conn:
        return list(conn.execute(where.apply(select(c.audit_id)).order_by(c.audit_timestamp.desc(),
                                                                          c.audit_id.desc())).scalars())


def bearer(harness: Harness, role: str = "auditor", user: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {harness.api_token(role, 'read', user=user)}"}


def signed(url: str, name: str) -> dict[str, str]:
    answer = httpx.post(f"{url}/sign-in", data={"name": name, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return {"ck_session": answer.cookies["ck_session"]}


def tamper(runtime: Any, audit_id: int) -> None:
    """What someone with write access to the database, but not the audit key, might do to one record."""
    with writing(runtime.engine) as conn:
        conn.execute(update(audit_history).where(audit_history.c.audit_id == audit_id)
                     .values(details="nothing happened"))


def state(url: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = httpx.get(f"{url}/api/audit/verification", headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# The API's pages --------------------------------------------------------------------------------------------------


def test_the_api_walks_every_matching_record_once_in_order_by_cursor(site: Any) -> None:
    url, harness = site
    write(harness.runtime, 40)
    headers = bearer(harness)
    for params in ({}, {"type": "Security"}, {"user": "user1", "sub_type": "File Import"},
                   {"type": "Object Change", "since": harness.runtime.clock.now().isoformat()}):
        seen, cursor, pages = [], None, 0
        while True:
            answer = httpx.get(f"{url}/api/audit", params={**params, "limit": 4, **({"cursor": cursor} if cursor
                                                                                     else {})}, headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert all(list(record) == list(FIELDS) for record in body["records"])  # the sixteen columns
            seen += [record["audit_id"] for record in body["records"]]
            pages += 1
            cursor = body["next"]
            if cursor is None:
                break
        filters = AuditFilter(params.get("type"), params.get("sub_type"), params.get("user"))
        if "since" in params:
            filters = AuditFilter("Object Change", since=harness.runtime.clock.now())
        wanted = expected_ids(harness.runtime, filters)
        assert seen == wanted and len(set(seen)) == len(seen) and pages == max(1, -(-len(wanted) // 4)), params
    (one,) = httpx.get(f"{url}/api/audit", params={"user": "user2", "limit": 1}, headers=headers).json()["records"]
    assert one["user_name"] == "user2" and one["audit_timestamp"].startswith(str(harness.runtime.clock.now().year))


def test_a_cursor_that_is_garbage_tampered_or_for_other_filters_is_refused_with_400(site: Any) -> None:
    url, harness = site
    write(harness.runtime, 10)
    headers = bearer(harness)
    cursor = httpx.get(f"{url}/api/audit", params={"type": "Security", "limit": 2}, headers=headers).json()["next"]
    assert cursor
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    for bad in ("garbage", "", cursor[:-3], flipped, "WzEwLCJhYmMiXQ.c2lnbmF0dXJl"):
        answer = httpx.get(f"{url}/api/audit", params={"type": "Security", "cursor": bad}, headers=headers)
        if bad == "":  # an empty cursor is no cursor: the first page
            assert answer.status_code == 200
            continue
        assert answer.status_code == 400, bad
        assert "not a cursor this API gave" in answer.json()["detail"]
    other = httpx.get(f"{url}/api/audit", params={"type": "Object Change", "cursor": cursor}, headers=headers)
    assert other.status_code == 400 and "other filters" in other.json()["detail"]
    assert httpx.get(f"{url}/api/audit", params={"type": "Security", "cursor": cursor},
                     headers=headers).status_code == 200
    assert httpx.get(f"{url}/api/audit", params={"since": "yesterday"}, headers=headers).status_code == 422
    assert httpx.get(f"{url}/api/audit").status_code == 401


# Exports ----------------------------------------------------------------------------------------------------------


def test_exports_stream_the_filtered_records_and_are_audited_as_who_asked(site: Any) -> None:
    url, harness = site
    write(harness.runtime, 30)
    headers = bearer(harness, "auditor", "ed")  # auditors read everything, exports included
    with httpx.stream("GET", f"{url}/api/audit/export", params={"format": "csv", "type": "Security"},
                      headers=headers) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"] == "text/csv; charset=utf-8"
        assert "content-length" not in answer.headers  # streamed, not built whole
        assert 'filename="audit-' in answer.headers["content-disposition"]
        text = answer.read().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["audit_id"]) for r in rows] == sorted(expected_ids(harness.runtime, AuditFilter("Security")))
    assert {r["audit_type"] for r in rows} == {"Security"} and all(r["record_hash"] for r in rows)

    lines = httpx.get(f"{url}/api/audit/export", params={"format": "jsonl", "user": "user1", "sub_type": "File Import"},
                      headers=headers)
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in lines.text.splitlines()]
    assert [r["audit_id"] for r in records] == sorted(expected_ids(harness.runtime,
                                                                   AuditFilter(None, "File Import", "user1")))
    assert httpx.get(f"{url}/api/audit/export", params={"format": "xml"}, headers=headers).status_code == 422

    trail = [(r.user_name, r.computer_ip, r.details) for r in harness.audit("File Export")]
    assert trail == [("ed", "127.0.0.1", "audit export as csv to an API client, matching type 'Security'"),
                     ("ed", "127.0.0.1", "audit export as jsonl to an API client, matching sub-type "
                                              "'File Import', user 'user1'")]


def test_an_export_is_produced_a_chunk_at_a_time(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant memory: the exporter reads the table a page at a time and hands on text as it goes."""
    write(runtime, 300)
    monkeypatch.setattr(AuditExport, "CHUNK_CHARS", 2000)
    export = AuditExport(runtime, AuditFilter(), "jsonl")
    chunks = iter(export)
    first = next(chunks)
    assert 0 < export.count < 300 and first.count("\n") == export.count  # nothing past the first chunk was read
    rest = list(chunks)
    assert len(rest) > 5 and export.count == 300 and "".join([first, *rest]).count("\n") == 300


# The chain's verification state -----------------------------------------------------------------------------------


def test_the_state_is_intact_then_names_a_record_tampered_with_in_the_database(site: Any) -> None:
    url, harness = site
    write(harness.runtime, 12)
    headers = bearer(harness)
    intact = state(url, headers)
    head = intact["head"]
    assert (intact["status"], intact["verified_through"], intact["broken"]) == ("intact", head, None)
    assert intact["summary"] == f"intact: all {head} record(s) checked now" and intact["last_verification"] is None

    tamper(harness.runtime, 7)
    broken = state(url, headers)
    assert broken["status"] == "broken" and broken["broken"] == {"audit_id": 7, "reason": "record 7 was altered"}
    assert broken["summary"] == "broken at record 7: record 7 was altered"


def test_verify_now_records_the_result_and_later_views_rehash_only_what_came_after(
        site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url, harness = site
    monkeypatch.setattr(chain, "TAIL_LIMIT", 5)
    write(harness.runtime, 20)
    headers = bearer(harness)
    unchecked = state(url, headers)
    assert unchecked["status"] == "unchecked" and unchecked["unchecked"] == unchecked["head"]
    assert "never been verified in full" in unchecked["summary"]

    cookies = signed(url, "linus")  # an auditor may verify: it changes nothing but the trail's own record of it
    page = httpx.get(f"{url}/audit", cookies=cookies).text
    assert "Not verified" in page and 'id="verify-now"' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert httpx.post(f"{url}/audit/verify", data={"csrf": "wrong"}, cookies=cookies).status_code == 403
    posted = httpx.post(f"{url}/audit/verify", data={"csrf": csrf}, cookies=cookies)
    assert (posted.status_code, posted.headers["location"]) == (303, "/audit#chain")
    (done,) = wait_for_verifications(harness, 1)
    assert (done.user_name, done.audit_type, done.computer_ip) == ("linus", "Security", "127.0.0.1")
    result = json.loads(done.details)
    assert result["intact"] and result["checked"] == done.audit_id - 1 and result["broken"] is None

    verified = state(url, headers)
    assert verified["status"] == "intact" and verified["last_verification"]["by"] == "linus"
    assert verified["last_verification"]["checked"] == done.audit_id - 1 and verified["verified_through"] == \
        verified["head"]
    page = httpx.get(f"{url}/audit", cookies=cookies).text
    assert "Intact" in page and f"records 1 to {done.audit_id - 1} verified in full" in page

    write(harness.runtime, 3)  # after the verification: re-hashed on every view
    tamper(harness.runtime, done.audit_id + 2)
    assert state(url, headers)["broken"]["audit_id"] == done.audit_id + 2
    with writing(harness.runtime.engine) as conn:  # put it back: the tail verifies again
        conn.execute(update(audit_history).where(audit_history.c.audit_id == done.audit_id + 2)
                     .values(details="record 1"))
    assert state(url, headers)["status"] == "intact"

    tamper(harness.runtime, 4)  # before it: a page view cannot see it, the next full verification does
    assert state(url, headers)["status"] == "intact"
    verification = chain.verify_and_record(harness.runtime, Actor("cron"))
    assert verification.broken is not None and verification.broken.audit_id == 4
    broken = state(url, headers)
    assert broken["status"] == "broken" and broken["broken"] == {"audit_id": 4, "reason": "record 4 was altered"}
    assert "broken at record 4" in httpx.get(f"{url}/audit", cookies=cookies).text


def wait_for_verifications(harness: Harness, count: int) -> list[Any]:
    deadline = time.monotonic() + 20
    while len(found := harness.audit("Audit Verified")) < count:
        assert time.monotonic() < deadline, "the verification did not finish"
        time.sleep(0.05)
    return found


def test_the_last_checkpoint_shows_and_a_tail_truncated_under_it_is_named(site: Any) -> None:
    url, harness = site
    write(harness.runtime, 6)
    taken, path = take_checkpoint(harness.runtime, Actor("scheduler"))  # into the configured checkpoint file
    write(harness.runtime, 2)
    headers = bearer(harness)
    shown = state(url, headers)
    assert shown["status"] == "intact"
    assert shown["last_checkpoint"] == {"audit_id": taken.audit_id, "time": taken.time, "record": taken.audit_id + 1,
                                        "file": None}
    page = httpx.get(f"{url}/audit", cookies=signed(url, "grace")).text
    assert f"of record {taken.audit_id}, taken" in page and f"(record {taken.audit_id + 1})" in page

    with writing(harness.runtime.engine) as conn:  # records from 5 on deleted, the head moved back to match
        conn.execute(delete(audit_history).where(audit_history.c.audit_id >= 5))
        kept = conn.execute(select(audit_history.c.record_hash).where(audit_history.c.audit_id == 4)).scalar()
        conn.execute(update(audit_chain).values(last_audit_id=4, last_hash=kept))
    broken = state(url, headers)  # the checkpoint record went too, but the file on this host saw record K
    assert broken["last_checkpoint"]["file"] == str(path) and broken["status"] == "broken"
    assert broken["broken"] == {"audit_id": 5, "reason": f"records 5..{taken.audit_id} are missing: the checkpoint "
                                                         f"of {taken.time} saw record {taken.audit_id}"}
    verification = chain.verify_and_record(harness.runtime, Actor("ada"))  # held to the same file
    assert verification.broken is not None and verification.broken.audit_id == 5
    assert verification.summary().startswith(f"audit chain broken at record 5: records 5..{taken.audit_id} are "
                                             "missing: the checkpoint of")


def test_audit_verify_record_keeps_its_result_for_the_console(cli: Cli) -> None:
    cli("init")
    out = cli("audit", "verify", "--record").stdout
    assert out.startswith("audit chain intact: 1 record(s)")
    listed = json.loads(cli("audit", "--sub-type", "Audit Verified", "--format", "json").stdout)
    assert len(listed) == 1 and json.loads(listed[0]["details"])["summary"] == out.strip()


# The console ------------------------------------------------------------------------------------------------------


def test_the_console_shows_the_state_and_export_links_and_an_auditor_exports(site: Any) -> None:
    url, harness = site
    write(harness.runtime, 5)
    cookies = signed(url, "linus")
    page = httpx.get(f"{url}/audit", params={"type": "Security", "user": "user1"}, cookies=cookies).text
    assert 'id="chain-status">Intact</span>' in page and "checked now" in page
    assert 'id="chain-verified">' in page and "never" in page.split('id="chain-verified">')[1][:40]
    links = {name: href.replace("&amp;", "&") for name, href in
             re.findall(r'id="export-(csv|jsonl)" href="([^"]+)"', page)}
    assert links == {"csv": "/audit/export?format=csv&type=Security&user=user1",
                     "jsonl": "/audit/export?format=jsonl&type=Security&user=user1"}
    download = httpx.get(f"{url}{links['csv']}", cookies=cookies)
    assert download.status_code == 200 and download.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [int(r["audit_id"]) for r in rows] == sorted(expected_ids(harness.runtime,
                                                                     AuditFilter("Security", user="user1")))
    (exported,) = harness.audit("File Export")
    assert (exported.user_name, exported.details) == ("linus", "audit export as csv to the console, matching type "
                                                               "'Security', user 'user1'")
    assert httpx.get(f"{url}/audit/export", params={"format": "xml"}, cookies=cookies).status_code == 400
    assert httpx.get(f"{url}/audit/export").headers["location"] == "/sign-in"
    assert httpx.post(f"{url}/audit/verify", data={"csrf": "x"}).headers["location"] == "/sign-in"


def test_in_a_browser_the_audit_log_shows_a_broken_chain(site: Any, page: Any, tmp_path: Path) -> None:
    url, harness = site
    write(harness.runtime, 8)
    chain.verify_and_record(harness.runtime, Actor("ada"))
    write(harness.runtime, 4)
    page.goto(f"{url}/sign-in")
    page.fill("#name", "linus")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.goto(f"{url}/audit")
    assert page.locator("#chain-status").inner_text() == "Intact"
    page.screenshot(path=str(tmp_path / "audit-intact.png"), full_page=True)
    tamper(harness.runtime, 11)
    page.reload()
    assert page.locator("#chain-status").inner_text() == "Broken"
    assert page.locator("#chain-summary").inner_text() == "broken at record 11: record 11 was altered"
    page.screenshot(path=str(tmp_path / "audit-broken.png"), full_page=True)
    page.click("#verify-now")
    page.wait_for_url(f"{url}/audit#chain")
    wait_for_verifications(harness, 2)
    page.reload()
    assert "record 11 was altered" in page.locator("#chain-verified").inner_text()
