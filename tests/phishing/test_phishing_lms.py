"""The lms training provider against a real HTTP server on loopback: the signed enrolment and the course link it
returns, then the LMS's signed progress reports to the completion URL (and the refusal of unsigned or stale ones)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import phishing_results
from campaignkit.core.outbound.client import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from campaignkit.plugins.phishing.tracking import HitRequest, record_hits

SECRET = "lms-shared-secret-0123456789abcdef"
SIMULATION = """
name: LMS simulation
kind: phishing
audience: {source: csv, path: %s}
settings:
  channel: file
  attacks: [{name: Parcel, template: email/phishing/parcel_notice, sender: "Parcel <p@parcel.test>"}]
  sending: {business_hours_only: false}
  training: {assign: on_click, provider: lms, course: phish-101}
"""


class Lms:
    """A learning-management system's enrolment endpoint: records each request and answers with a course URL."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        lms = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                lms.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                answer = json.dumps({"url": "https://lms.example.org/course/phish-101/enrolment-1"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/enrolments"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def lms() -> Iterator[Lms]:
    server = Lms()
    yield server
    server.server.shutdown()


@pytest.fixture
def ck_settings(ck_web_url: str, lms: Lms) -> dict[str, Any]:
    return {"web": {"base_url": ck_web_url},
            "plugins": {"config": {"lms": {"url": lms.url, "token": "lms-api-token", "signing_secret": SECRET}}}}


def signed(body: bytes, *, age: int = 0, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()) - age)
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret.encode(), timestamp, body),
            "Content-Type": "application/json"}


def test_the_lms_enrols_who_clicked_and_reports_their_progress(ck_web: Any, ck_campaign: Any, ck_clock: Any,
                                                                lms: Lms) -> None:
    runtime = ck_web.runtime
    campaign_id = ck_campaign.create(SIMULATION % ck_campaign.csv("email,name\nada@example.org,Ada\n"))
    ck_campaign.launch(campaign_id)
    ck_campaign.run_to_idle()
    ck_clock.advance(timedelta(minutes=30))
    with reading(runtime.engine) as conn:
        token = conn.execute(select(phishing_results.c.token)).scalar_one()
    click = HitRequest(token=token, event="clicked", method="GET", client_ip="203.0.113.5",
                       user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/133.0")
    with writing(runtime.engine) as conn:
        record_hits(conn, runtime, [(click, runtime.clock.now())], lambda _conn, _id: {})
    ck_campaign.run_to_idle()

    [(headers, body)] = lms.requests
    enrolment = json.loads(body)
    assert (enrolment["course"], enrolment["email"], enrolment["name"]) == ("phish-101", "ada@example.org", "Ada")
    assert enrolment["completion_url"] == f"{ck_web.url}/p/{token}/training/complete"
    assert headers["idempotency-key"] == enrolment["idempotency_key"]
    assert headers["authorization"] == "Bearer lms-api-token"
    assert headers[SIGNATURE_HEADER.lower()] == sign(SECRET.encode(), headers[TIMESTAMP_HEADER.lower()], body)
    outbox = runtime.settings.var_dir / "outbox"
    assert any("https://lms.example.org/course/phish-101/enrolment-1" in p.read_text() for p in outbox.glob("*.eml"))

    report = enrolment["completion_url"]
    started, finished = json.dumps({"event": "started"}).encode(), json.dumps({"event": "finished"}).encode()
    assert httpx.post(report, content=finished, headers={"Content-Type": "application/json"}).status_code == 401
    assert httpx.post(report, content=finished, headers=signed(finished, secret="x" * 40)).status_code == 401
    assert httpx.post(report, content=finished, headers=signed(finished, age=3600)).status_code == 401
    assert httpx.post(report, content=b'{"event": "paused"}', headers=signed(b'{"event": "paused"}')).status_code \
        == 400
    with reading(runtime.engine) as conn:
        assert conn.execute(select(phishing_results.c.training_finished_at)).scalar_one() is None
    assert httpx.post(report, content=started, headers=signed(started)).json() == {"recorded": "training_started"}
    assert httpx.post(report, content=finished, headers=signed(finished)).json() == {"recorded": "training_finished"}
    ck_campaign.run_to_idle()
    with reading(runtime.engine) as conn:
        row = conn.execute(select(phishing_results)).one()
    assert row.training_started_at is not None and row.training_finished_at is not None
    assert ck_campaign.runs(campaign_id)[0].status == "completed"
