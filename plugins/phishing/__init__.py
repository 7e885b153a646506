"""Bundled plugin: the phishing campaign kind (phishing-awareness simulations; see kind.py) and its send step."""

from __future__ import annotations

from campaignkit.core import hookimpl
from campaignkit.core.interfaces import HitDetector, TrainingProvider
from campaignkit.core.kinds import CampaignKind
from campaignkit.core.step import StepType

from .kind import Phishing


@hookimpl
def register_campaign_kinds() -> list[type[CampaignKind]]:
    return [Phishing]


@hookimpl
def register_hit_detectors() -> list[type[HitDetector]]:
    from .scanners import BUILT_IN

    return list(BUILT_IN)


@hookimpl
def register_training_providers() -> list[type[TrainingProvider]]:
    from .training import BUILT_IN

    return list(BUILT_IN)


@hookimpl
def register_step_types() -> list[type[StepType]]:
    from .steps import PhishingSend
    from .training_step import PhishingTraining

    return [PhishingSend, PhishingTraining]
