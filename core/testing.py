"""pytest fixtures for plugin authors, loaded by pytest through the ``pytest11`` entry point of campaignkit.

Every fixture is prefixed ``ck_`` so that it cannot shadow a project's own. Tell the fixtures which plugin is
under test with the ini option ``campaignkit_plugin = "your_module"`` (or override the ``ck_plugin`` fixture),
and give settings, such as your plugin's configuration table, by overriding ``ck_settings``::

    @pytest.fixture
    def ck_settings(ck_smtp):
        return {"plugins": {"config": {"smtp": ck_smtp.channel_config()}}}

    def test_it_sends(ck_campaign, ck_smtp):
        runs = ck_campaign.run_campaign(FLOW, "key,email\\nada,ada@example.org\\n")
        assert runs[0].status == "completed" and len(ck_smtp.messages) == 1

The settings are the fixtures' own and the test's, nothing else: no CAMPAIGNKIT_ variable, and no .env,
campaignkit.toml or var/secrets/ of the working directory (a checkout where ``campaignkit init`` ran has a real API
token there). A test of reading configuration names the sources it wants by overriding ``ck_settings_sources``.

Nothing heavy is imported until a fixture is used: this module loads in every pytest session of an environment
where campaignkit is installed.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import importlib
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

# ck_web and ck_web_url (the served web app, signed in as each role) are registered with these fixtures.
from .testing_web import ck_web, ck_web_url, free_port  # noqa: F401

if TYPE_CHECKING:
    import pluggy

    from .audit import Actor
    from .clock import FakeClock
    from .engine.worker import Worker
    from .runtime import Runtime
    from .settings import Settings

INI_PLUGIN = "campaignkit_plugin"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(INI_PLUGIN, "Import path of the campaignkit plugin module under test (for the ck_ fixtures).")


# --- helpers the fixtures hand out ---------------------------------------------------------------------------------


def merge_settings(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``base``, table by table: {"plugins": {"config": {...}}} adds, not replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged


class SmtpInbox:
    """An aiosmtpd handler on 127.0.0.1 that keeps every message it accepts.

    ``answers`` scripts replies per recipient (e.g. ``["451 try later"]``) given in turn before accepting, to test
    how a channel copes with a server that defers or refuses.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.messages: list[EmailMessage] = []
        self.sessions = 0
        self.answers: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def channel_config(self, sender: str = "Campaigns <campaigns@example.org>", **extra: Any) -> dict[str, Any]:
        """The ``plugins.config.smtp`` table that makes the bundled smtp channel deliver here."""
        return {"host": self.host, "port": self.port, "security": "none", "sender": sender, **extra}

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if address in str(message["To"])]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        """Wait until at least ``count`` messages arrived; fail the test with what did arrive otherwise."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"expected {count} messages within {timeout}s, got {len(self.messages)}")
            time.sleep(0.01)
        return list(self.messages)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> Any:
        with self._lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        with self._lock:
            queued = self.answers.get(address)
            if queued:
                return queued.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 Message accepted"


@dataclass
class Seen:
    """One request an HttpReceiver received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def query(self) -> dict[str, list[str]]:
        """The query string's parameters, each with every value it was given."""
        return parse_qs(urlsplit(self.path).query)


# What to answer a request: (status, body) or (status, body, headers).
Reply = tuple[int, bytes] | tuple[int, bytes, Mapping[str, str]]
Answer = Callable[[Seen], Reply]


class HttpReceiver(ThreadingHTTPServer):
    """A real HTTP(S) server on 127.0.0.1 that records every request; ``answer`` decides the reply (200 and {}
    unless told otherwise). ``tls``, a server-side SSLContext, makes it HTTPS."""

    daemon_threads = True

    def __init__(self, answer: Answer | None = None, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.answer: Answer = answer or (lambda seen: (200, b"{}"))
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_port}"

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: HttpReceiver
    protocol_version = "HTTP/1.1"

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = Seen(self.command, self.path, dict(self.headers.items()), body)
        with self.server.lock:
            self.server.seen.append(seen)
            status, content, *rest = self.server.answer(seen)
        self.send_response(status)
        for name, value in (rest[0] if rest else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, *args: Any) -> None:
        pass  # the test reads ``seen``; request lines on stderr would only be noise


def answer_in_turn(*replies: int | Reply, then: Reply = (200, b"{}")) -> Answer:
    """Give these replies in turn, then ``then`` for ever: ``answer_in_turn(503, (429, b"slow", {"Retry-After":
    "30"}))``. A bare status gets the body {"error": "busy"}."""
    queue: list[Reply] = [(r, b'{"error": "busy"}') if isinstance(r, int) else r for r in replies]
    return lambda seen: queue.pop(0) if queue else then


