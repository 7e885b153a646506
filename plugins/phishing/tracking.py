"""Recording what recipients do through their links: each hit is classified (a person, or a scanner), becomes an
event on its run and, for a person's first one of its kind, the time on their results row.

Hits are written by one writer thread in batches (group commit): a request waits until the transaction holding its
hit has committed, then answers. An acknowledged hit is therefore on disk, whatever happens to the web process
after; a burst costs one transaction per batch instead of one per request.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from campaignkit.core.db import writing
from campaignkit.core.db.schema import FINAL_STATUSES, events, phishing_results, runs
from campaignkit.core.engine.events import wake_waiting
from campaignkit.core.interfaces import Hit

from .vocabulary import FILTERED, HIT_EVENTS

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

log = logging.getLogger(__name__)
BATCH = 500
# The events a simulation's workflow can wait for (training follows a click or credentials): these wake the run.
WAKING = frozenset({"clicked", "submitted", "training_finished"})
MAX_FIELDS = 20
RULES_SECONDS = 30.0


@dataclass(frozen=True)
class HitRequest:
    """What a tracking endpoint saw: never a submitted value, only the names of the fields."""

    token: str
    event: str  # a key of HIT_EVENTS
    method: str
    user_agent: str
    client_ip: str | None
    confirmed: bool = False
    fields: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"via": "attachment"}
    trusted: bool = False  # from a signed report or the report mailbox, not a link: no scanner check


@dataclass(frozen=True)
class HitOutcome:
    """What the endpoint answers with: the recipient's row as it was (None: no such token), whether the links had
    expired, and why the hit was filtered (None: counted)."""

    row: Any
    expired: bool = False
    filtered: str | None = None


class HitRecorder:
    """The writer thread and its queue; one per web app. ``record`` blocks until the hit is committed."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: queue.Queue[tuple[HitRequest, datetime, Future[HitOutcome]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._settings: dict[str, tuple[float, Mapping[str, Any]]] = {}

    def submit(self, hit: HitRequest) -> Future[HitOutcome]:
        done: Future[HitOutcome] = Future()
        self._queue.put((hit, self.runtime.clock.now(), done))
        self._start()
        return done

    def record(self, hit: HitRequest) -> HitOutcome:
        return self.submit(hit).result()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="campaignkit-hits", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[tuple[HitRequest, datetime, Future[HitOutcome]]]) -> None:
        try:
            with writing(self.runtime.engine) as conn:
                outcomes = record_hits(conn, self.runtime, [(hit, at) for hit, at, _ in batch], self._rules)
        except Exception as exc:  # one bad hit must not fail the others: they are retried one by one
            if len(batch) > 1:
                for item in batch:
                    self._write([item])
                return
            log.error("tracking hit not recorded: %s", type(exc).__name__)
            batch[0][2].set_exception(exc)
            return
        for (_, _, done), outcome in zip(batch, outcomes, strict=True):
            done.set_result(outcome)

    def _rules(self, conn: Connection, campaign_id: str) -> Mapping[str, Any]:
        """The campaign's scanner settings with their defaults, re-read at most every RULES_SECONDS (a new
        version of the campaign takes effect without a restart)."""
        cached = self._settings.get(campaign_id)
        if cached is not None and time.monotonic() - cached[0] < RULES_SECONDS:
            return cached[1]
        from campaignkit.core.db.schema import campaign_versions, campaigns

        from .settings import Scanners

        definition = conn.execute(select(campaign_versions.c.definition).join(
            campaigns, campaigns.c.current_version_id == campaign_versions.c.id)
            .where(campaigns.c.id == campaign_id)).scalar() or {}
        rules = Scanners.model_validate((definition.get("settings") or {}).get("scanners") or {}).model_dump()
        self._settings[campaign_id] = (time.monotonic(), rules)
        return rules


def record_hits(conn: Connection, runtime: Runtime, hits: list[tuple[HitRequest, datetime]],
                rules: Any) -> list[HitOutcome]:
    """Classify and write a batch of hits in the caller's transaction; one outcome per hit, in order."""
    tokens = sorted({hit.token for hit, _ in hits})
    rows = {row.token: row for row in conn.execute(select(phishing_results).where(
        phishing_results.c.token.in_(tokens)))}
    statuses: dict[int, str] = dict(conn.execute(select(runs.c.id, runs.c.status).where(
        runs.c.id.in_([row.run_id for row in rows.values()]))).all())
    detectors = runtime.registry.hit_detectors(runtime)
    seen: dict[str, dict[str, Any]] = {token: {"clicked_at": row.clicked_at} for token, row in rows.items()}
    outcomes: list[HitOutcome] = []
    new_events: list[dict[str, Any]] = []
    firsts: list[tuple[int, str, datetime]] = []
    filtered: dict[int, int] = {}
    wake: set[int] = set()
    for hit, at in hits:
        row = rows.get(hit.token)
        if row is None:
            outcomes.append(HitOutcome(None))
            continue
        if at >= row.expires_at:
            outcomes.append(HitOutcome(row, expired=True))
            continue
        seen_row = seen[hit.token]
        candidate = Hit(event=hit.event, method=hit.method, user_agent=hit.user_agent, client_ip=hit.client_ip,
                        at=at, sent_at=row.sent_at, page_loaded=seen_row["clicked_at"] is not None,
                        confirmed=hit.confirmed, rules=rules(conn, row.campaign_id))
        reason = None if hit.trusted else next(
            (found for detector in detectors if (found := detector.classify(candidate))), None)
        payload: dict[str, Any] = {"ip": hit.client_ip, "user_agent": hit.user_agent[:300], **hit.extra}
        if hit.fields:
            payload["fields"] = ", ".join(hit.fields[:MAX_FIELDS])
        if reason is not None:
            payload.update(hit=hit.event, reason=reason)
            new_events.append({"run_id": row.run_id, "name": FILTERED, "payload": payload, "source": "tracking",
                               "created_at": at, "consumed_at": at})
            filtered[row.run_id] = filtered.get(row.run_id, 0) + 1
        else:
            column = HIT_EVENTS[hit.event]
            if seen_row.get(column) is None and getattr(row, column) is None:
                firsts.append((row.run_id, column, at))
                seen_row[column] = at
            # Only what the workflow may wait for stays to be consumed; the rest is the run's record of it.
            awaited = hit.event in WAKING and statuses.get(row.run_id) not in FINAL_STATUSES
            new_events.append({"run_id": row.run_id, "name": hit.event, "payload": payload, "source": "tracking",
                               "created_at": at, "consumed_at": None if awaited else at})
            if awaited:
                wake.add(row.run_id)
        outcomes.append(HitOutcome(row, filtered=reason))
    if new_events:
        conn.execute(insert(events), new_events)
    for run_id, column, at in firsts:
        conn.execute(update(phishing_results).where(phishing_results.c.run_id == run_id,
                                                    phishing_results.c[column].is_(None)).values({column: at}))
    for run_id, count in filtered.items():
        conn.execute(update(phishing_results).where(phishing_results.c.run_id == run_id)
                     .values(filtered_hits=phishing_results.c.filtered_hits + count))
    if wake:
        wake_waiting(conn, runs.c.id.in_(sorted(wake)), max(at for _, at in hits))
    return outcomes
