"""Screenshots of the console for docs/screenshots/ (`make screenshots`), so that the README shows the pages as they
are: a throwaway campaignkit with the demo journey and the example access review, served on 127.0.0.1, signed in
to by Debian's chromium driven by Playwright.

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
    for example in ("journey.yaml", "access_review.yaml"):
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
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the web app did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", runtime


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
        page.goto(f"{url}/audit")
        page.screenshot(path=str(out / "audit-log.png"))
        page.goto(f"{url}/campaigns/new")
        page.fill("#text", BROKEN)
        page.click("#save")
        page.screenshot(path=str(out / "new-campaign-errors.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
