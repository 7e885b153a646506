"""Bundled custom-field updaters: ``database`` (fields stored on targets in campaignkit's own database), ``http``
(an external inventory over HTTP)."""

from __future__ import annotations

from campaignkit.core import FieldUpdater, hookimpl

from .database import DatabaseFieldUpdater
from .http import HttpFieldUpdater


@hookimpl
def register_field_updaters() -> list[type[FieldUpdater]]:
    return [DatabaseFieldUpdater, HttpFieldUpdater]
