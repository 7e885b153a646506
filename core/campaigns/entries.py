"""Entry rules where runs start, and entries: a target entering a journey that is running, from outside.

An entry (``POST /api/campaigns/{id}/entries``, ``campaignkit campaign enter``, or a plugin calling
``enter_target``) starts one run for one target, as a launch does for a whole audience; both apply the definition's
``entry.again`` (definitions/entry.py) and both say what they skipped and why.

One run per target at a time: every entry, and every launch, first locks its campaign's row (PostgreSQL; SQLite's
writer holds the database), then reads the target's earlier runs and decides. So two entries of one target racing,
or an entry racing a launch whose audience holds it, come one after the other, and the second finds the first's run.
Entries go into launch rows of their own (status ``entries``), whose runs keep the launches' unique key (launch,
target): a target that enters again after leaving goes into the next such row, opened when needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, case, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import writing
from ..db.schema import ENTRIES, LIVE_STATUSES, campaign_versions, campaigns, launches, runs
from ..definitions.entry import AFTER_LEAVING, EVERY_LAUNCH, NEVER, EntryRules, entry_rules, iso_duration
from ..definitions.reading import shown
from ..definitions.workflow import CampaignDefinition
from ..errors import AudienceError, CampaignkitError, InvalidState, NotFound
from ..interfaces import Target
from ..kinds import LaunchedRun, RunStart
from . import counts
from .launch import _attribute_problem, _key_problem
from .lifecycle import audit_object

if TYPE_CHECKING:
    from ..runtime import Runtime

MAX_LIVE_SET = 200_000  # keys of runs in the journey a launch holds in memory (about 100 bytes each) to skip them
MAX_ATTRIBUTES = 200
# Why a target gets no new run, as answers and summaries name it.
IN_JOURNEY, ENTERED_BEFORE, TOO_SOON = "in_journey", "entered_before", "too_soon"
REASONS = {IN_JOURNEY: "still in the journey", ENTERED_BEFORE: "entered before", TOO_SOON: "entered too recently"}


class InvalidEntry(CampaignkitError):
    """An entry refused for what it carries (its key, its attributes), before any rule is asked."""


@dataclass
class History:
    """A target's earlier runs in a campaign, as far as the entry rules ask."""

    live_run: int | None = None  # a run still in the journey
    live_entry: bool = False  # ... and it came through an entry
    last_run: int | None = None
    last_entered: datetime | None = None


