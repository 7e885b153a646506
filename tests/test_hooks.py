"""Every hook in core/hookspecs.py, through third-party plugins registered the way vendors register theirs.

Observers (``on_*``) are checked for what they receive and for firing after commit: each observer reads the
database through a connection of its own, which sees only committed rows. The last tests are meta-tests: every
hookspec is documented, and every hook is implemented by some test plugin, so a new hook without a test fails.
"""

from __future__ import annotations

import email
import email.policy
import inspect
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from campaignkit.core import (
    Actor,
    AudienceError,
    AudienceSource,
    AuditSink,
    Channel,
    ConfigurationError,
    DefinitionError,
    Delivery,
    EventAudit,
    FieldUpdate,
    FieldUpdater,
    Message,
    PermanentStepError,
    PluginError,
    StepContext,
    StepResult,
    StepType,
    Target,
    hookimpl,
)
from campaignkit.core import hookspecs as hookspecs_module
from campaignkit.core.audit.dispatch import AuditDispatcher
from campaignkit.core.db import reading
from campaignkit.core.db.schema import audit_history, campaigns, events, launches, runs

TESTS = Path(__file__).resolve().parent


def harness_for(runtime: Any, actor: Any, tmp_path: Path) -> Any:
    from conftest import Harness

    return Harness(runtime, actor, tmp_path)


def committed_runs(runtime: Any, **where: Any) -> list[Any]:
    """Runs as another connection sees them: only what has been committed."""
    query = select(runs).order_by(runs.c.id)
    for column, value in where.items():
        query = query.where(runs.c[column] == value)
    with reading(runtime.engine) as conn:
        return list(conn.execute(query))


def committed_campaign_state(runtime: Any, campaign_id: str) -> str:
    with reading(runtime.engine) as conn:
        return str(conn.execute(select(campaigns.c.state).where(campaigns.c.id == campaign_id)).scalar_one())


# --- observers: on_campaign_started, on_run_finished, on_campaign_finished ---------------------------------------


class Observer:
    """Records every lifecycle hook together with what the database held, committed, when it fired."""

    __name__ = "observer"

    def __init__(self) -> None:
        self.runtime: Any = None
        self.started: list[dict[str, Any]] = []
        self.finished_runs: list[dict[str, Any]] = []
        self.finished_campaigns: list[dict[str, Any]] = []

    @hookimpl
    def on_campaign_started(self, campaign: Mapping[str, Any], launch_id: int, target_count: int) -> None:
        self.started.append({"campaign": dict(campaign), "launch_id": launch_id, "target_count": target_count,
                             "committed_runs": len(committed_runs(self.runtime, launch_id=launch_id))})

    @hookimpl
    def on_run_finished(self, run: Mapping[str, Any]) -> None:
        (row,) = committed_runs(self.runtime, id=run["id"])
        self.finished_runs.append({**dict(run), "committed_status": row.status})

    @hookimpl
    def on_campaign_finished(self, campaign: Mapping[str, Any], state: str) -> None:
        live = [r for r in committed_runs(self.runtime, campaign_id=campaign["id"])
                if r.status in ("pending", "active", "waiting")]
        self.finished_campaigns.append({"campaign": dict(campaign), "state": state, "live_runs": len(live),
                                        "committed_state": committed_campaign_state(self.runtime, campaign["id"])})


class Breaking:
    """An observer that raises in every lifecycle hook: it must stop neither the engine nor other observers."""

    __name__ = "breaking_observer"

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def on_campaign_started(self, campaign: Any, launch_id: int, target_count: int) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")

    @hookimpl
    def on_run_finished(self, run: Any) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")

    @hookimpl
    def on_campaign_finished(self, campaign: Any, state: str) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


class Refusing:
    """A channel that rejects the mailbox `bad` for good, so that one run fails."""

    __name__ = "refusing_channel"

    def __init__(self) -> None:
        class RefusingChannel(Channel):
            name = "refusing"

            def send(self, message: Message) -> Delivery:
                if message.to.startswith("bad@"):
                    raise PermanentStepError("no such mailbox")
                return Delivery(message_id=message.idempotency_key)

        self.channel = RefusingChannel

    @hookimpl
    def register_channels(self) -> list[type[Channel]]:
        return [self.channel]


