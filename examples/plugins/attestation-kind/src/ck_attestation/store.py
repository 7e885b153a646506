"""What the page and the status command read about runs: the one place this plugin reads campaignkit's tables.

campaignkit 0.2 has no public query for a run or a campaign's runs, so these are read-only SQLAlchemy Core queries
over the few columns needed (``runtime.engine`` is the documented way in); nothing here writes. Replace them with
the public query once campaignkit has one. The events this kind waits for are written through ``send_event`` only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Connection, DateTime, String, column, exists, select, table

from campaignkit.core import CampaignkitError

from .settings import AttestationSettings
from .workflow import ATTESTED, ATTESTED_EVENT

KIND = "attestation"
FINAL = ("completed", "failed", "terminated")

_campaigns = table("campaigns", column("id", String), column("name", String), column("kind", String))
_versions = table("campaign_versions", column("id", BigInteger), column("definition", JSON))
_runs = table(
    "runs",
    column("id", BigInteger),
    column("campaign_id", String),
    column("launch_id", BigInteger),
    column("version_id", BigInteger),
    column("target_key", String),
    column("target", JSON),
    column("status", String),
    column("response", String),
    column("response_at", DateTime),
)
_events = table("events", column("run_id", BigInteger), column("name", String))


class NoSuchCampaign(CampaignkitError):
    """The status command was given a reference that names no attestation campaign (exit code 1, one line)."""


@dataclass(frozen=True)
class Item:
    """One person's attestation, as their page and the status command show it."""

    run_id: int
    campaign: str
    person: str  # the run's key
    recipient: str  # the address the request went to
    status: str  # the run's: pending, active, waiting, completed, failed, terminated
    response: str | None  # Attested, No Response, Message Delivery Failed
    response_at: datetime | None
    confirmed: bool  # the page recorded a confirmation, whether or not a worker has applied it yet
    settings: AttestationSettings | None = None

    @property
    def attested(self) -> bool:
        return self.response == ATTESTED or self.confirmed

    @property
    def closed(self) -> str | None:
        """Why nothing more can be confirmed (the run ended without a confirmation), or None."""
        if self.attested:
            return None
        if self.response is not None:
            return self.response
        return self.status if self.status in FINAL else None


def _reading(runtime: Any) -> Any:
    # campaignkit takes SQLite's write lock for a transaction unless it is marked read-only; an unknown execution
    # option is ignored, so should the name change, a read still works and merely waits for writers.
    return runtime.engine.connect().execution_options(campaignkit_readonly=True)


def _confirmed() -> Any:
    return exists().where(_events.c.run_id == _runs.c.id, _events.c.name == ATTESTED_EVENT)


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _settings(definition: Any) -> AttestationSettings:
    """The settings a run started with (its campaign version's): what its person was asked to confirm."""
    return AttestationSettings.model_validate(_json(definition).get("settings") or {})


def run_item(runtime: Any, run_id: int) -> Item | None:
    """The attestation of run ``run_id``, with its campaign's settings as the run started; None if there is no
    such run in an attestation campaign."""
    query = (
        select(
            _runs.c.id,
            _runs.c.target_key,
            _runs.c.target,
            _runs.c.status,
            _runs.c.response,
            _runs.c.response_at,
            _campaigns.c.name,
            _versions.c.definition,
            _confirmed().label("confirmed"),
        )
        .join(_campaigns, _campaigns.c.id == _runs.c.campaign_id)
        .join(_versions, _versions.c.id == _runs.c.version_id)
        .where(_runs.c.id == run_id, _campaigns.c.kind == KIND)
    )
    with _reading(runtime) as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return _item(row, row.name, _settings(row.definition))


def _item(row: Any, campaign: str, settings: AttestationSettings | None) -> Item:
    target: Mapping[str, Any] = _json(row.target) or {}
    recipient = settings.recipient(target) if settings is not None else ""
    return Item(
        int(row.id),
        campaign,
        row.target_key,
        recipient,
        row.status,
        row.response,
        _utc(row.response_at),
        bool(row.confirmed),
        settings,
    )


def resolve(runtime: Any, reference: str) -> tuple[str, str]:
    """(id, name) of the attestation campaign ``reference`` names: its id, a unique id prefix, or its name."""
    escaped = reference.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(_campaigns.c.id, _campaigns.c.name).where(
        _campaigns.c.kind == KIND,
        (_campaigns.c.id == reference)
        | (_campaigns.c.name == reference)
        | _campaigns.c.id.like(f"{escaped}%", escape="\\"),
    )
    with _reading(runtime) as conn:
        found = {(row.id, row.name) for row in conn.execute(query)}
    if len(found) == 1:
        return found.pop()
    if not found:
        raise NoSuchCampaign(f"no attestation campaign {reference!r}")
    raise NoSuchCampaign(f"{reference!r} matches {len(found)} attestation campaigns; give more of the id")


def campaign_items(runtime: Any, campaign_id: str, cycle: int | None = None) -> tuple[int | None, list[Item]]:
    """The runs of one cycle (launch) of a campaign, the latest unless ``cycle`` is given, by person."""
    with _reading(runtime) as conn:
        if cycle is None:
            cycle = _latest_cycle(conn, campaign_id)
        if cycle is None:
            return None, []
        rows = conn.execute(
            select(
                _runs.c.id,
                _runs.c.target_key,
                _runs.c.target,
                _runs.c.status,
                _runs.c.response,
                _runs.c.response_at,
                _versions.c.definition,
                _confirmed().label("confirmed"),
            )
            .join(_versions, _versions.c.id == _runs.c.version_id)
            .where(_runs.c.campaign_id == campaign_id, _runs.c.launch_id == cycle)
            .order_by(_runs.c.target_key)
        ).all()
    settings = _settings(rows[0].definition) if rows else None  # one cycle, one version
    return cycle, [_item(row, "", settings) for row in rows]


def _latest_cycle(conn: Connection, campaign_id: str) -> int | None:
    latest = conn.execute(
        select(_runs.c.launch_id).where(_runs.c.campaign_id == campaign_id).order_by(_runs.c.launch_id.desc()).limit(1)
    ).scalar()
    return int(latest) if latest is not None else None
