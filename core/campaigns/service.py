"""Campaign lifecycle: create, edit (new versions), launch now or later, terminate. Each change is audited
in its own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Connection, exists, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from ..audit import Actor, AuditSubType, AuditType, record
from ..clock import utc
from ..db import reading, writing
from ..db.schema import LIVE_STATUSES, campaign_versions, campaigns, events, launches, runs
from ..definitions.loader import LoadedDefinition
from ..definitions.remote import files_dir, is_sent, sent_source
from ..definitions.schedule import first_cycle, next_cycle
from ..definitions.template_check import check_templates, checked_first
from ..definitions.validation import validate_definition
from ..definitions.workflow import CampaignDefinition
from ..engine.events import wake_waiting
from ..errors import CampaignkitError, InvalidState, NotFound
from ..interfaces import Target
from ..kinds import LaunchedRun, RunStart
from .entries import launch_audience, open_gate, settle_idle
from .launch import AudienceFile, CountedTargets, Progress, audience_file, audience_targets, insert_runs
from .lifecycle import Lifecycle, audit_object
from .live_edit import move_runs

if TYPE_CHECKING:
    from ..runtime import Runtime


@dataclass(frozen=True)
class CycleOutcome:
    launch_id: int
    status: str  # launched, missed, taken (handled or cancelled elsewhere), not_due, unknown
    target_count: int = 0
    deadline: datetime | None = None
    next_launch_id: int | None = None
    skipped: Mapping[str, int] = field(default_factory=dict)  # targets the entry rules kept out, by reason


@dataclass(frozen=True)
class LaunchResult:
    campaign_id: str
    launch_id: int
    cycle_at: datetime
    status: str  # launched or scheduled
    target_count: int
    skipped: Mapping[str, int] = field(default_factory=dict)  # targets the entry rules kept out, by reason
    summary: str = ""  # what skipped says, in words


class Campaigns(Lifecycle):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # --- definitions --------------------------------------------------------------------------------

    def create(self, loaded: LoadedDefinition, actor: Actor) -> str:
        definition = loaded.definition
        validate_definition(definition, loaded.source, self.runtime)
        self._check_templates(loaded)
        now = self.runtime.clock.now()
        campaign_id = str(uuid.uuid4())
        try:
            with writing(self.runtime.engine) as conn:
                conn.execute(insert(campaigns).values(
                    id=campaign_id, name=definition.name, folder=definition.folder, kind=definition.kind,
                    state="draft", created_at=now, updated_at=now,
                ))
                version_id = self._insert_version(conn, campaign_id, definition, loaded, now)
                conn.execute(update(campaigns).where(campaigns.c.id == campaign_id)
                             .values(current_version_id=version_id))
                record(conn, actor=actor, audit_type=AuditType.OBJECT_CHANGE, sub_type=AuditSubType.CREATED,
                       at=now, obj=audit_object(campaign_id, definition), code=self,
                       details=f"created from {loaded.path or _source(loaded) or 'definition'}")
        except IntegrityError:
            raise InvalidState(
                f"a campaign named {definition.name!r} already exists in folder {definition.folder!r}; "
                "edit it with `campaign update`"
            ) from None
        return campaign_id

    def update(self, campaign_id: str, loaded: LoadedDefinition, actor: Actor) -> tuple[int, int]:
        """Replace the definition; a campaign that has runs keeps its old version for them and gets a new one."""
        definition = loaded.definition
        validate_definition(definition, loaded.source, self.runtime)
        self._check_templates(loaded)
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            campaign = self._get(conn, campaign_id)
            if campaign.state == "terminated":
                raise InvalidState(f"campaign {campaign_id} is terminated and cannot be edited")
            current = conn.execute(select(campaign_versions).where(
                campaign_versions.c.id == campaign.current_version_id)).one()
            has_runs = conn.execute(select(exists().where(runs.c.campaign_id == campaign_id))).scalar()
            wanted = definition.version_tuple
            moved = None
            if has_runs:
                # Finished runs keep the version they ran, so the edit becomes a version of its own; a journey's
                # runs in progress move onto it (live_edit.py says by which rules).
                wanted = max(wanted, (current.major, current.minor + 1))
                definition = definition.model_copy(update={"version": f"{wanted[0]}.{wanted[1]}"})
                version_id = self._insert_version(conn, campaign_id, definition, loaded, now)
                if campaign.kind == definition.kind and self.runtime.kind(definition.kind).moves_runs_on_edit:
                    moved = move_runs(conn, campaign_id, version_id, definition.workflow, now,
                                      paused=campaign.state == "paused")
            else:
                version_id = current.id
                conn.execute(update(campaign_versions).where(campaign_versions.c.id == version_id).values(
                    major=wanted[0], minor=wanted[1], definition=definition.model_dump(mode="json"),
                    source=_source(loaded), source_text=loaded.text))
            try:
                conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(
                    name=definition.name, folder=definition.folder, kind=definition.kind,
                    current_version_id=version_id, updated_at=now))
            except IntegrityError:  # the whole edit is rolled back
                raise InvalidState(f"another campaign is named {definition.name!r} in folder "
                                   f"{definition.folder!r}") from None
            record(conn, actor=actor, audit_type=AuditType.OBJECT_CHANGE, sub_type=AuditSubType.EDITED, at=now,
                   obj=audit_object(campaign_id, definition), code=self,
                   details=f"version {definition.version}" + (f"; {moved.describe()}" if moved is not None else ""))
        return definition.version_tuple

    def _check_templates(self, loaded: LoadedDefinition) -> None:
        """Render every template with the first row of the definition's audience, when it can be read now (an
        audience given only at launch is checked then)."""
        base_dir = self._base_dir(_source(loaded))
        if audience_file(loaded.definition, base_dir) is None:
            return  # a source that reads no file (an API, a directory) is not called before a launch asks for it
        try:
            targets = audience_targets(self.runtime, loaded.definition, base_dir)
            sample = next(iter(targets), None)
        except (CampaignkitError, OSError):
            return  # the audience is refused at launch, with its own message
        if sample is not None:
            imported = audience_file(loaded.definition, base_dir)
            origin = f"{imported.path}:{sample.line}" if imported and sample.line is not None else repr(sample.key)
            check_templates(self.runtime, loaded.definition, loaded.source, sample, origin)

    def _insert_version(self, conn: Connection, campaign_id: str, definition: CampaignDefinition,
                        loaded: LoadedDefinition, now: datetime) -> int:
        major, minor = definition.version_tuple
        return int(conn.execute(insert(campaign_versions).values(
            campaign_id=campaign_id, major=major, minor=minor, definition=definition.model_dump(mode="json"),
            source=_source(loaded), source_text=loaded.text, created_at=now,
        ).returning(campaign_versions.c.id)).scalar_one())

    def _base_dir(self, source: str | None) -> Path:
        """Where a version's relative file names lead: beside its file; for a definition sent through the API or
        the console, into definitions.files_dir (definitions/remote.py); else the working directory."""
        if is_sent(source):
            return files_dir(self.runtime.settings)
        return Path(source).parent if source else Path.cwd()

    # --- reading ------------------------------------------------------------------------------------

    def get(self, campaign_id: str) -> dict[str, Any]:
        with reading(self.runtime.engine) as conn:
            return dict(self._get(conn, campaign_id)._mapping)

    def resolve(self, reference: str) -> str:
        """A campaign id from its id, a unique id prefix, or its name."""
        with reading(self.runtime.engine) as conn:
            rows = conn.execute(select(campaigns.c.id).where(
                (campaigns.c.id == reference) | (campaigns.c.name == reference)
                | campaigns.c.id.startswith(reference, autoescape=True)
            )).scalars().all()
        if len(set(rows)) == 1:
            return rows[0]
        if not rows:
            raise NotFound(f"no campaign {reference!r}")
        raise NotFound(f"{reference!r} matches {len(set(rows))} campaigns; give more of the id")

    def definition(self, campaign_id: str) -> tuple[CampaignDefinition, int, Path]:
        with reading(self.runtime.engine) as conn:
            campaign = self._get(conn, campaign_id)
            version = conn.execute(select(campaign_versions).where(
                campaign_versions.c.id == campaign.current_version_id)).one()
        return CampaignDefinition.model_validate(version.definition), version.id, self._base_dir(version.source)

    @staticmethod
    def _get(conn: Connection, campaign_id: str) -> Any:
        row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
        if row is None:
            raise NotFound(f"no campaign {campaign_id!r}")
        return row

    # --- launching ----------------------------------------------------------------------------------

    def launch(self, campaign_id: str, actor: Actor, *, at: datetime | None = None,
               audience: Path | None = None, progress: Progress | None = None) -> LaunchResult:
        """Launch now, or schedule the first cycle (``at``, else the definition's schedule).

        The audience is read whole inside the launch transaction: a bad row rolls everything back.
        """
        now = self.runtime.clock.now()
        campaign = self.get(campaign_id)
        if campaign["state"] in ("terminated", "in_progress", "scheduled"):
            raise InvalidState(f"campaign {campaign['name']!r} is {campaign['state']}; it cannot be launched")
        definition, version_id, base_dir = self.definition(campaign_id)
        if at is None:
            at = first_cycle(definition.schedule, now, self.runtime.settings.timezone)
        if at is not None and utc(at) > now:
            return self._schedule(campaign, definition, version_id, utc(at), actor, now)
        targets = CountedTargets(launch_audience(definition, audience,
                                                 lambda: self._checked_targets(definition, base_dir, audience)))
        with writing(self.runtime.engine) as conn:
            gate = open_gate(conn, campaign_id, definition, now)  # first: entries wait for this launch
            launch_id = self._new_launch(conn, campaign, version_id, now, "launched", now,
                                         deadline=_deadline(definition, now))
            count = insert_runs(conn, targets, campaign_id=campaign_id, launch_id=launch_id,
                                version_id=version_id, due_at=now, now=now, progress=progress,
                                start=self._planner(definition, now),
                                launched=self._kind_launched(conn, definition, campaign_id, launch_id, now), gate=gate)
            self._audit_import(conn, audience_file(definition, base_dir, audience), targets, count, campaign_id,
                               definition, launch_id, actor, now)
            self._mark_launched(conn, campaign, definition, launch_id, count, actor, now, gate.summary())
        if count == 0:
            settle_idle(self.runtime, campaign_id, definition, actor)
        self._notify_started(campaign_id, launch_id, count)
        return LaunchResult(campaign_id, launch_id, now, "launched", count, dict(gate.skipped), gate.summary())

    def _planner(self, definition: CampaignDefinition, now: datetime) -> Callable[[Target], RunStart] | None:
        kind = self.runtime.kind(definition.kind)
        return kind.launch_planner(kind.settings(definition.settings), now)

    def _kind_launched(self, conn: Connection, definition: CampaignDefinition, campaign_id: str, launch_id: int,
                       now: datetime) -> Callable[[list[LaunchedRun]], None]:
        kind = self.runtime.kind(definition.kind)
        settings = kind.settings(definition.settings)
        return lambda batch: kind.launched(conn, settings, campaign_id, launch_id, batch, now)

    def _checked_targets(self, definition: CampaignDefinition, base_dir: Path,
                         audience: Path | None = None) -> Iterator[Target]:
        """The launch's audience, once its first row has rendered every template (before any run is written)."""
        imported = audience_file(definition, base_dir, audience)
        return checked_first(self.runtime, definition, audience_targets(self.runtime, definition, base_dir, audience),
                             str(imported.path) if imported else None)

    def launch_question(self, campaign_id: str, audience: Path | None = None) -> str | None:
        """What the campaign's kind wants confirmed before a launch (CampaignKind.launch_question), if anything."""
        definition, _, base_dir = self.definition(campaign_id)
        kind = self.runtime.kind(definition.kind)
        return kind.launch_question(kind.settings(definition.settings), lambda: len(
            {t.key for t in audience_targets(self.runtime, definition, base_dir, audience)}))

    def launch_due(self, actor: Actor) -> list[CycleOutcome]:
        """Run every scheduled cycle whose time has come (for processes without the scheduler role)."""
        now = self.runtime.clock.now()
        with reading(self.runtime.engine) as conn:
            due = conn.execute(select(launches.c.id).where(launches.c.status == "scheduled",
                                                           launches.c.cycle_at <= now)).scalars().all()
        grace = timedelta(seconds=self.runtime.settings.scheduler.misfire_grace_seconds)
        return [self.run_cycle(launch_id, actor, grace=grace) for launch_id in due]

    def apply_due_deadlines(self, actor: Actor) -> int:
        """Apply every cycle deadline that has passed (for processes without the scheduler role)."""
        now = self.runtime.clock.now()
        with reading(self.runtime.engine) as conn:
            due = conn.execute(select(launches.c.id).where(launches.c.status == "launched",
                                                           launches.c.deadline_at <= now,
                                                           launches.c.ended_at.is_(None))).scalars().all()
        return sum(self.cycle_deadline(launch_id, actor) for launch_id in due)

    def run_cycle(self, launch_id: int, actor: Actor, *, grace: timedelta) -> CycleOutcome:
        """Launch one scheduled cycle — or record it missed when later than ``grace`` — then schedule the next
        cycle of a recurring campaign. Claiming the launch row makes a second scheduler a no-op."""
        now = self.runtime.clock.now()
        with reading(self.runtime.engine) as conn:
            launch = conn.execute(select(launches).where(launches.c.id == launch_id)).first()
        if launch is None:
            return CycleOutcome(launch_id, "unknown")
        if launch.status != "scheduled":
            return CycleOutcome(launch_id, "taken")
        if launch.cycle_at > now:
            return CycleOutcome(launch_id, "not_due")
        campaign = self.get(launch.campaign_id)
        definition, _, base_dir = self.definition(launch.campaign_id)
        if now - launch.cycle_at > grace:
            status, count, deadline, skipped = "missed", 0, None, {}
            with writing(self.runtime.engine) as conn:
                if not self._claim_launch(conn, launch_id, "missed", now):
                    return CycleOutcome(launch_id, "taken")
                record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT, sub_type=AuditSubType.LAUNCH_MISSED,
                       at=now, obj=audit_object(campaign["id"], definition), code=self,
                       details=f"cycle {launch.cycle_at.isoformat()} missed by {now - launch.cycle_at} "
                               f"(grace {grace})")
        else:
            status, deadline = "launched", _deadline(definition, now)
            targets = CountedTargets(launch_audience(definition, None,
                                                     lambda: self._checked_targets(definition, base_dir)))
            with writing(self.runtime.engine) as conn:
                gate = open_gate(conn, launch.campaign_id, definition, now)  # first: entries wait for this launch
                if not self._claim_launch(conn, launch_id, "launched", now, deadline=deadline):
                    return CycleOutcome(launch_id, "taken")
                count = insert_runs(conn, targets, campaign_id=launch.campaign_id, launch_id=launch_id,
                                    version_id=launch.version_id, due_at=now, now=now,
                                    start=self._planner(definition, now),
                                    launched=self._kind_launched(conn, definition, launch.campaign_id, launch_id, now),
                                    gate=gate)
                self._audit_import(conn, audience_file(definition, base_dir), targets, count, launch.campaign_id,
                                   definition, launch_id, actor, now)
                self._mark_launched(conn, campaign, definition, launch_id, count, actor, now, gate.summary())
            skipped = dict(gate.skipped)
            self._notify_started(launch.campaign_id, launch_id, count)
        next_launch_id = self._schedule_next(campaign, definition, launch.version_id, launch.cycle_at, now)
        if next_launch_id is None and status == "missed":
            self._settle_state(launch.campaign_id, now)
        if status == "launched" and count == 0:
            settle_idle(self.runtime, launch.campaign_id, definition, actor)
        return CycleOutcome(launch_id, status, count, deadline, next_launch_id, skipped)

    @staticmethod
    def _claim_launch(conn: Connection, launch_id: int, status: str, now: datetime,
                      deadline: datetime | None = None) -> bool:
        return bool(conn.execute(update(launches).where(launches.c.id == launch_id, launches.c.status == "scheduled")
                                 .values(status=status, launched_at=now, deadline_at=deadline)).rowcount)

    def _schedule_next(self, campaign: dict[str, Any], definition: CampaignDefinition, version_id: int,
                       after: datetime, now: datetime) -> int | None:
        if definition.schedule is None or not definition.schedule.cron:
            return None
        cycle = next_cycle(definition.schedule, max(after, now), self.runtime.settings.timezone)
        if cycle is None:
            return None
        with writing(self.runtime.engine) as conn:
            try:
                return self._new_launch(conn, campaign, version_id, cycle, "scheduled", now)
            except InvalidState:
                return None  # another scheduler got there first

    def _settle_state(self, campaign_id: str, now: datetime) -> None:
        """After a missed one-off cycle with nothing else pending, the campaign goes back to draft."""
        with writing(self.runtime.engine) as conn:
            conn.execute(update(campaigns).where(
                campaigns.c.id == campaign_id, campaigns.c.state == "scheduled",
                ~exists().where(launches.c.campaign_id == campaign_id, launches.c.status == "scheduled"),
                ~exists().where(runs.c.campaign_id == campaign_id),
            ).values(state="draft", updated_at=now))

    def cycle_deadline(self, launch_id: int, actor: Actor) -> int:
        """End a cycle at its deadline; returns how many unfinished runs it reached.

        A workflow that waits for a ``deadline`` event (an access review's end-of-campaign policy) gets one in every
        unfinished run and finishes them itself. A workflow that never listens for it has no policy of its own:
        its unfinished runs end as terminated, so the campaign completes when its time is up.
        """
        now = self.runtime.clock.now()
        with reading(self.runtime.engine) as conn:
            launch = conn.execute(select(launches).where(launches.c.id == launch_id)).first()
            if launch is None or launch.ended_at is not None:
                return 0
            cycle_definition = CampaignDefinition.model_validate(conn.execute(
                select(campaign_versions.c.definition).where(campaign_versions.c.id == launch.version_id)).scalar_one())
        definition, _, _ = self.definition(launch.campaign_id)
        live = select(runs.c.id).where(runs.c.launch_id == launch_id, runs.c.status.in_(LIVE_STATUSES))
        ended: Sequence[Any] = ()
        with writing(self.runtime.engine) as conn:
            if _listens_for_deadline(cycle_definition):
                count = len(conn.execute(insert(events).from_select(
                    ["run_id", "name", "payload", "source", "created_at"],
                    select(runs.c.id, literal("deadline"), literal({}, JSON()), literal("scheduler"),
                           literal(now, runs.c.created_at.type)).where(runs.c.id.in_(live.scalar_subquery())),
                ).returning(events.c.id)).all())
                wake_waiting(conn, runs.c.launch_id == launch_id, now)
                outcome = f"{count} unfinished run(s) notified"
            else:
                # Bumping the lease token makes a worker holding any of these runs drop its results.
                ended = conn.execute(update(runs).where(runs.c.id.in_(live.scalar_subquery())).values(
                    status="terminated", due_at=None, paused_due_at=None, lease_owner=None,
                    lease_token=runs.c.lease_token + 1, error="ended at the cycle's deadline", finished_at=now,
                    updated_at=now).returning(runs.c.id, runs.c.target_key, runs.c.current_node)).all()
                count = len(ended)
                outcome = f"{count} unfinished run(s) terminated"
            conn.execute(update(launches).where(launches.c.id == launch_id).values(ended_at=now))
            record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT, sub_type=AuditSubType.DEADLINE,
                   at=now, obj=audit_object(launch.campaign_id, definition), code=self,
                   details=f"launch {launch_id}: deadline reached, {outcome}")
            completed = bool(ended) and _complete_if_idle(conn, launch.campaign_id, now)
            if completed:
                record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT,
                       sub_type=AuditSubType.WORKFLOW_COMPLETED, at=now, code=self,
                       obj=audit_object(launch.campaign_id, definition),
                       details="every run finished (the deadline ended the last ones)")
        for run in ended:
            self.runtime.notify("on_run_finished", run={
                "id": run.id, "campaign_id": launch.campaign_id, "target_key": run.target_key,
                "status": "terminated", "current_node": run.current_node, "error": "ended at the cycle's deadline"})
        if completed:
            self.runtime.notify("on_campaign_finished", campaign=self.get(launch.campaign_id), state="completed")
        return count

    def _schedule(self, campaign: dict[str, Any], definition: CampaignDefinition, version_id: int, at: datetime,
                  actor: Actor, now: datetime) -> LaunchResult:
        with writing(self.runtime.engine) as conn:
            launch_id = self._new_launch(conn, campaign, version_id, at, "scheduled", now)
            conn.execute(update(campaigns).where(campaigns.c.id == campaign["id"])
                         .values(state="scheduled", updated_at=now))
            record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT,
                   sub_type=AuditSubType.WORKFLOW_TRIGGER_REQUEST, at=now,
                   obj=audit_object(campaign["id"], definition),
                   code=self, details=f"launch scheduled for {at.isoformat()}")
        return LaunchResult(campaign["id"], launch_id, at, "scheduled", 0)

    def _new_launch(self, conn: Connection, campaign: dict[str, Any], version_id: int, cycle_at: datetime,
                    status: str, now: datetime, deadline: datetime | None = None) -> int:
        try:
            with conn.begin_nested():
                return int(conn.execute(insert(launches).values(
                    campaign_id=campaign["id"], cycle_at=cycle_at, version_id=version_id, status=status,
                    created_at=now, launched_at=now if status == "launched" else None, deadline_at=deadline,
                ).returning(launches.c.id)).scalar_one())
        except IntegrityError:
            raise InvalidState(
                f"campaign {campaign['name']!r} already has a launch at {cycle_at.isoformat()}") from None

    def _mark_launched(self, conn: Connection, campaign: dict[str, Any], definition: CampaignDefinition,
                       launch_id: int, count: int, actor: Actor, now: datetime, skipped: str = "") -> None:
        conn.execute(update(launches).where(launches.c.id == launch_id).values(target_count=count))
        conn.execute(update(campaigns).where(campaigns.c.id == campaign["id"])
                     .values(state="in_progress", updated_at=now, finished_at=None))
        record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT, sub_type=AuditSubType.WORKFLOW_STARTED,
               at=now, obj=audit_object(campaign["id"], definition), code=self,
               details=f"launch {launch_id}: {count} run(s)" + (f"; {skipped}" if skipped else ""))

    def _audit_import(self, conn: Connection, imported: AudienceFile | None, targets: CountedTargets, count: int,
                      campaign_id: str, definition: CampaignDefinition, launch_id: int, actor: Actor,
                      now: datetime) -> None:
        """Client Job / File Import for a launch that read its audience from a file, on the launch's connection:
        a bad row rolls back the runs and this record together. See ``audience_file`` for sources without a file."""
        if imported is None:
            return
        record(conn, actor=actor, audit_type=AuditType.CLIENT_JOB, sub_type=AuditSubType.FILE_IMPORT, at=now,
               obj=audit_object(campaign_id, definition), code=self,
               details=f"audience file {imported.path} (source {imported.source}): {targets.rows} row(s), "
                       f"{count} target(s) for launch {launch_id}")

    def _notify_started(self, campaign_id: str, launch_id: int, count: int) -> None:
        self.runtime.notify("on_campaign_started", campaign=self.get(campaign_id), launch_id=launch_id,
                            target_count=count)


