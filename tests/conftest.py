"""Shared fixtures: a fresh runtime per test on SQLite, and on PostgreSQL where one is available."""

from __future__ import annotations

import os
import shutil
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cli_support import Cli, make_cli
from sqlalchemy import create_engine, text

from campaignkit.core.audit import Actor
from campaignkit.core.clock import FakeClock
from campaignkit.core.runtime import Runtime
from campaignkit.core.testing import CampaignHarness as Harness

PG_URL_ENV = "CAMPAIGNKIT_TEST_PG_URL"
TEST_ENV_PREFIX = "CAMPAIGNKIT_TEST_"  # what the suite itself is told (a PostgreSQL server, a browser)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(PG_URL_ENV):
        return
    if os.environ.get("CI"):
        return  # under CI the postgres fixture fails loudly instead of skipping
    skip = pytest.mark.skip(reason=f"PostgreSQL not available: set {PG_URL_ENV} (CI starts one)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def no_configuration_of_the_machine(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test starts in an empty working directory, without CAMPAIGNKIT_ settings variables: the checkout the
    suite runs in may hold what `make run` left (var/secrets/ with a real API token) or a campaignkit.toml and .env,
    and the shell may export settings. A test that reads configuration writes its own and chdirs to it."""
    for key in [k for k in os.environ if k.startswith("CAMPAIGNKIT_") and not k.startswith(TEST_ENV_PREFIX)]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        pytest.fail(f"CI is set but {PG_URL_ENV} is not: PostgreSQL tests must run under CI")
    name = f"ck_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'campaignkit.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ck_clock(clock: FakeClock) -> FakeClock:
    """The runtime's clock is ``clock``, which a test module may override (e.g. to start in the past)."""
    return clock


@pytest.fixture
def ck_plugin() -> None:
    """The suite tests campaignkit itself: no plugin under test (tests pass their own as extra_plugins)."""
    return None


@pytest.fixture
def ck_settings(database_url: str) -> dict[str, Any]:
    return {"database_url": database_url}


@pytest.fixture
def make_runtime(ck_make_runtime: Any) -> Any:
    """Build a migrated runtime on this test's database with the shipped fixture plugin authors use: plugin objects
    to register, and settings overrides as keyword arguments (``plugins={"config": ...}`` is the plugins *setting*)."""
    return ck_make_runtime


@pytest.fixture
def runtime(make_runtime: Any) -> Runtime:
    return make_runtime()


@pytest.fixture
def ck_runtime(runtime: Runtime) -> Runtime:
    return runtime  # one runtime per test, whichever fixture a test asks for


@pytest.fixture
def actor(ck_actor: Actor) -> Actor:
    return ck_actor


@pytest.fixture
def harness(ck_campaign: Harness) -> Harness:
    return ck_campaign


@pytest.fixture
def review(make_runtime: Any, actor: Actor, tmp_path: Path) -> Iterator[Any]:
    """An access review with aiosmtpd and the web app on 127.0.0.1: (harness, inbox, launch, url)."""
    from review_support import review_fixture

    yield from review_fixture(make_runtime, lambda runtime: Harness(runtime, actor, tmp_path))


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A private CA: a server context with a certificate for 127.0.0.1, and the CA's PEM file for clients."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, ca_file


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Cli:
    """The CLI against a fresh database: runs once on SQLite and once on PostgreSQL."""
    return make_cli(monkeypatch, tmp_path, database_url)


@pytest.fixture
def sqlite_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    """The CLI against a SQLite file under tmp_path, for behaviour that does not depend on the database."""
    return make_cli(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'campaignkit.db'}")


# A real browser for page tests: Debian's chromium (or CAMPAIGNKIT_TEST_CHROMIUM) driven by Playwright. Without one
# the tests skip with a reason, and fail under CI.
CHROMIUM_ENV = "CAMPAIGNKIT_TEST_CHROMIUM"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        reason = f"no chromium: apt-get install chromium, or set {CHROMIUM_ENV} (CI installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        # As root (CI, containers) chromium refuses to start inside its own sandbox.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()
