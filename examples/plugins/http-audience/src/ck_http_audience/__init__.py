"""campaignkit plugin: the ``hris`` audience source (a paged JSON REST API)."""

from __future__ import annotations

from campaignkit.core import AudienceSource, hookimpl

from .source import HrisAudience, HrisConfig

__all__ = ["HrisAudience", "HrisConfig", "register_audience_sources"]


@hookimpl
def register_audience_sources() -> list[type[AudienceSource]]:
    return [HrisAudience]