def lock_campaign(conn: Connection, campaign_id: str) -> Any:
    """The campaign's row, locked until the transaction ends on PostgreSQL (SQLite's writer holds the database):
    everything that starts runs of the campaign takes it first, so they come one after the other."""
    query = select(campaigns.c.name, campaigns.c.state).where(campaigns.c.id == campaign_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def histories(conn: Connection, campaign_id: str, keys: Iterable[str], *, entry_launches: frozenset[int] = frozenset(),
              exclude_launch: int | None = None) -> dict[str, History]:
    """Each key's history in the campaign (keys without runs are absent), from the (campaign, key) index; without
    the runs of ``exclude_launch`` (the launch asking)."""
    query = select(runs.c.target_key, runs.c.id, runs.c.status, runs.c.created_at, runs.c.launch_id).where(
        runs.c.campaign_id == campaign_id, runs.c.target_key.in_(list(keys)))
    if exclude_launch is not None:
        query = query.where(runs.c.launch_id != exclude_launch)
    return _fold(conn.execute(query), entry_launches)


def _fold(rows: Iterable[Any], entry_launches: frozenset[int] = frozenset()) -> dict[str, History]:
    found: dict[str, History] = {}
    for row in rows:
        history = found.setdefault(row.target_key, History())
        if row.status in LIVE_STATUSES:
            history.live_run = max(history.live_run or 0, row.id)
            history.live_entry = history.live_entry or row.launch_id in entry_launches
        if history.last_entered is None or (row.created_at, row.id) > (history.last_entered, history.last_run or 0):
            history.last_run, history.last_entered = row.id, row.created_at
    return found


def refusal(rules: EntryRules, history: History | None, now: datetime, *, at_launch: bool) -> str | None:
    """Why the rules give this target no new run now, or None. Under every_launch a launch looks only at runs that
    came through entries (earlier cycles do not count, as before entry rules); an entry looks at every run."""
    if history is None:
        return None
    if rules.again == EVERY_LAUNCH:
        live = history.live_entry if at_launch else history.live_run is not None
        return IN_JOURNEY if live else None
    if history.live_run is not None:
        return IN_JOURNEY
    if rules.again == NEVER:
        return ENTERED_BEFORE
    period = rules.period
    if period is not None and history.last_entered is not None and history.last_entered + period > now:
        return TOO_SOON
    return None


def skipped_summary(skipped: Mapping[str, int], rules: EntryRules) -> str:
    """"3 target(s) skipped (entry.again: after_leaving): 2 still in the journey, 1 entered before"."""
    if not skipped:
        return ""
    period = f"entered less than {iso_duration(rules.period)} ago" if rules.period else REASONS[TOO_SOON]
    parts = ", ".join(f"{count} {period if reason == TOO_SOON else REASONS[reason]}"
                      for reason, count in sorted(skipped.items()))
    return f"{sum(skipped.values())} target(s) skipped (entry.again: {rules.describe()}): {parts}"


# --- launches ------------------------------------------------------------------------------------------------------


class LaunchGate:
    """The entry rules as a launch applies them, chunk by chunk (launch.insert_runs), counting what it skips."""

    def __init__(self, rules: EntryRules, campaign_id: str, now: datetime, *, active: bool,
                 entry_launches: frozenset[int], live: frozenset[str] | None = None) -> None:
        self.rules = rules
        self.campaign_id = campaign_id
        self.now = now
        self.active = active  # False when no earlier run can stand in the way: nothing is read
        self.entry_launches = entry_launches
        self.live = live  # the keys in the journey, when only that matters (read once: see open_gate)
        self.skipped: Counter[str] = Counter()
        self._seen: set[str] = set()  # keys skipped, counted once however often the audience repeats them

    @property
    def events_only(self) -> bool:
        return self.rules.trigger == "events"

    def skip(self, conn: Connection, keys: list[str], launch_id: int) -> set[str]:
        """The keys of this chunk of ``launch_id`` that get no run (its own runs, from earlier chunks, aside)."""
        if not self.active:
            return set()
        reasons: dict[str, str | None]
        if self.live is not None:
            reasons = {key: IN_JOURNEY for key in keys if key in self.live}
        else:
            found = histories(conn, self.campaign_id, keys, entry_launches=self.entry_launches,
                              exclude_launch=launch_id)
            reasons = {key: refusal(self.rules, history, self.now, at_launch=True) for key, history in found.items()}
        out = set()
        for key, reason in reasons.items():
            if reason is not None:
                out.add(key)
                if key not in self._seen:
                    self._seen.add(key)
                    self.skipped[reason] += 1
        return out

    def summary(self) -> str:
        return skipped_summary(self.skipped, self.rules)


def open_gate(conn: Connection, campaign_id: str, definition: CampaignDefinition, now: datetime) -> LaunchGate:
    """Lock the campaign for a launch (first thing in its transaction) and say what its rules will need to read."""
    lock_campaign(conn, campaign_id)
    rules = entry_rules(definition)
    entry_launches = frozenset(conn.execute(select(launches.c.id).where(
        launches.c.campaign_id == campaign_id, launches.c.status == ENTRIES)).scalars())
    if rules.again == EVERY_LAUNCH and not entry_launches:
        return LaunchGate(rules, campaign_id, now, active=False, entry_launches=entry_launches)
    in_journey = sum(n for status, n in counts.by_status(conn, campaign_id).items() if status in LIVE_STATUSES)
    if rules.again in (EVERY_LAUNCH, AFTER_LEAVING) and in_journey <= MAX_LIVE_SET:
        # Only who is in the journey matters: its live runs, read once through the (campaign, status) index, cost
        # what they number (none, for a campaign relaunched once it completed), where looking up each chunk's keys
        # would read every earlier run of the audience. Runs the worker finishes meanwhile only make it careful.
        live = select(runs.c.target_key).where(runs.c.campaign_id == campaign_id, runs.c.status.in_(LIVE_STATUSES))
        if rules.again == EVERY_LAUNCH:
            live = live.where(runs.c.launch_id.in_(list(entry_launches)))
        keys = frozenset(conn.execute(live).scalars())
        return LaunchGate(rules, campaign_id, now, active=bool(keys), entry_launches=entry_launches, live=keys)
    # Too many in the journey to hold their keys, or a rule that asks when each target entered: each chunk's keys.
    active = conn.execute(select(exists().where(runs.c.campaign_id == campaign_id))).scalar() is True
    return LaunchGate(rules, campaign_id, now, active=active, entry_launches=entry_launches)


def launch_audience(definition: CampaignDefinition, audience: object | None,
                    read: Callable[[], Iterator[Target]]) -> Iterator[Target]:
    """A launch's targets: none for a journey whose runs start only from entries (``entry.trigger: events``),
    else ``read()``."""
    if entry_rules(definition).trigger != "events":
        return iter(read())
    if audience is not None:
        raise AudienceError("entry.trigger is events: this campaign reads no audience; its runs start from entries "
                            "(POST /api/campaigns/{id}/entries, `campaign enter`, a plugin)")
    return iter(())


def settle_idle(runtime: Runtime, campaign_id: str, definition: CampaignDefinition, actor: Actor) -> None:
    """After a launch that started no run (every target skipped): the campaign completes, or waits for its next
    cycle, as the worker settles one whose last run finished. A journey open for entries stays in progress."""
    if entry_rules(definition).trigger == "events":
        return
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        pending = exists().where(launches.c.campaign_id == campaign_id, launches.c.status == "scheduled")
        settled = conn.execute(update(campaigns).where(
            campaigns.c.id == campaign_id, campaigns.c.state == "in_progress",
            ~exists().where(runs.c.campaign_id == campaign_id, runs.c.status.in_(LIVE_STATUSES)),
        ).values(state=case((pending, "scheduled"), else_="completed"), updated_at=now)
            .returning(campaigns.c.state)).scalar()
        if settled == "completed":
            conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(finished_at=now))
            record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT, sub_type=AuditSubType.WORKFLOW_COMPLETED,
                   at=now, obj=audit_object(campaign_id, definition), code=settle_idle,
                   details="every run finished (the launch started none: the entry rules skipped every target)")