MAIL_FLOW = """
name: Observed
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - {id: mail, type: send_message, config: {channel: refusing, subject: s, text: t, to: "{{ target.key }}@x.org"},
       retry: {max_attempts: 1}, next: done}
    - {id: done, type: left_campaign}
"""
WAIT_FLOW = """
name: Waiting
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [go]}, next: done}
    - {id: done, type: left_campaign}
"""


@pytest.fixture
def observed(make_runtime: Any, actor: Any, tmp_path: Path) -> Iterator[tuple[Any, Observer, Breaking]]:
    observer, breaking = Observer(), Breaking()
    harness = harness_for(make_runtime(extra_plugins=(breaking, Refusing(), observer)), actor, tmp_path)
    observer.runtime = harness.runtime
    yield harness, observer, breaking
    harness.worker.close()


def test_observers_see_a_launch_every_finished_run_and_the_completion(observed: Any) -> None:
    harness, observer, breaking = observed
    campaign_id = harness.create(MAIL_FLOW)
    result = harness.campaigns.launch(campaign_id, harness.actor, audience=harness.csv("key\ngood\nbad\n"))

    (started,) = observer.started
    assert (started["launch_id"], started["target_count"]) == (result.launch_id, 2)
    assert started["campaign"]["id"] == campaign_id and started["campaign"]["name"] == "Observed"
    assert started["campaign"]["state"] == "in_progress"
    assert started["committed_runs"] == 2  # fired after the launch transaction committed
    assert observer.finished_runs == [] and observer.finished_campaigns == []

    harness.run_to_idle()
    by_key = {r["target_key"]: r for r in observer.finished_runs}
    assert sorted(by_key) == ["bad", "good"] and len(observer.finished_runs) == 2  # each run once
    good, bad = by_key["good"], by_key["bad"]
    assert (good["status"], good["current_node"], good["error"]) == ("completed", "done", None)
    assert (bad["status"], bad["current_node"]) == ("failed", "mail") and "no such mailbox" in bad["error"]
    assert {r["campaign_id"] for r in observer.finished_runs} == {campaign_id}
    assert {r["id"] for r in observer.finished_runs} == {r.id for r in harness.runs(campaign_id)}
    assert all(r["committed_status"] == r["status"] for r in observer.finished_runs)

    (finished,) = observer.finished_campaigns
    assert finished["state"] == "completed" and finished["campaign"]["id"] == campaign_id
    assert (finished["committed_state"], finished["live_runs"]) == ("completed", 0)
    assert breaking.calls == 4  # the raising observer was called each time and broke nothing
    harness.run_to_idle()
    assert len(observer.finished_runs) == 2 and len(observer.finished_campaigns) == 1  # nothing fires twice


def test_termination_finishes_the_unfinished_runs_and_the_campaign(observed: Any) -> None:
    harness, observer, _ = observed
    campaign_id = harness.create(WAIT_FLOW)
    harness.launch(campaign_id, harness.csv("key\na\nb\nc\n"))
    harness.run_to_idle()
    from campaignkit.core.engine.events import send_event

    first = harness.runs(campaign_id)[0]
    send_event(harness.runtime, first.id, "go")
    harness.run_to_idle()
    assert [(r["target_key"], r["status"]) for r in observer.finished_runs] == [("a", "completed")]
    assert observer.finished_campaigns == []  # two runs still wait

    assert harness.campaigns.terminate(campaign_id, harness.actor) == 2
    ended = observer.finished_runs[1:]
    assert sorted((r["target_key"], r["status"], r["current_node"]) for r in ended) == [
        ("b", "terminated", "wait"), ("c", "terminated", "wait")]
    assert all(r["committed_status"] == "terminated" for r in ended)
    (finished,) = observer.finished_campaigns
    assert (finished["state"], finished["committed_state"], finished["live_runs"]) == ("terminated", "terminated", 0)
    assert finished["campaign"]["id"] == campaign_id


