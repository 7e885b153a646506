"""A launch of a simulation: each recipient's attack and send moment (the run starts then), and their results row
and groups, written in the launch's transaction."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from campaignkit.core.db.bulk import BulkInsert
from campaignkit.core.db.schema import phishing_groups, phishing_results
from campaignkit.core.interfaces import Target
from campaignkit.core.kinds import LaunchedRun, RunStart

from .links import new_token
from .planning import SendPlanner
from .settings import PhishingSettings


def launch_planner(settings: PhishingSettings, launched_at: datetime) -> Callable[[Target], RunStart]:
    """Each run is due when its email goes out, with its attack in the context (context.attack)."""
    rng = random.SystemRandom()
    # From the launch's whole second: a send "at once" is due at the launch, not a fraction of a second after it.
    planner = SendPlanner(settings.sending, launched_at.replace(microsecond=0), random.Random(rng.getrandbits(64)))
    names = [attack.name for attack in settings.attacks]

    def start(target: Target) -> RunStart:
        attack = names[0] if settings.assignment == "same" else rng.choice(names)
        zone = str(target.attributes.get(settings.time_zone_column) or "") or None
        send_at = planner.place(zone)
        return RunStart(send_at, {"attack": attack, "send_at": send_at.isoformat()})

    return start


def write_results(conn: Connection, settings: PhishingSettings, campaign_id: str, launch_id: int,
                  batch: Sequence[LaunchedRun], now: datetime) -> None:
    """A results row and the group rows for each run of a batch the launch has just written. A target repeated
    in a later batch (its run merged) already has them: it is skipped."""
    # Links work from the recipient's own send moment (a throttled send can fall after the window) for the
    # observation and the grace period.
    lifetime = settings.observe_for + settings.link_grace
    written = set(conn.execute(select(phishing_results.c.run_id).where(
        phishing_results.c.run_id.in_([run.id for run in batch]))).scalars())
    rows = [_row(settings, run, max(run.due_at, now) + lifetime) for run in batch if run.id not in written]
    shared = {"campaign_id": campaign_id, "launch_id": launch_id, "attempt": 0, "filtered_hits": 0}
    BulkInsert(conn, phishing_results, RESULT_COLUMNS, shared=shared).execute(rows)
    BulkInsert(conn, phishing_groups, ("group_name", "run_id"), shared={"campaign_id": campaign_id}).execute(
        (group, row[0]) for row in rows for group in row[GROUPS])


RESULT_COLUMNS = ("run_id", "target_key", "email", "name", "attack", "groups", "token", "expires_at", "send_at")
GROUPS = RESULT_COLUMNS.index("groups")


def _row(settings: PhishingSettings, run: LaunchedRun, expires_at: datetime) -> tuple[Any, ...]:
    target = run.target
    return (run.id, run.target_key, str(target.get(settings.email_column) or "").strip(),
            str(target.get(settings.name_column) or "")[:200],
            str(run.context.get("attack") or settings.attacks[0].name), settings.groups(target), new_token(),
            expires_at, run.due_at)
