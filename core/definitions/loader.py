"""Load campaign definitions from YAML or JSON, keeping where every value stands in the file.

Reading is bounded by the ``definitions`` settings (definition_yaml.py); this module checks what a definition is
(its kind, its names) and turns it into the pydantic models, letting the campaign's kind validate its settings and
build its workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..db.schema import campaign_versions
from ..errors import DefinitionError
from ..kinds import JOURNEY, CampaignKind
from ..settings import DefinitionSettings
from .reading import (
    CONTROL,
    DefinitionLoader,
    SourceMap,
    decode_definition,
    describe_path,
    parse_document,
    read_definition_bytes,
    shown,
)
from .workflow import CampaignDefinition, did_you_mean

__all__ = ["DefinitionLoader", "LoadedDefinition", "SourceMap", "describe_path", "expand_kind",
           "load_definition_file", "load_definition_text", "parse_document", "pydantic_problems"]

Path_ = tuple[str | int, ...]
# Where a version records the file it came from: String(500).
SOURCE_LENGTH: int = getattr(campaign_versions.c.source.type, "length", None) or 500
NAMES = ("name", "folder")  # shown in listings, audit records and pages: one line of text each


def pydantic_problems(exc: ValidationError, source: SourceMap, data: Any) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        label = describe_path(loc)
        node_id = _node_id_at(data, loc)
        if node_id:
            label += f" (node {node_id!r})"
        problems.append(f"{source.where(loc)}: {label}: {err['msg']}")
    return problems


def _node_id_at(data: Any, loc: Path_) -> str | None:
    if len(loc) >= 3 and loc[:2] == ("workflow", "nodes") and isinstance(loc[2], int):
        try:
            node = data["workflow"]["nodes"][loc[2]]
            return str(node.get("id")) if isinstance(node, dict) and node.get("id") else None
        except (KeyError, IndexError, TypeError):
            return None
    return None


def _check_kind_and_names(data: dict[str, Any], source: SourceMap, known: list[str]) -> None:
    """An unknown kind is the only problem reported: the rest (a workflow missing for want of a kind that builds
    it) follows from it. Names may not hold control characters: they are shown on one line everywhere."""
    kind = data.get("kind", JOURNEY)
    if not isinstance(kind, str):
        raise DefinitionError([f"{source.where(('kind',))}: kind: must be one of {', '.join(known)}, not a "
                               f"{type(kind).__name__}"])
    if kind not in known:
        raise DefinitionError([f"{source.where(('kind',))}: kind: unknown campaign kind {shown(kind)} (known: "
                               f"{', '.join(known)}){did_you_mean(kind, known)}"])
    problems = []
    for key in NAMES:
        value = data.get(key)
        found = CONTROL.search(value) if isinstance(value, str) else None
        if isinstance(value, str) and found is not None:
            problems.append(f"{source.where((key,))}: {key}: {shown(value)} contains control character "
                            f"U+{ord(found.group()):04X}")
    if problems:
        raise DefinitionError(problems)


def expand_kind(data: dict[str, Any], source: SourceMap, kind: CampaignKind | None) -> dict[str, Any]:
    """The kind validates the definition's ``settings:`` (problems at their file:line:column) and, for a definition
    that writes no workflow, builds it from them, with the audience columns that make a run's key."""
    if kind is None:
        return data
    try:
        settings = kind.settings(data.get("settings") or {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ("settings", *err["loc"])
            problems.append(f"{source.where(loc)}: {describe_path(loc)}: {err['msg']}")
        raise DefinitionError(problems) from None
    expanded = dict(data)
    built = kind.workflow(settings) if "workflow" not in data else None
    if built is not None:
        expanded["workflow"] = dict(built)
        # A problem in a node the settings built (an unknown channel) points at the settings that built it.
        source.positions.setdefault(("workflow",), source.positions.get(("settings",), (1, 1)))
    # The kind's key applies to any audience the definition does not key itself, a --audience file included.
    key_columns = kind.audience_key(settings)
    audience = expanded.get("audience")
    if key_columns and audience is None:
        expanded["audience"] = {"source": "csv", "key": key_columns}
    elif key_columns and isinstance(audience, dict) and "key" not in audience:
        expanded["audience"] = {**audience, "key": key_columns}
    return expanded


@dataclass
class LoadedDefinition:
    definition: CampaignDefinition
    source: SourceMap
    data: dict[str, Any]
    path: Path | None
    text: str | None = None  # as written: the version keeps it (GET .../definition, the console's editor)
    # Sent through the API or the console, under this name: its files are looked up only in definitions.files_dir.
    sent_as: str | None = None


def load_definition_text(text: str, filename: str = "<definition>", limits: DefinitionSettings | None = None,
                         kinds: Mapping[str, CampaignKind] | None = None) -> LoadedDefinition:
    """Parse and validate a definition; ``kinds`` are the installed campaign kinds (``runtime.kinds``; without
    them only plain journeys load)."""
    data, source = parse_document(text, filename, limits)
    if not isinstance(data, dict):
        raise DefinitionError([f"{filename}:1:1: a campaign definition must be a mapping"])
    known: Mapping[str, CampaignKind | None] = kinds if kinds is not None else {JOURNEY: None}
    _check_kind_and_names(data, source, sorted(known))
    data = expand_kind(data, source, known[data.get("kind", JOURNEY)])
    try:
        definition = CampaignDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(pydantic_problems(exc, source, data)) from None
    return LoadedDefinition(definition, source, data, None, text)


def load_definition_file(path: Path, limits: DefinitionSettings | None = None,
                         kinds: Mapping[str, CampaignKind] | None = None) -> LoadedDefinition:
    """Read, decode and load a file within ``limits`` (the ``definitions`` settings; their defaults if None)."""
    limits = limits or DefinitionSettings()
    try:
        resolved = str(path.resolve())
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise DefinitionError([f"{path}: cannot read: {exc}"]) from None
    if len(resolved) > SOURCE_LENGTH:
        # The version records where it came from; PostgreSQL would refuse a longer path where SQLite keeps it.
        raise DefinitionError([f"{path}: the file's path is longer than {SOURCE_LENGTH} characters; move it"])
    text = decode_definition(read_definition_bytes(path, limits), str(path))
    loaded = load_definition_text(text, str(path), limits, kinds)
    loaded.path = path
    return loaded