def test_a_scheduled_cycle_starts_the_campaign_when_it_launches(observed: Any, clock: Any) -> None:
    harness, observer, _ = observed
    audience = harness.csv("key\na\nb\nc\n")
    campaign_id = harness.create(WAIT_FLOW.replace("name: Waiting", f"name: Later\naudience: {{path: {audience}}}"))
    scheduled = harness.campaigns.launch(campaign_id, harness.actor, at=clock.now() + timedelta(minutes=1))
    assert scheduled.status == "scheduled" and observer.started == []  # scheduling is not starting
    assert harness.campaigns.launch_due(harness.actor) == []
    assert observer.started == []
    clock.advance(61)
    (outcome,) = harness.campaigns.launch_due(harness.actor)
    assert outcome.status == "launched"
    (started,) = observer.started
    assert (started["launch_id"], started["target_count"], started["committed_runs"]) == (scheduled.launch_id, 3, 3)


# --- prepare_jinja_environment ------------------------------------------------------------------------------------


class Shout:
    """Adds a `shout` filter to message templates only, and its own `after` in place of the built-in one."""

    __name__ = "shout"

    def __init__(self) -> None:
        self.purposes: list[str] = []

    @hookimpl
    def prepare_jinja_environment(self, env: jinja2.Environment, purpose: str) -> None:
        self.purposes.append(purpose)
        if purpose == "message":
            env.filters["shout"] = lambda value: f"{str(value).upper()}!"
            env.filters["after"] = lambda moment, duration: f"plugin-after({duration})"


SHOUT_FLOW = """
name: Shouting
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - id: mail
      type: send_message
      config:
        channel: file
        to: "{{ target.email }}"
        subject: "Welcome {{ target.name | shout }}"
        text: "Dear {{ target.name | shout }}, see you {{ now | after('P1D') }}."
      next: done
    - {id: done, type: left_campaign}
"""


def test_a_plugin_filter_renders_in_the_sent_message(make_runtime: Any, actor: Any, tmp_path: Path) -> None:
    shout = Shout()
    runtime = make_runtime(extra_plugins=(shout,))
    harness = harness_for(runtime, actor, tmp_path)
    campaign_id = harness.create(SHOUT_FLOW)
    harness.launch(campaign_id, harness.csv("key,email,name\n1,ada@example.org,Ada\n"))
    harness.run_to_idle()
    harness.worker.close()
    assert [r.status for r in harness.runs(campaign_id)] == ["completed"]

    (eml,) = (tmp_path / "var" / "outbox").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "ada@example.org" and message["Subject"] == "Welcome ADA!"
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # A plugin's filter of the same name replaces the built-in one (built-ins are defaults, loaded trylast).
    assert body.strip() == "Dear ADA!, see you plugin-after(P1D)."

    # Once per environment: messages and pages each get their own, prepared once and then reused.
    assert runtime.jinja is runtime.jinja and shout.purposes == ["message"]
    assert "shout" not in runtime.pages.filters and shout.purposes == ["message", "page"]
    assert "after" in runtime.pages.filters  # the built-in filter is still there for pages


def test_without_the_plugin_the_filter_is_a_definition_error(make_runtime: Any, actor: Any,
                                                             tmp_path: Path) -> None:
    harness = harness_for(make_runtime(), actor, tmp_path)
    with pytest.raises(DefinitionError) as caught:
        harness.create(SHOUT_FLOW)
    assert any("node 'mail'" in p and "No filter named 'shout'" in p for p in caught.value.problems)


# --- register_audience_sources ------------------------------------------------------------------------------------


class Directory:
    """A third-party audience source: people from a directory (here, its plugin configuration), by department."""

    __name__ = "directory_plugin"

    def __init__(self) -> None:
        class DirectoryConfig(BaseModel):
            model_config = ConfigDict(extra="forbid")
            people: list[dict[str, str]]

        class DirectorySource(AudienceSource):
            """directory: one target per person of ``audience.department``."""

            name = "directory"
            Config = DirectoryConfig
            config: DirectoryConfig

            def targets(self, spec: Mapping[str, Any], base_dir: Path) -> Iterator[Target]:
                for number, person in enumerate(self.config.people, start=1):
                    if person.get("department") != spec["department"]:
                        continue
                    if not person.get("email"):
                        raise AudienceError(f"directory record {number}: no email")
                    yield Target(key=person["email"], attributes=person, line=number)

        self.source = DirectorySource

    @hookimpl
    def register_audience_sources(self) -> list[type[AudienceSource]]:
        return [self.source]


