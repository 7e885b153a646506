"""Load campaign definitions from YAML or JSON, keeping where every value stands in the file."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import DefinitionError
from .presets import PRESETS
from .workflow import CampaignDefinition

Path_ = tuple[str | int, ...]


class DefinitionLoader(yaml.SafeLoader):
    """YAML 1.2's booleans: only true/false. A node called `yes`, `no`, `on` or `off` stays a string."""


DefinitionLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
DefinitionLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass
class SourceMap:
    """Maps a path into the document (keys and list indexes) to its 1-based line and column."""

    filename: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Sequence[str | int]) -> str:
        """``file:line:col`` of the deepest part of ``path`` that exists in the file."""
        parts = tuple(path)
        while parts and parts not in self.positions:
            parts = parts[:-1]
        line, col = self.positions.get(parts, (1, 1))
        return f"{self.filename}:{line}:{col}"


def describe_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def _construct(node: yaml.Node, path: Path_, source: SourceMap, scalars: yaml.SafeLoader) -> Any:
    source.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise DefinitionError([f"{source.where(path)}: mapping keys must be plain values"])
            key = scalars.construct_object(key_node)
            if key is None:
                raise DefinitionError([f"{source.where(path)}: mapping keys must be plain values"])
            text_key = str(key).lower() if isinstance(key, bool) else key
            child_path = (*path, str(text_key))
            source.positions[child_path] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if text_key in result:
                raise DefinitionError([f"{source.where(child_path)}: duplicate key {text_key!r}"])
            result[text_key] = _construct(value_node, child_path, source, scalars)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), source, scalars) for i, item in enumerate(node.value)]
    return scalars.construct_object(node, deep=True)


def parse_document(text: str, filename: str) -> tuple[Any, SourceMap]:
    """YAML (JSON is a subset) into Python values plus a SourceMap; syntax errors name line and column."""
    source = SourceMap(filename)
    try:
        root = yaml.compose(text, Loader=DefinitionLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise DefinitionError([f"{where}: {exc.problem or exc}"]) from None
    if root is None:
        raise DefinitionError([f"{filename}:1:1: the file is empty"])
    return _construct(root, (), source, DefinitionLoader("")), source


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


def load_definition_text(text: str, filename: str = "<definition>") -> LoadedDefinition:
    data, source = parse_document(text, filename)
    if not isinstance(data, dict):
        raise DefinitionError([f"{filename}:1:1: a campaign definition must be a mapping"])
    data = expand_preset(data, source)
    try:
        definition = CampaignDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(pydantic_problems(exc, source, data)) from None
    return LoadedDefinition(definition, source, data, None)


def load_definition_file(path: Path) -> LoadedDefinition:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    loaded = load_definition_text(text, str(path))
    loaded.path = path
    return loaded