class CampaignHarness:
    """Create, launch and run a campaign to idle in a few lines, and read back its runs, steps and audit."""

    def __init__(self, runtime: Runtime, actor: Actor, folder: Path) -> None:
        from .campaigns import Campaigns
        from .engine.worker import Worker

        self.runtime = runtime
        self.actor = actor
        self.folder = folder
        self.campaigns = Campaigns(runtime)
        self.worker: Worker = Worker(runtime)

    def create(self, definition: str | Path) -> str:
        """Create a campaign from YAML text or a file; returns its id."""
        from .definitions.loader import load_definition_file, load_definition_text

        limits, kinds = self.runtime.settings.definitions, self.runtime.kinds
        loaded = (load_definition_file(definition, limits, kinds) if isinstance(definition, Path)
                  else load_definition_text(definition, "test.yaml", limits, kinds))
        return self.campaigns.create(loaded, self.actor)

    def csv(self, content: str, name: str = "audience.csv") -> Path:
        """Write an audience CSV under the test's folder."""
        path = self.folder / name
        path.write_text(content, encoding="utf-8")
        return path

    def launch(self, campaign_id: str, audience: Path | None = None) -> int:
        """Launch now; ``audience`` replaces the definition's own file. Returns how many runs it created."""
        return self.campaigns.launch(campaign_id, self.actor, audience=audience).target_count

    def run_to_idle(self) -> Any:
        """Work every due run until none is left (waiting runs stay parked; advance ``ck_clock`` to wake them)."""
        return self.worker.run_until_idle()

    def api_token(self, role: str = "operator", scope: str = "write", user: str | None = None) -> str:
        """A personal API token (``Authorization: Bearer <token>``) of an account with ``role``, made if it does not
        exist (named ``user``, or after the role), for calling the API and a kind's routes in tests."""
        from .accounts.roles import Scope, parse_role
        from .accounts.tokens import Tokens
        from .accounts.users import Accounts
        from .errors import InvalidState

        name = user or f"{role}-tester"
        with contextlib.suppress(InvalidState):  # made by an earlier call
            Accounts(self.runtime).add(name, parse_role(role), self.actor)
        token, _ = Tokens(self.runtime).create(name, f"{scope} token for tests", Scope(scope), self.actor)
        return token

    def apply_deadlines(self) -> int:
        """End every cycle whose deadline (``schedule.end_after``) has passed by ``ck_clock``, as the scheduler
        would: runs waiting for ``deadline`` get it, the others are terminated. Returns how many runs it touched."""
        return self.campaigns.apply_due_deadlines(self.actor)

    def run_campaign(self, definition: str | Path, audience_csv: str | None = None) -> list[Any]:
        """Create, launch and run to idle in one call; returns the runs."""
        campaign_id = self.create(definition)
        self.launch(campaign_id, self.csv(audience_csv) if audience_csv is not None else None)
        self.run_to_idle()
        return self.runs(campaign_id)

    def runs(self, campaign_id: str) -> list[Any]:
        from .db import reading
        from .db.schema import runs

        with reading(self.runtime.engine) as conn:
            return list(conn.execute(runs.select().where(runs.c.campaign_id == campaign_id).order_by(runs.c.id)))

    def steps(self, run_id: int) -> list[Any]:
        from .db import reading
        from .db.schema import step_records

        with reading(self.runtime.engine) as conn:
            return list(conn.execute(step_records.select().where(step_records.c.run_id == run_id)
                                     .order_by(step_records.c.started_at, step_records.c.id)))

    def audit(self, sub_type: str | None = None) -> list[Any]:
        """Audit records, oldest first, optionally of one audit_sub_type (e.g. "Created"); a renamed sub-type is
        found under its current or former name, as ``campaignkit audit --sub-type`` finds it."""
        from .audit import sub_type_names
        from .db import reading
        from .db.schema import audit_history

        query = audit_history.select().order_by(audit_history.c.audit_id)
        if sub_type is not None:
            query = query.where(audit_history.c.audit_sub_type.in_(sub_type_names(sub_type)))
        with reading(self.runtime.engine) as conn:
            return list(conn.execute(query))

    def dispatch_audit(self) -> dict[str, int]:
        """Feed the enabled audit sinks now, as the scheduler's dispatcher job would; returns records per sink."""
        from .audit.dispatch import AuditDispatcher

        return AuditDispatcher(self.runtime).dispatch()

    def close(self) -> None:
        self.worker.close()


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture
def ck_plugin(request: pytest.FixtureRequest) -> Any:
    """The plugin under test: the module named by the ``campaignkit_plugin`` ini option; override to give another
    (or None, for tests that pass every plugin as ``extra_plugins``)."""
    name = request.config.getini(INI_PLUGIN)
    if not name:
        pytest.fail(f"set `{INI_PLUGIN} = \"your_module\"` under [tool.pytest.ini_options], "
                    "or override the ck_plugin fixture, to say which plugin the ck_ fixtures test")
    return importlib.import_module(str(name))


@pytest.fixture
def ck_settings() -> dict[str, Any]:
    """Settings for ``ck_runtime`` (override it): e.g. {"plugins": {"config": {"my_channel": {...}}}}."""
    return {}