# --- entries -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryOutcome:
    """Whether an entry started a run, and if not, why (``reason``: in_journey, entered_before, too_soon)."""

    started: bool
    campaign_id: str
    target_key: str
    run_id: int | None = None  # the run started, or the earlier run that stands in the way
    reason: str | None = None
    message: str = ""
    may_enter_at: datetime | None = None  # too_soon: when the rule lets it in again
    launch_id: int | None = None  # the entries launch the run went into

    def as_dict(self) -> dict[str, Any]:
        answer = asdict(self)
        answer["may_enter_at"] = self.may_enter_at.isoformat() if self.may_enter_at else None
        return answer


def enter_target(runtime: Runtime, campaign_id: str, key: str, attributes: Mapping[str, Any] | None = None, *,
                 actor: Actor | None = None, source: str = "plugin", code: Any = None) -> EntryOutcome:
    """Start a run of ``campaign_id`` for the target ``key`` (with ``attributes``, as an audience row), unless the
    definition's entry rules say no, which the outcome then explains. Audited as Interaction Event / Workflow
    Started, as ``actor`` (default: this process, as a system task), naming ``source`` and ``code`` (your plugin).

    Raises NotFound (no such campaign), InvalidState (a draft, scheduled, paused or terminated campaign takes no
    entries), InvalidEntry (a key or attributes that cannot be stored, or that the campaign's kind refuses).
    """
    actor = actor or Actor.system(runtime.instance_id)
    values = _checked_attributes(key, attributes)
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        # One statement and one transaction: the campaign's row, locked, and its current definition.
        campaign = _check_state(conn, campaign_id, conn.execute(
            _CAMPAIGN_FOR_UPDATE if conn.dialect.name == "postgresql" else _CAMPAIGN, {"id": campaign_id}).first())
        definition = CampaignDefinition.model_validate(campaign.definition)
        kind = runtime.kind(definition.kind)
        settings = kind.settings(definition.settings)
        target = Target(key, _with_key(definition, key, values))
        problem = kind.target_problem(settings, target.attributes)
        if problem is not None:
            raise InvalidEntry(f"target {shown(key)}: {problem}")
        rules = entry_rules(definition)
        history = _history(conn, campaign_id, key)
        reason = refusal(rules, history, now, at_launch=False)
        if reason is not None:
            return _refused(campaign_id, key, reason, history, rules)
        planner = kind.launch_planner(settings, now)
        start = planner(target) if planner is not None else RunStart(now, {})
        launch_id = _entries_launch(conn, campaign_id, campaign.version_id, key, now)
        try:
            with conn.begin_nested():
                run_id = int(conn.execute(_INSERT_RUN, {
                    "campaign_id": campaign_id, "launch_id": launch_id, "version_id": campaign.version_id,
                    "target_key": key, "target": dict(target.attributes), "status": "pending", "current_node": None,
                    "context": dict(start.context), "due_at": start.due_at, "lease_token": 0, "attempt": 0,
                    "created_at": now, "updated_at": now}).scalar_one())
        except IntegrityError:  # the lock makes this unreachable; should it not, the unique key still holds
            return _refused(campaign_id, key, IN_JOURNEY, _history(conn, campaign_id, key), rules)
        counts.add_launched(conn, campaign_id, launch_id, 1)
        conn.execute(_COUNT_ENTRY, {"launch_id": launch_id})
        kind.launched(conn, settings, campaign_id, launch_id,
                      [LaunchedRun(run_id, key, target.attributes, start.due_at, start.context)], now)
        reopened = campaign.state != "in_progress"
        if reopened:
            conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(
                state="in_progress", updated_at=now, finished_at=None))
        names = ", ".join(sorted(target.attributes)[:20]) or "none"
        record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT, sub_type=AuditSubType.WORKFLOW_STARTED,
               at=now, obj=audit_object(campaign_id, definition), code=code or enter_target,
               details=f"entry via {source}: run {run_id} started (launch {launch_id}); attributes: {names}"
                       + (f"; the campaign was {campaign.state} and is in progress again" if reopened else ""))
    return EntryOutcome(True, campaign_id, key, run_id, None, f"target {shown(key)} entered: run {run_id}",
                        launch_id=launch_id)