def _source(loaded: LoadedDefinition) -> str | None:
    """What a version records as its origin: its file's absolute path, or ``web:<name>`` for one sent."""
    if loaded.path is not None:
        return str(loaded.path.resolve())
    return sent_source(loaded.sent_as) if loaded.sent_as is not None else None


def _deadline(definition: CampaignDefinition, start: datetime) -> datetime | None:
    end_after = definition.schedule.end_after if definition.schedule else None
    return start + end_after if end_after else None


def _listens_for_deadline(definition: CampaignDefinition) -> bool:
    return any(node.type == "wait_for_event" and "deadline" in (node.config.get("events") or [])
               for node in definition.workflow.nodes)


def _complete_if_idle(conn: Connection, campaign_id: str, now: datetime) -> bool:
    """After runs ended outside a worker: the campaign completes if nothing is live and no cycle is pending."""
    return bool(conn.execute(update(campaigns).where(
        campaigns.c.id == campaign_id, campaigns.c.state == "in_progress",
        ~exists().where(runs.c.campaign_id == campaign_id, runs.c.status.in_(LIVE_STATUSES)),
        ~exists().where(launches.c.campaign_id == campaign_id, launches.c.status == "scheduled"),
    ).values(state="completed", finished_at=now, updated_at=now)).rowcount)
