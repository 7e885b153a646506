"""Recording what recipients do through their links: each hit is classified (a person, or a scanner), becomes an
event on its run and, for a person's first one of its kind, the time on their results row.

Hits are written by one writer thread in batches (group commit): a request waits until the transaction holding its
hit has committed, then answers. An acknowledged hit is therefore on disk, whatever happens to the web process
after; a burst costs one transaction per batch instead of one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select, update

from campaignkit.core.db.checkpoints import checkpoints_elsewhere
from campaignkit.core.db.schema import FINAL_STATUSES, events, phishing_results, runs
from campaignkit.core.engine.events import wake_waiting
from campaignkit.core.interfaces import Hit, HitDetector

from .campaign_settings import CampaignSettings
from .vocabulary import FILTERED, HIT_EVENTS

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

log = logging.getLogger(__name__)
BATCH = 500
# The events a simulation's workflow can wait for (training follows a click or credentials): these wake the run.
WAKING = frozenset({"clicked", "submitted", "training_finished"})
MAX_FIELDS = 20


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


Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[HitOutcome]"]


class HitRecorder:
    """The writer thread and its queue; one per web app. A request waits until its hit is committed."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: queue.Queue[tuple[HitRequest, datetime, Waiter]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.settings = CampaignSettings(runtime)  # shared with the pages that answer the hits
        self._detectors: list[HitDetector] | None = None

    def submit(self, hit: HitRequest) -> asyncio.Future[HitOutcome]:
        """From the event loop: a future the loop resolves, with one wake-up per written batch (not per hit)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[HitOutcome] = loop.create_future()
        self._put(hit, (loop, done))
        return done

    def _put(self, hit: HitRequest, waiter: Waiter) -> None:
        self._queue.put((hit, self.runtime.clock.now(), waiter))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="campaignkit-hits", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        # One connection for the thread's life, which leaves WAL checkpoints (and their fsyncs) to another thread.
        engine = self.runtime.engine
        with engine.connect() as conn, checkpoints_elsewhere(engine, conn):
            while True:
                batch = [self._queue.get()]
                while len(batch) < BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._write(conn, batch)

    def _write(self, conn: Connection, batch: list[tuple[HitRequest, datetime, Waiter]]) -> None:
        if self._detectors is None:
            self._detectors = self.runtime.registry.hit_detectors(self.runtime)
        try:
            with conn.begin():  # after a lost connection, SQLAlchemy connects again here
                outcomes: list[HitOutcome | BaseException] = list(record_hits(
                    conn, self.runtime, [(hit, at) for hit, at, _ in batch], self._rules, self._detectors))
        except Exception as exc:  # one bad hit must not fail the others: they are retried one by one
            if len(batch) > 1:
                for item in batch:
                    self._write(conn, [item])
                return
            log.error("tracking hit not recorded: %s", type(exc).__name__)
            outcomes = [exc]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[HitOutcome], Any]]] = {}
        for (_, _, (loop, future)), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
                loop.call_soon_threadsafe(_settle, settled)

    def _rules(self, conn: Connection, campaign_id: str) -> Mapping[str, Any]:
        """The campaign's scanner settings, their defaults included."""
        return self.settings.get(campaign_id).scanners.model_dump()


def _settle(settled: list[tuple[asyncio.Future[HitOutcome], Any]]) -> None:
    for future, outcome in settled:
        if future.done():  # the request went away
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def record_hits(conn: Connection, runtime: Runtime, hits: list[tuple[HitRequest, datetime]],
                rules: Any, detectors: list[HitDetector] | None = None) -> list[HitOutcome]:
    """Classify and write a batch of hits in the caller's transaction; one outcome per hit, in order. A handful of
    statements whatever the batch's size: one read, one insert of the events, one update per kind of change."""
    rows = _recipients(conn, sorted({hit.token for hit, _ in hits}))
    statuses: dict[int, str] = {row.run_id: row.run_status for row in rows.values()}
    if detectors is None:
        detectors = runtime.registry.hit_detectors(runtime)
    rules_of: dict[str, Any] = {}  # per campaign, read once a batch
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
        if row.campaign_id not in rules_of:
            rules_of[row.campaign_id] = rules(conn, row.campaign_id)
        candidate = Hit(event=hit.event, method=hit.method, user_agent=hit.user_agent, client_ip=hit.client_ip,
                        at=at, sent_at=row.sent_at, page_loaded=bool(seen_row["clicked_at"]),
                        confirmed=hit.confirmed, rules=rules_of[row.campaign_id])
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
            if not seen_row.get(column) and not getattr(row, column):
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
    for column in sorted({column for _, column, _ in firsts}):
        conn.execute(update(phishing_results).where(phishing_results.c.run_id == bindparam("b_run"),
                                                    phishing_results.c[column].is_(None))
                     .values({column: bindparam("b_at")}),
                     [{"b_run": run_id, "b_at": at} for run_id, named, at in firsts if named == column])
    if filtered:
        conn.execute(update(phishing_results).where(phishing_results.c.run_id == bindparam("b_run"))
                     .values(filtered_hits=phishing_results.c.filtered_hits + bindparam("b_count")),
                     [{"b_run": run_id, "b_count": count} for run_id, count in filtered.items()])
    if wake:
        wake_waiting(conn, runs.c.id.in_(sorted(wake)), max(at for _, at in hits))
    return outcomes


def _recipients(conn: Connection, tokens: list[str]) -> dict[str, Any]:
    """What the hits need of their recipients' rows, by token: who and which attack (for the page answered), when
    the links expire and the email was sent (for the scanner rules), their run's status, and whether each event
    has happened yet (true or false: the times themselves are not needed, nor read)."""
    table = phishing_results.c
    had = [table[column].is_not(None).label(column) for column in HIT_EVENTS.values()]
    found = conn.execute(select(table.run_id, table.token, table.campaign_id, table.attack, table.name,
                                table.expires_at, table.sent_at, *had, runs.c.status.label("run_status"))
                         .join(runs, runs.c.id == table.run_id).where(table.token.in_(tokens)))
    return {row.token: row for row in found}
