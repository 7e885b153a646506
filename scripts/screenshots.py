"""Screenshots of the console for docs/screenshots/ (`make screenshots`), so that the README shows the pages as they
are: a throwaway campaignkit with the demo journey, the example access review and the example phishing simulation
(with a few recipients' actions), served on 127.0.0.1, signed in to by Debian's chromium driven by Playwright.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "screenshots-only-password"


BROKEN = """name: Spring newsletter
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - id: mail
      type: send_message
      config: {channel: file, subjct: Spring news, text: Hello}
      next: wait
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: gone}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    chromium = os.environ.get("CAMPAIGNKIT_TEST_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install chromium, or set CAMPAIGNKIT_TEST_CHROMIUM")
    with tempfile.TemporaryDirectory() as folder:
        url, runtime = start(Path(folder))
        args.out.mkdir(parents=True, exist_ok=True)
        shoot(url, runtime, chromium, args.out)
    print(f"wrote the screenshots to {args.out}")


def start(folder: Path) -> tuple[str, object]:
    import uvicorn

    from campaignkit.core import create_app
    from campaignkit.core.accounts.roles import Role
    from campaignkit.core.accounts.users import Accounts
    from campaignkit.core.audit import Actor
    from campaignkit.core.campaigns.queries import RunQuery, list_campaigns, list_runs
    from campaignkit.core.campaigns.service import Campaigns
    from campaignkit.core.db.migrate import upgrade
    from campaignkit.core.definitions.loader import load_definition_file
    from campaignkit.core.engine.events import send_event
    from campaignkit.core.engine.worker import Worker
    from campaignkit.core.runtime import Runtime
    from campaignkit.core.settings import Settings
    from campaignkit.core.testing import free_port

    port = free_port()
    runtime = Runtime(Settings(var_dir=folder, database_url=f"sqlite:///{folder / 'campaignkit.db'}",
                               secret_key=secrets.token_urlsafe(48), audit_key=secrets.token_urlsafe(48),
                               web={"base_url": f"http://127.0.0.1:{port}"}))
    upgrade(runtime.engine)
    actor = Actor("admin", "docs", "127.0.0.1")
    Accounts(runtime).add("admin", Role.ADMIN, actor, password=PASSWORD)
    campaigns = Campaigns(runtime)
    for example in ("journey.yaml", "access_review.yaml", "phishing.yaml"):
        loaded = load_definition_file(ROOT / "examples" / example, runtime.settings.definitions, runtime.kinds)
        campaign_id = campaigns.create(loaded, actor)
        campaigns.launch(campaign_id, actor)
    worker = Worker(runtime)
    worker.run_until_idle()
    # Two contacts open the welcome, the others' wait times out (2 s) and they split: the overview's map has paths.
    journey = next(c["id"] for c in list_campaigns(runtime) if c["name"] == "Welcome journey")
    for run in list_runs(runtime, RunQuery(journey, status="waiting", limit=2)):
        send_event(runtime, run["id"], "opened", {})
    for _ in range(3):
        time.sleep(1.2)
        worker.run_until_idle()
    simulate_recipients(runtime)
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the web app did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", runtime


def simulate_recipients(runtime: object) -> None:
    """What the simulation's recipients did, a few minutes after their emails: opens, clicks, a form sent, a report,
    a scanner's click, and one mailbox that bounced."""
    from datetime import timedelta

    from sqlalchemy import select

    from campaignkit.core.db import reading, writing
    from campaignkit.core.db.schema import phishing_results
    from campaignkit.plugins.phishing.notifications import ingest_message
    from campaignkit.plugins.phishing.tracking import HitRequest, record_hits

    browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
    with reading(runtime.engine) as conn:  # type: ignore[attr-defined]
        rows = {row.email: row for row in conn.execute(select(phishing_results))}
    later = runtime.clock.now() + timedelta(minutes=5)  # type: ignore[attr-defined]
    actions = [("ana.lima@example.org", "opened"), ("ana.lima@example.org", "clicked"),
               ("ben.okafor@example.org", "opened"), ("ben.okafor@example.org", "reported"),
               ("chloe.martin@example.org", "opened"), ("chloe.martin@example.org", "clicked"),
               ("chloe.martin@example.org", "submitted"), ("emma.schmidt@example.org", "opened")]
    hits = [(HitRequest(rows[email].token, event, "GET", browser, "192.0.2.10"), later) for email, event in actions]
    hits.append((HitRequest(rows["dev.patel@example.org"].token, "clicked", "GET", "Proofpoint URL Defense",
                            "198.51.100.4"), later))
    with writing(runtime.engine) as conn:  # type: ignore[attr-defined]
        record_hits(conn, runtime, hits, lambda _conn, _id: {})  # type: ignore[arg-type]
    bounce = (ROOT / "tests" / "phishing" / "samples" / "dsn-failure-unknown-user.eml").read_bytes()
    token = rows["frank.miller@example.org"].token.encode()
    ingest_message(runtime, bounce.replace(b"a2tok", token).replace(b"nosuch@corp.test",  # type: ignore[arg-type]
                                                                    b"frank.miller@example.org"))


def shoot(url: str, runtime: object, chromium: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/sign-in")
        page.screenshot(path=str(out / "sign-in.png"))
        page.fill("#name", "admin")
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        page.wait_for_url(f"{url}/campaigns")
        page.screenshot(path=str(out / "campaigns.png"))
        page.click("text=Quarterly access review")
        page.click("nav.tabs >> text=Run History")
        page.screenshot(path=str(out / "run-history.png"), full_page=True)
        page.goto(f"{url}/campaigns")
        page.click("text=Welcome journey")
        page.screenshot(path=str(out / "campaign-overview.png"), full_page=True)
        page.click("#runs tbody tr:first-child a")
        page.screenshot(path=str(out / "execution-map.png"), full_page=True)
        page.click("#tab-timeline")
        page.screenshot(path=str(out / "execution-timeline.png"), full_page=True)
        page.goto(f"{url}/campaigns")
        page.click("text=Q4 phishing simulation")
        for tab, name in (("By User", "phishing-by-user"), ("By Group", "phishing-by-group"),
                          ("By Attack", "phishing-by-attack")):
            page.click(f"nav.tabs >> text={tab}")
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        page.goto(f"{url}/bounced-mailboxes")
        page.screenshot(path=str(out / "phishing-bounced-mailboxes.png"))
        token = phishing_token(runtime, "chloe.martin@example.org")
        page.goto(f"{url}/p/{token}/page")
        page.screenshot(path=str(out / "phishing-landing.png"))
        page.goto(f"{url}/p/{token}/training")
        page.screenshot(path=str(out / "phishing-training.png"), full_page=True)
        page.goto(f"{url}/audit")
        page.screenshot(path=str(out / "audit-log.png"))
        page.goto(f"{url}/campaigns/new")
        page.fill("#text", BROKEN)
        page.click("#save")
        page.screenshot(path=str(out / "new-campaign-errors.png"), full_page=True)
        browser.close()


def phishing_token(runtime: object, email: str) -> str:
    from sqlalchemy import select

    from campaignkit.core.db import reading
    from campaignkit.core.db.schema import phishing_results

    with reading(runtime.engine) as conn:  # type: ignore[attr-defined]
        return str(conn.execute(select(phishing_results.c.token).where(phishing_results.c.email == email)).scalar())


if __name__ == "__main__":
    main()