# An entry's statements, built once: an entry is a handful of small statements, and building them is most of its
# Python time.
_CAMPAIGN = (select(campaigns.c.name, campaigns.c.state, campaign_versions.c.id.label("version_id"),
                    campaign_versions.c.definition)
             .join(campaign_versions, campaign_versions.c.id == campaigns.c.current_version_id)
             .where(campaigns.c.id == bindparam("id")))
_CAMPAIGN_FOR_UPDATE = _CAMPAIGN.with_for_update(of=campaigns)
_HISTORY = select(runs.c.target_key, runs.c.id, runs.c.status, runs.c.created_at, runs.c.launch_id).where(
    runs.c.campaign_id == bindparam("campaign_id"), runs.c.target_key == bindparam("key"))
_LATEST_ENTRIES = (select(launches.c.id, exists().where(runs.c.launch_id == launches.c.id,
                                                        runs.c.target_key == bindparam("key")).label("taken"))
                   .where(launches.c.campaign_id == bindparam("campaign_id"), launches.c.status == ENTRIES)
                   .order_by(launches.c.cycle_at.desc(), launches.c.id.desc()).limit(1))
_INSERT_RUN = insert(runs).returning(runs.c.id)
_COUNT_ENTRY = (update(launches).where(launches.c.id == bindparam("launch_id"))
                .values(target_count=launches.c.target_count + 1))


def _history(conn: Connection, campaign_id: str, key: str) -> History | None:
    return _fold(conn.execute(_HISTORY, {"campaign_id": campaign_id, "key": key})).get(key)