@pytest.fixture
def ck_settings_sources() -> Collection[str]:
    """Sources ``ck_make_settings`` reads besides its own values: none, so that the configuration of the machine and
    working directory running the tests cannot change them. Override it, or parametrize it
    (``@pytest.mark.parametrize("ck_settings_sources", [("toml",)])``), with any of "environment" (CAMPAIGNKIT_
    variables), "dotenv" (./.env), "secrets" (the test's own <var_dir>/secrets) and "toml" (./campaignkit.toml or
    CAMPAIGNKIT_CONFIG)."""
    return ()


@pytest.fixture
def ck_clock() -> FakeClock:
    """A clock that moves only when the test says: ``ck_clock.advance(timedelta(days=1))``."""
    from .clock import FakeClock

    return FakeClock()


@pytest.fixture
def ck_actor() -> Actor:
    from .audit import Actor

    return Actor(user_name="tester", computer_name="test-host", computer_ip="127.0.0.1")


@pytest.fixture
def ck_make_settings(tmp_path: Path, ck_settings: dict[str, Any],
                     ck_settings_sources: Collection[str]) -> Callable[..., Settings]:
    """Settings on SQLite in tmp_path, ``ck_settings`` on top, then the keyword overrides of the call; read from
    no other source than ``ck_settings_sources`` names."""
    from .settings import settings_reading

    settings_class = settings_reading(*ck_settings_sources)  # type: ignore[arg-type]  # checked by name inside

    # Fresh random keys per test, as `campaignkit init` makes them (the API token stays opt-in: unset, the API is
    # off, which some tests check). Every runtime of the test shares them, as every host of a deployment does: the
    # audit chain of their shared database is keyed by one audit_key.
    keys = {"secret_key": secrets.token_urlsafe(48), "audit_key": secrets.token_urlsafe(48)}

    def make(**overrides: Any) -> Settings:
        base = {"var_dir": tmp_path / "var", "database_url": f"sqlite:///{tmp_path / 'campaignkit.db'}", **keys}
        return settings_class(**merge_settings(merge_settings(base, ck_settings), overrides))

    return make


@pytest.fixture
def ck_make_runtime(ck_make_settings: Callable[..., Settings], ck_clock: FakeClock,
                    ck_plugin: Any) -> Iterator[Callable[..., Runtime]]:
    """Build migrated runtimes with the plugin under test registered: ``ck_make_runtime(audit={"sinks": [...]})``.

    Installed plugins load too (the bundled smtp and file channels among them); ``plugins={"enabled": [...]}``
    narrows them.
    """
    from .db.migrate import upgrade
    from .runtime import Runtime

    built: list[Runtime] = []

    def make(extra_plugins: tuple[Any, ...] = (), **overrides: Any) -> Runtime:
        plugins = extra_plugins if ck_plugin is None else (ck_plugin, *extra_plugins)
        runtime = Runtime(ck_make_settings(**overrides), clock=ck_clock, plugins=plugins)
        upgrade(runtime.engine)
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.close()


@pytest.fixture
def ck_runtime(ck_make_runtime: Callable[..., Runtime]) -> Runtime:
    """A temporary campaignkit: SQLite in tmp_path, migrated, ``ck_settings`` applied, ``ck_clock`` as its clock."""
    return ck_make_runtime()


@pytest.fixture
def ck_pm(ck_runtime: Runtime) -> pluggy.PluginManager:
    """The runtime's fresh plugin manager, with the plugin under test registered and checked against the specs."""
    return ck_runtime.pm


@pytest.fixture
def ck_campaign(ck_runtime: Runtime, ck_actor: Actor, tmp_path: Path) -> Iterator[CampaignHarness]:
    """Launch a small campaign and run it to idle: see CampaignHarness."""
    harness = CampaignHarness(ck_runtime, ck_actor, tmp_path)
    yield harness
    harness.close()


@pytest.fixture
def ck_make_campaign(ck_make_runtime: Callable[..., Runtime], ck_actor: Actor,
                     tmp_path: Path) -> Iterator[Callable[..., CampaignHarness]]:
    """``ck_make_campaign(**settings)``: a CampaignHarness on a runtime of its own (same temporary database), for a
    test that needs other settings than ``ck_settings`` (another plugin configuration, say)."""
    harnesses: list[CampaignHarness] = []

    def make(extra_plugins: tuple[Any, ...] = (), **overrides: Any) -> CampaignHarness:
        harness = CampaignHarness(ck_make_runtime(extra_plugins, **overrides), ck_actor, tmp_path)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        harness.close()


@pytest.fixture
def ck_http() -> Iterator[HttpReceiver]:
    """A real HTTP server on 127.0.0.1 recording what the plugin sends (``seen``); set ``answer`` to script replies."""
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def ck_smtp() -> Iterator[SmtpInbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that collects messages; ``channel_config()`` points smtp at it."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:  # pragma: no cover - depends on the author's environment
        pytest.fail("ck_smtp needs aiosmtpd: pip install 'campaignkit[testing]'")
    inbox = SmtpInbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()

