"""What the page and the status command read about runs, through campaignkit's read views (``find_campaign``,
``run_view``, ``campaign_runs``): never its tables. The events this kind waits for are written with ``send_event``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campaignkit.core import NotFound, RunView, campaign_runs, find_campaign, latest_cycle, run_view

from .settings import AttestationSettings
from .workflow import ATTESTED, ATTESTED_EVENT

KIND = "attestation"


class NoSuchCampaign(NotFound):
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
    confirmed: bool  # the page recorded a confirmation that a worker has not applied yet
    finished: bool
    settings: AttestationSettings

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
        return self.status if self.finished else None


def run_item(runtime: Any, run_id: int) -> Item | None:
    """The attestation of run ``run_id``, with the settings its campaign had when the run started; None if there is
    no such run in an attestation campaign."""
    run = run_view(runtime, run_id, kind=KIND)
    if run is None:
        return None
    return _item(run, find_campaign(runtime, run.campaign_id).name)


def resolve(runtime: Any, reference: str) -> tuple[str, str]:
    """(id, name) of the attestation campaign ``reference`` names: its id, a unique id prefix, or its name."""
    try:
        campaign = find_campaign(runtime, reference, kind=KIND)
    except NotFound as exc:
        raise NoSuchCampaign(str(exc)) from None
    return campaign.id, campaign.name


def campaign_items(runtime: Any, campaign_id: str, cycle: int | None = None) -> tuple[int | None, list[Item]]:
    """The runs of one cycle (launch) of a campaign, the latest unless ``cycle`` is given, by person."""
    if cycle is None:
        cycle = latest_cycle(runtime, campaign_id)
    if cycle is None:
        return None, []
    return cycle, [_item(run, "") for run in campaign_runs(runtime, campaign_id, cycle=cycle)]


def _item(run: RunView, campaign: str) -> Item:
    settings = _settings(run.settings)
    return Item(
        run.id,
        campaign,
        run.key,
        settings.recipient(run.target),
        run.status,
        run.response,
        run.response_at,
        ATTESTED_EVENT in run.pending_events,
        run.finished,
        settings,
    )


def _settings(raw: Mapping[str, Any]) -> AttestationSettings:
    return AttestationSettings.model_validate(raw)
