"""The web app served for a plugin's tests, with the console and the API as the people of each role use them.

    @pytest.fixture
    def ck_settings(ck_web_url):
        return {"web": {"base_url": ck_web_url}}  # the links in messages lead to the served app

    def test_the_tab(ck_web, ck_campaign):
        campaign_id = ck_campaign.create(DEFINITION)
        auditor = ck_web.console("auditor")
        assert auditor.get(f"/campaigns/{campaign_id}?tab=Attestations").status_code == 200
        operator = ck_web.console("operator")
        assert operator.submit(f"/campaigns/{campaign_id}/actions", action="launch").status_code == 303
        assert ck_web.api("auditor", "read").get("/api/campaigns").status_code == 200

The fixtures are registered with the others of campaignkit.core.testing (the ``pytest11`` entry point).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from .runtime import Runtime
    from .testing import CampaignHarness


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 until the block ends, as `campaignkit serve` would with the web settings it was
    built with (limits, timeouts, trusted proxies); yields its base URL."""
    import uvicorn

    from .settings import WebSettings
    from .web.transport import uvicorn_config

    port = port or free_port()
    web = getattr(getattr(app, "state", None), "web_settings", None) or WebSettings()
    server = uvicorn.Server(uvicorn_config(app, web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the web app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class WebSite:
    """The served app, and clients signed in as people of each role (console) or holding their tokens (API)."""

    def __init__(self, url: str, harness: CampaignHarness) -> None:
        self.url = url
        self.harness = harness
        self._clients: list[httpx.Client] = []

    @property
    def runtime(self) -> Runtime:
        return self.harness.runtime

    def console(self, role: str = "operator", name: str | None = None) -> ConsoleClient:
        """A browser of a person of ``role`` (the account ``name``, by default ``<role>-tester``, made if missing),
        signed in: its requests carry the session cookie and this site's Origin; ``submit`` posts a form with the
        session's CSRF token."""
        from .accounts.roles import parse_role
        from .accounts.sessions import Sessions
        from .accounts.users import Accounts
        from .errors import InvalidState

        name = name or f"{role}-tester"  # the account ck_campaign.api_token(role) makes: one person per role
        accounts = Accounts(self.runtime)
        with contextlib.suppress(InvalidState):  # made by an earlier call
            accounts.add(name, parse_role(role), self.harness.actor, password=secrets.token_urlsafe(24))
        token, session = Sessions(self.runtime).open(accounts.get(name), "127.0.0.1", "signed in by ck_web")
        import httpx

        client = httpx.Client(base_url=self.url, cookies={"ck_session": token}, headers={"Origin": self.url})
        self._clients.append(client)
        return ConsoleClient(client, session.csrf)

    def api(self, role: str = "operator", scope: str = "write", name: str | None = None) -> httpx.Client:
        """An API client holding a personal token (``scope``: read or write) of the same person ``console`` signs in."""
        import httpx

        token = self.harness.api_token(role, scope, user=name)
        client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"})
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


class ConsoleClient:
    """A signed-in person's browser: ``get`` and ``post`` (an httpx client's, redirects not followed) carry the
    session cookie and the site's Origin; ``submit`` posts a form with the session's CSRF token, as its page would."""

    def __init__(self, client: httpx.Client, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.client.get(path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.client.post(path, **options)

    def submit(self, path: str, **fields: str) -> httpx.Response:
        return self.client.post(path, data={**fields, "csrf": self.csrf})


@pytest.fixture
def ck_web_url() -> str:
    """A free address on 127.0.0.1 for ck_web: put it in ck_settings as web.base_url when links must lead to it."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def ck_web(ck_campaign: CampaignHarness, ck_web_url: str) -> Iterator[WebSite]:
    """campaignkit's web app on ck_campaign's runtime (every kind's routes and console tabs), served on ck_web_url."""
    from .web.app import create_app

    with serving(create_app(ck_campaign.runtime), port=int(ck_web_url.rsplit(":", 1)[1])) as url:
        site = WebSite(url, ck_campaign)
        try:
            yield site
        finally:
            site.close()