def _checked_attributes(key: str, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    values = dict(attributes or {})
    if not key or not isinstance(key, str):
        raise InvalidEntry("key: a target needs a key (text)")
    if len(values) > MAX_ATTRIBUTES:
        raise InvalidEntry(f"attributes: at most {MAX_ATTRIBUTES}")
    problem = _key_problem(key) or _attribute_problem(values)
    if problem is not None:
        raise InvalidEntry(f"target {shown(key)}: {problem}")
    return values


def _with_key(definition: CampaignDefinition, key: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """An audience row holds its key's column(s); so does an entry's target (``target.email`` in a template)."""
    columns = definition.audience.key if definition.audience else "key"
    names = [columns] if isinstance(columns, str) else list(columns)
    parts = [key] if len(names) == 1 else key.split("|")
    if len(parts) == len(names):
        for name, part in zip(names, parts, strict=True):
            attributes.setdefault(name, part)
    return attributes


def _check_state(conn: Connection, campaign_id: str, campaign: Any) -> Any:
    """The campaign's row, when it takes entries: in progress, completed (it opens again), or a recurring campaign
    between two cycles."""
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id!r}")
    name, state = campaign.name, campaign.state
    if state in ("in_progress", "completed"):
        return campaign
    if state == "scheduled":
        launched = conn.execute(select(exists().where(launches.c.campaign_id == campaign_id,
                                                      launches.c.status.in_(("launched", ENTRIES))))).scalar()
        if launched:
            return campaign
        raise InvalidState(f"campaign {name!r} is scheduled and has not started yet: it takes entries once launched")
    if state == "draft":
        raise InvalidState(f"campaign {name!r} is a draft: launch it first (with entry.trigger: events, a launch "
                           "opens it for entries without reading an audience)")
    raise InvalidState(f"campaign {name!r} is {state}; it takes no entries" + ("; resume it first"
                                                                                   if state == "paused" else ""))


def _entries_launch(conn: Connection, campaign_id: str, version_id: int, key: str, now: datetime) -> int:
    """The newest entries launch the target has no run in, opened when there is none (a re-entry after leaving)."""
    latest = conn.execute(_LATEST_ENTRIES, {"campaign_id": campaign_id, "key": key}).first()
    if latest is not None and not latest.taken:
        return int(latest.id)
    # (campaign, cycle_at) is unique: step past a cycle or an entries launch at this very microsecond.
    taken = set(conn.execute(select(launches.c.cycle_at).where(launches.c.campaign_id == campaign_id,
                                                               launches.c.cycle_at >= now)).scalars())
    cycle_at = now
    for _ in range(100):  # a scheduler adding the next cycle at that microsecond meanwhile: the next one
        while cycle_at in taken:
            cycle_at += timedelta(microseconds=1)
        try:
            with conn.begin_nested():
                return int(conn.execute(insert(launches).values(
                    campaign_id=campaign_id, cycle_at=cycle_at, version_id=version_id, status=ENTRIES,
                    target_count=0, created_at=now, launched_at=now).returning(launches.c.id)).scalar_one())
        except IntegrityError:
            taken.add(cycle_at)
    raise InvalidState(f"no free moment for the entries of campaign {campaign_id} at {now.isoformat()}")


def _refused(campaign_id: str, key: str, reason: str, history: History | None, rules: EntryRules) -> EntryOutcome:
    who = f"target {shown(key)}"
    if reason == IN_JOURNEY:
        run_id = history.live_run if history else None
        return EntryOutcome(False, campaign_id, key, run_id, reason, f"{who} is still in the journey (run {run_id})")
    run_id = history.last_run if history else None
    if reason == ENTERED_BEFORE:
        return EntryOutcome(False, campaign_id, key, run_id, reason,
                            f"{who} entered before (run {run_id}) and entry.again is never")
    entered = history.last_entered if history else None
    again = entered + rules.period if entered is not None and rules.period is not None else None
    when = f"; it may enter again from {again:%Y-%m-%d %H:%M} UTC" if again else ""
    return EntryOutcome(False, campaign_id, key, run_id, reason,
                        f"{who} entered less than {iso_duration(rules.period or timedelta())} ago (run {run_id})"
                        f"{when}", may_enter_at=again)