DIRECTORY_FLOW = """
name: Engineering onboarding
audience: {source: directory, department: eng}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - {id: mail, type: send_message, config: {channel: "null", subject: "Hi {{ target.name }}", text: t}, next: done}
    - {id: done, type: left_campaign}
"""


def directory_runtime(make_runtime: Any, people: list[dict[str, str]]) -> Any:
    return make_runtime(extra_plugins=(Directory(),), plugins={"config": {"directory": {"people": people}}})


def test_a_campaign_launches_from_a_plugin_audience_source(make_runtime: Any, actor: Any, tmp_path: Path) -> None:
    people = [{"email": "ada@x.org", "name": "Ada", "department": "eng"},
              {"email": "bob@x.org", "name": "Bob", "department": "sales"},
              {"email": "cy@x.org", "name": "Cy", "department": "eng"}]
    harness = harness_for(directory_runtime(make_runtime, people), actor, tmp_path)
    assert "directory" in harness.runtime.registry.names("audience source")
    campaign_id = harness.create(DIRECTORY_FLOW)
    result = harness.campaigns.launch(campaign_id, actor)  # no --audience: the definition's source
    assert (result.status, result.target_count) == ("launched", 2)
    harness.run_to_idle()
    harness.worker.close()
    launched = harness.runs(campaign_id)
    assert [(r.target_key, r.target["name"], r.status) for r in launched] == [
        ("ada@x.org", "Ada", "completed"), ("cy@x.org", "Cy", "completed")]
    mail = next(s for s in harness.steps(launched[0].id) if s.node_id == "mail")
    assert mail.detail["to"] == "ada@x.org"


def test_a_bad_entry_from_a_plugin_source_rejects_the_launch_whole(make_runtime: Any, actor: Any,
                                                                   tmp_path: Path) -> None:
    # More good people than one insert chunk, so rows really were written before the bad entry was read.
    people = [{"email": f"p{i}@x.org", "name": f"P{i}", "department": "eng"} for i in range(2100)]
    people.append({"email": "", "name": "Nobody", "department": "eng"})
    harness = harness_for(directory_runtime(make_runtime, people), actor, tmp_path)
    campaign_id = harness.create(DIRECTORY_FLOW)
    with pytest.raises(AudienceError, match=r"^directory record 2101: no email$"):
        harness.campaigns.launch(campaign_id, actor)
    assert harness.runs(campaign_id) == []
    with reading(harness.runtime.engine) as conn:
        assert conn.execute(select(func.count()).select_from(launches)).scalar_one() == 0
        sub_types = set(conn.execute(select(audit_history.c.audit_sub_type)).scalars())
    assert "Workflow Started" not in sub_types
    assert harness.campaigns.get(campaign_id)["state"] == "draft"


