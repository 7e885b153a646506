"""A campaign created, or given a new version, from a definition's text sent through the API or the console: one
function for both, so that they load, check and refuse alike (and as `campaignkit campaign create` does: the same
loader, the same problems at line, column and node). Audited as the person, by the service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml
from sqlalchemy import select

from ..db import reading
from ..db.schema import campaign_versions, campaigns
from ..definitions.loader import load_definition_text
from ..definitions.reading import decode_definition
from ..definitions.remote import check_sent_paths, files_dir
from ..errors import DefinitionError, NotFound
from .service import Campaigns

if TYPE_CHECKING:
    from ..audit import Actor
    from ..runtime import Runtime


@dataclass(frozen=True)
class Saved:
    campaign_id: str
    name: str
    version: str  # major.minor, as the version was stored
    created: bool  # a new campaign; else a new version (or the draft's version replaced)


@dataclass(frozen=True)
class DefinitionText:
    campaign_id: str
    name: str
    version: str
    source: str | None  # the file it was created from, or web:<name>
    text: str  # as written; for a version older than its text being kept, the stored definition as YAML
    as_written: bool


def save_definition(runtime: Runtime, text: str | bytes, name: str, actor: Actor,
                    campaign_id: str | None = None) -> Saved:
    """Create a campaign from ``text`` (YAML or JSON; bytes are decoded as a file is), or, given ``campaign_id``,
    replace its definition. ``name`` is what problems name ("<pasted>", an uploaded file's name: see
    remote.sent_name). DefinitionError with every problem, NotFound, InvalidState (a name taken, a terminated
    campaign); nothing is kept then."""
    limits = runtime.settings.definitions
    if isinstance(text, bytes):
        if len(text) > limits.max_file_bytes:
            raise DefinitionError([f"{name}: the definition is larger than {limits.max_file_bytes} bytes "
                                   "(definitions.max_file_bytes)"])
        text = decode_definition(text, name)
    service = Campaigns(runtime)
    if campaign_id is not None:
        service.get(campaign_id)  # an unknown campaign is 404 before its definition is looked at
    loaded = load_definition_text(text, name, limits, runtime.kinds)
    loaded.sent_as = name
    check_sent_paths(loaded, files_dir(runtime.settings))  # before create or update reads any audience file
    if campaign_id is None:
        created_id = service.create(loaded, actor)
        return Saved(created_id, loaded.definition.name, loaded.definition.version, True)
    major, minor = service.update(campaign_id, loaded, actor)
    return Saved(campaign_id, loaded.definition.name, f"{major}.{minor}", False)


def current_definition(runtime: Runtime, campaign_id: str) -> DefinitionText:
    """The campaign's current definition as it was written (its file, or what was pasted or sent)."""
    with reading(runtime.engine) as conn:
        row = conn.execute(
            select(campaigns.c.name, campaign_versions.c.major, campaign_versions.c.minor, campaign_versions.c.source,
                   campaign_versions.c.source_text, campaign_versions.c.definition)
            .join(campaign_versions, campaign_versions.c.id == campaigns.c.current_version_id)
            .where(campaigns.c.id == campaign_id)).first()
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}")
    text = row.source_text
    if text is None:
        text = yaml.safe_dump(row.definition, sort_keys=False, allow_unicode=True, width=120)
    return DefinitionText(campaign_id, row.name, f"{row.major}.{row.minor}", row.source, text,
                          row.source_text is not None)
