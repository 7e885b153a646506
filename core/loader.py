"""Load campaign definitions from YAML or JSON, keeping where every value stands in the file.

Reading is bounded by the ``definitions`` settings (definition_yaml.py); this module checks what a definition is
(its kind, its names) and turns it into the pydantic models, expanding presets such as ``kind: access_review``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .definition_yaml import (
    CONTROL,
    DefinitionLoader,
    SourceMap,
    decode_definition,
    describe_path,
    parse_document,
    read_definition_bytes,
    shown,
)
from .errors import DefinitionError
from .presets import PRESETS
from .schema import campaign_versions
from .settings import DefinitionSettings
from .workflow import KINDS, CampaignDefinition, did_you_mean

__all__ = ["DefinitionLoader", "LoadedDefinition", "SourceMap", "describe_path", "expand_preset",
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


def _check_kind_and_names(data: dict[str, Any], source: SourceMap) -> None:
    """An unknown kind is the only problem reported: the rest (a workflow missing for want of a preset) follows
    from it. Names may not hold control characters: they are shown on one line everywhere."""
    kind = data.get("kind", "journey")
    if not isinstance(kind, str):
        raise DefinitionError([f"{source.where(('kind',))}: kind: must be one of {', '.join(KINDS)}, not a "
                               f"{type(kind).__name__}"])
    if kind not in KINDS:
        raise DefinitionError([f"{source.where(('kind',))}: kind: unknown campaign kind {shown(kind)} (known: "
                               f"{', '.join(KINDS)}){did_you_mean(kind, KINDS)}"])
    problems = []
    for key in NAMES:
        value = data.get(key)
        found = CONTROL.search(value) if isinstance(value, str) else None
        if isinstance(value, str) and found is not None:
            problems.append(f"{source.where((key,))}: {key}: {shown(value)} contains control character "
                            f"U+{ord(found.group()):04X}")
    if problems:
        raise DefinitionError(problems)


def expand_preset(data: dict[str, Any], source: SourceMap) -> dict[str, Any]:
    """A `kind` with a preset (access_review) and no workflow gets the preset's workflow from its settings."""
    preset = PRESETS.get(str(data.get("kind")))
    if preset is None or "workflow" in data:
        return data
    model, build = preset
    try:
        settings = model.model_validate(data.get("settings") or {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ("settings", *err["loc"])
            problems.append(f"{source.where(loc)}: {describe_path(loc)}: {err['msg']}")
        raise DefinitionError(problems) from None
    expanded = {**data, "workflow": build(settings)}
    audience = expanded.get("audience")
    key_columns = getattr(settings, "key_columns", None)
    if isinstance(audience, dict) and "key" not in audience and key_columns:
        expanded["audience"] = {**audience, "key": key_columns}
    return expanded


@dataclass
class LoadedDefinition:
    definition: CampaignDefinition
    source: SourceMap
    data: dict[str, Any]
    path: Path | None


def load_definition_text(text: str, filename: str = "<definition>",
                         limits: DefinitionSettings | None = None) -> LoadedDefinition:
    data, source = parse_document(text, filename, limits)
    if not isinstance(data, dict):
        raise DefinitionError([f"{filename}:1:1: a campaign definition must be a mapping"])
    _check_kind_and_names(data, source)
    data = expand_preset(data, source)
    try:
        definition = CampaignDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(pydantic_problems(exc, source, data)) from None
    return LoadedDefinition(definition, source, data, None)


def load_definition_file(path: Path, limits: DefinitionSettings | None = None) -> LoadedDefinition:
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
    loaded = load_definition_text(text, str(path), limits)
    loaded.path = path
    return loaded