def test_a_plugin_source_validates_its_own_configuration(make_runtime: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.config\.directory\.people"):
        directory_runtime(make_runtime, "everyone")  # type: ignore[arg-type]


# --- register_step_types, register_field_updaters, register_audit_sinks ------------------------------------------


class Vendor:
    """A vendor plugin with a step type, a field updater and an audit sink of its own."""

    __name__ = "vendor"

    def __init__(self) -> None:
        self.updates: list[FieldUpdate] = []
        self.audited: list[dict[str, Any]] = []
        vendor = self

        class Stamp(StepType):
            """stamp: writes a label into the run's context."""

            name = "stamp"

            class Config(BaseModel):
                model_config = ConfigDict(extra="forbid")
                label: str

            def execute(self, ctx: StepContext) -> StepResult:
                return StepResult(edge="next", detail={"label": ctx.config.label},
                                  context_updates={"stamped": ctx.config.label})

        class Inventory(FieldUpdater):
            name = "inventory"

            def update(self, update: FieldUpdate) -> None:
                vendor.updates.append(update)

        class Collector(AuditSink):
            name = "collector"

            def emit(self, records: Sequence[Mapping[str, Any]]) -> None:
                vendor.audited.extend(dict(r) for r in records)

        self.classes = (Stamp, Inventory, Collector)

    @hookimpl
    def register_step_types(self) -> list[type[StepType]]:
        return [self.classes[0]]

    @hookimpl
    def register_field_updaters(self) -> list[type[FieldUpdater]]:
        return [self.classes[1]]

    @hookimpl
    def register_audit_sinks(self) -> list[type[AuditSink]]:
        return [self.classes[2]]


VENDOR_FLOW = """
name: Vendor flow
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: stamp}
    - {id: stamp, type: stamp, config: {label: gold}, next: tier}
    - {id: tier, type: update_custom_field,
       config: {updater: inventory, field: Tier, value: "{{ context.stamped }}-{{ target.plan }}"}, next: done}
    - {id: done, type: left_campaign}
"""


def test_a_vendor_step_type_field_updater_and_audit_sink(make_runtime: Any, actor: Any, tmp_path: Path) -> None:
    vendor = Vendor()
    harness = harness_for(make_runtime(extra_plugins=(vendor,), audit={"sinks": ["collector"]}), actor, tmp_path)
    campaign_id = harness.create(VENDOR_FLOW)
    harness.launch(campaign_id, harness.csv("key,plan\nada,pro\n"))
    harness.run_to_idle()
    harness.worker.close()
    (run,) = harness.runs(campaign_id)
    assert run.status == "completed" and run.context["stamped"] == "gold"
    stamp = next(s for s in harness.steps(run.id) if s.node_id == "stamp")
    assert (stamp.step_type, stamp.outcome, stamp.detail) == ("stamp", "ok", {"label": "gold"})
    (update,) = vendor.updates
    assert (update.target_key, update.field, update.value) == ("ada", "Tier", "gold-pro")
    assert update.idempotency_key == f"ck:{run.id}:tier:1" and update.campaign_id == campaign_id

    assert vendor.audited == []  # sinks receive records only from the dispatcher, after commit
    with reading(harness.runtime.engine) as conn:
        total = conn.execute(select(func.count()).select_from(audit_history)).scalar_one()
    assert AuditDispatcher(harness.runtime).dispatch() == {"collector": total}
    assert [r["audit_id"] for r in vendor.audited] == list(range(1, total + 1))
    assert {"Created", "Workflow Started"} <= {r["audit_sub_type"] for r in vendor.audited}


def test_a_vendor_step_type_validates_its_config(make_runtime: Any, actor: Any, tmp_path: Path) -> None:
    harness = harness_for(make_runtime(extra_plugins=(Vendor(),)), actor, tmp_path)
    with pytest.raises(DefinitionError) as caught:
        harness.create(VENDOR_FLOW.replace("{label: gold}", "{colour: gold}"))
    assert any("node 'stamp'" in p and "label" in p for p in caught.value.problems)


# --- register_campaign_kinds ----------------------------------------------------------------------------------------

class Checklist:
    """A third-party campaign kind: each person ticks a checklist item; its settings name the item."""

    __name__ = "checklist_kind"

    def __init__(self) -> None:
        from campaignkit.core import CampaignKind

        class ChecklistSettings(BaseModel):
            model_config = ConfigDict(extra="forbid")
            item: str

        class ChecklistKind(CampaignKind):
            name = "checklist"
            Settings = ChecklistSettings
            facets = ("response",)
            system_events = frozenset({"ticked"})
            template_names = frozenset({"item"})
            audit_sub_types = {"Item Ticked": ("Interaction Event", "a person ticked the item")}

            def workflow(self, settings: Any) -> dict[str, Any]:
                return {"nodes": [
                    {"id": "start", "type": "entered_campaign", "next": "ask"},
                    {"id": "ask", "type": "send_message", "next": "wait",
                     "config": {"channel": "null", "to": "{{ target.email }}", "subject": "Tick {{ item }}",
                                "text": "{{ item }}"}},
                    {"id": "wait", "type": "wait_for_event", "config": {"events": ["ticked"]},
                     "edges": {"ticked": "note"}},
                    {"id": "note", "type": "record_outcome", "config": {"response": "Ticked"}, "next": "end"},
                    {"id": "end", "type": "left_campaign"}]}

            def audience_key(self, settings: Any) -> list[str]:
                return ["email"]

            def template_variables(self, settings: Any, ctx: StepContext) -> dict[str, Any]:
                return {"item": settings.item}

        self.kind = ChecklistKind
        self.register_campaign_kinds = hookimpl(lambda: [self.kind])


CHECKLIST = """
name: Fire drill
kind: checklist
audience: {source: csv, path: %s}
settings: {item: fire drill}
"""


def test_a_plugin_s_campaign_kind_validates_builds_its_workflow_and_runs(
    make_runtime: Any, actor: Any, tmp_path: Path
) -> None:
    from campaignkit.core.engine.events import send_event

    harness = harness_for(make_runtime(extra_plugins=(Checklist(),)), actor, tmp_path)
    audience = harness.csv("email\nada@example.org\nada@example.org\n")  # keyed by email: one run
    with pytest.raises(DefinitionError, match=r"settings\.colour: Extra inputs are not permitted"):
        harness.create((CHECKLIST % audience).replace("{item: fire drill}", "{item: fire drill, colour: red}"))
    campaign_id = harness.create(CHECKLIST % audience)
    harness.launch(campaign_id)
    harness.run_to_idle()
    [run] = harness.runs(campaign_id)
    assert (run.target_key, run.status, run.current_node) == ("ada@example.org", "waiting", "wait")
    [ask] = [s for s in harness.steps(run.id) if s.node_id == "ask"]
    assert ask.outcome == "ok"
    with pytest.raises(Exception, match="reserved"):
        send_event(harness.runtime, run.id, "ticked", {}, actor=actor)  # only the kind raises it
    ada = Actor("ada@example.org", None, "192.0.2.7")
    with pytest.raises(PluginError, match="'checklist' declares no audit sub-type 'Ticked'"):
        send_event(harness.runtime, run.id, "ticked", {}, audit=EventAudit(ada, "Ticked", "ada ticked"))
    with harness.runtime.engine.connect() as conn:  # neither the event nor a record: all or nothing
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
    send_event(harness.runtime, run.id, "ticked", {}, audit=EventAudit(ada, "Item Ticked", "ada ticked fire drill"))
    [ticked] = harness.audit("Item Ticked")
    assert (ticked.user_name, ticked.computer_ip, ticked.audit_type, ticked.object_name) == (
        "ada@example.org", "192.0.2.7", "Interaction Event", "Fire drill")
    assert ticked.class_name.endswith("ChecklistKind") and ticked.details == "ada ticked fire drill"
    harness.run_to_idle()
    [run] = harness.runs(campaign_id)
    assert (run.status, run.response) == ("completed", "Ticked")


# --- meta-tests -----------------------------------------------------------------------------------------------------


def hookspecs() -> dict[str, Any]:
    return {name: fn for name, fn in vars(hookspecs_module).items()
            if callable(fn) and hasattr(fn, f"{hookspecs_module.PROJECT}_spec")}


def test_every_hookspec_is_documented() -> None:
    specs = hookspecs()
    assert len(specs) >= 11, sorted(specs)  # found them all, not none
    for name, fn in specs.items():
        doc = inspect.getdoc(fn) or ""
        assert doc.split("\n", 1)[0].strip(), f"{name}: no summary line"
        assert re.search(r"^When it fires: \S", doc, re.MULTILINE), f"{name}: no 'When it fires:' line"
        signature = inspect.signature(fn)
        documented = re.findall(r"^:param (\w+):", doc, re.MULTILINE)
        assert documented == list(signature.parameters), f"{name}: :param lines {documented} do not match arguments"
        for parameter in signature.parameters.values():
            assert parameter.annotation is not inspect.Parameter.empty, f"{name}: {parameter.name} has no type"
        assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"
        if signature.return_annotation != "None":
            assert re.search(r"^:return: \S", doc, re.MULTILINE), f"{name}: returns something but has no :return:"


def test_every_hook_is_implemented_by_a_test_plugin() -> None:
    corpus = ""
    for path in sorted(TESTS.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name == Path(__file__).name:  # the meta-tests themselves do not count
            for meta in (hookspecs, test_every_hookspec_is_documented, test_every_hook_is_implemented_by_a_test_plugin):
                text = text.replace(inspect.getsource(meta), "")
        corpus += text
    missing = [name for name in hookspecs()
               if not re.search(rf"def {name}\(|\b{name} = hookimpl\(", corpus)]
    assert missing == [], f"hooks that no test plugin implements: {missing}"
