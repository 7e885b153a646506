"""The configuration reference: every settings key with its type, default, environment variable and description,
built from the Settings model and from the ``Config`` model of each registered component.

Step types are left out: their options live in workflow files (``campaignkit schema``), not in the settings.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pluggy
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from ..settings import Settings
from .manager import ENTRY_POINT_GROUP, Registration, build_plugin_manager, collect_registrations
from .manager import config_key as component_config_key

ENV_PREFIX = "CAMPAIGNKIT_"
BUNDLED_PREFIX = "campaignkit.plugins"  # entry points of the plugins shipped in this distribution
SEQUENCES = (list, tuple, set, frozenset)

SOURCES = """\
## Sources and precedence

Settings are read from these sources, highest precedence first. A key set in a higher source wins; tables are
merged key by key, so one key can come from the environment and its neighbours from the TOML file.

1. Arguments given in code (`Settings(...)`, as tests do). `settings_reading(*sources)` makes a Settings class that
   reads only the sources named (`"environment"`, `"dotenv"`, `"secrets"`, `"toml"`) besides its arguments; the
   `ck_` test fixtures read none, unless a test asks for some (`ck_settings_sources`).
2. Environment variables named `CAMPAIGNKIT_...` (below).
3. A `.env` file in the working directory, holding the same variable names.
4. The secrets directory: one file per top-level setting (below).
5. The TOML file: the one named by `CAMPAIGNKIT_CONFIG` (an environment variable, which `campaignkit --config FILE`
   sets, or a line of `.env`), else `campaignkit.toml` in the working directory if there is one. A
   `CAMPAIGNKIT_CONFIG` naming a missing file is an error.
6. The defaults listed below.

A misspelt key is an error in the core tables and in the bundled plugins' tables; a `[plugins.config.<table>]` that
no loaded plugin registers only logs a warning (it may belong to a plugin blocked for now).

### Environment variables

- The name is `CAMPAIGNKIT_` followed by the dotted key in upper case with `.` replaced by `__`:
  `worker.batch_size` is `CAMPAIGNKIT_WORKER__BATCH_SIZE`. Names are not case-sensitive.
- Lists and tables take JSON: `CAMPAIGNKIT_AUDIT__SINKS='["jsonl"]'`. A whole top-level section may be given as
  JSON (`CAMPAIGNKIT_WORKER='{"batch_size": 100}'`); variables for single keys of it are merged in.
- An empty value is an empty string, not "unset": it fails for numbers and cannot clear a setting.
- A plugin table key is set with `CAMPAIGNKIT_PLUGINS__CONFIG__<TABLE>__<KEY>`. The value reaches the plugin as
  text and its own model converts it (numbers, true/false, secrets). Such a variable is not read as JSON, so a key
  holding a list or set cannot be set by its own variable: set it in `campaignkit.toml`, or give the table as JSON
  in `CAMPAIGNKIT_PLUGINS__CONFIG__<TABLE>` (merged with the TOML table). Do not mix that JSON variable with
  `CAMPAIGNKIT_PLUGINS__CONFIG__<TABLE>__<KEY>` variables: those that come before it in the process environment
  are dropped. A key holding a table (such as `headers`) takes one variable per entry, `..._HEADERS__<NAME>`, and
  the entry's name arrives in lower case.
- `CAMPAIGNKIT_CONFIG` and `CAMPAIGNKIT_SECRETS_DIR` say where settings are, not what they are: they are read from
  the process environment, else from `.env`, and have no key of their own in the TOML file. Empty is unset.

### Secrets directory

`CAMPAIGNKIT_SECRETS_DIR`, else `secrets` under the `var_dir` in effect, from whichever source sets it (arguments,
environment, `.env` or the TOML file; default `var/secrets`); `campaignkit init` creates it there. `var_dir` cannot
be set by a file of the secrets directory, which it locates. Each file is named after a top-level setting, without
the prefix, and holds its value with surrounding whitespace stripped: `secret_key`, `api_token` and `audit_key`,
which `campaignkit init` creates. Nested keys have no file of their own (`worker__batch_size` is not
read), but a file named after a section may hold that section as JSON, e.g. a file `plugins` holding
`{"config": {"smtp": {"password": "..."}}}`, merged with the `[plugins.config.smtp]` table of the TOML file.
"""


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    env: str
    description: str


@dataclass(frozen=True)
class Component:
    """A registered component and the module (or object name) of the plugin that registered it."""

    reg: Registration
    plugin: str

    @property
    def table(self) -> str:
        return component_config_key(self.reg)


# --- collecting components ----------------------------------------------------------------------------


def installed_components(pm: pluggy.PluginManager) -> list[Component]:
    """Components registered by every plugin the manager loaded, third-party ones included."""
    return [
        Component(reg, getattr(pm.get_plugin(reg.plugin), "__name__", reg.plugin))
        for reg in collect_registrations(pm)
        if reg.kind != "step type"
    ]


def bundled_components() -> list[Component]:
    """Components of the default plugins and of this distribution's entry points, whatever the local settings."""
    modules = [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.value.startswith(BUNDLED_PREFIX)]
    # model_construct: defaults only, so a local campaignkit.toml (blocked plugins, say) cannot change the result.
    pm = build_plugin_manager(Settings.model_construct(), extra_plugins=modules, load_entry_points=False)
    return installed_components(pm)


# --- rows -----------------------------------------------------------------------------------------------


def settings_rows(model: type[BaseModel], path: tuple[str, ...], plugin_table: bool) -> list[Row]:
    """One row per leaf field; fields holding a model recurse with a longer dotted key."""
    rows: list[Row] = []
    for name, field in model.model_fields.items():
        key = (*path, field.alias or name)
        nested = _nested_model(field.annotation)
        if nested is not None:
            rows.extend(settings_rows(nested, key, plugin_table))
            continue
        rows.append(Row(
            key=".".join(key),
            type=type_name(field.annotation),
            default=default_text(field),
            env=env_text(key, field.annotation, plugin_table),
            description=" ".join((field.description or "").split()),
        ))
    return rows


def type_name(annotation: Any) -> str:
    tp = _strip_annotated(annotation)
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is type(None):
        return "None"
    if tp is Any:
        return "any"
    if tp is Ellipsis:
        return "..."
    if origin is Literal:
        return "one of " + "/".join(json.dumps(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin in (*SEQUENCES, dict):
        label = "set" if origin is frozenset else origin.__name__
        return f"{label}[{', '.join(type_name(arg) for arg in args)}]"
    if isinstance(tp, type):
        if issubclass(tp, SecretStr):
            return "secret"
        if issubclass(tp, Path):
            return "path"
        return tp.__name__
    return str(tp).replace("typing.", "")


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(hidden)"
    return json.dumps(_plain(value), ensure_ascii=False)


def env_text(key: tuple[str, ...], annotation: Any, plugin_table: bool) -> str:
    """The variable that sets this key, as verified against pydantic-settings (see SOURCES)."""
    name = ENV_PREFIX + "__".join(key).upper()
    kind = _container_kind(annotation)
    if plugin_table:
        if any(ch.isupper() for part in key for ch in part) or kind == "sequence":
            return "none: TOML or JSON table"  # env names are lowercased; per-key values are never JSON-decoded
        if kind == "dict":
            return f"{name}__<NAME> (NAME lowercased)"
        return name
    return f"{name} (JSON)" if kind else name


# --- markdown -------------------------------------------------------------------------------------------


def render_reference(components: Iterable[Component], origin: str) -> str:
    """The whole document; ``origin`` (a markdown line) says at the top how it was generated."""
    parts = [
        "# Configuration reference\n",
        f"{origin}\n",
        "Every key can be set in `campaignkit.toml` under its dotted name (`worker.batch_size` is `batch_size` in "
        "the `[worker]` table; a plugin's keys go in its `[plugins.config.<table>]` table). Step types take their "
        "options in the workflow file (`campaignkit schema`), not here.\n",
        SOURCES,
        "## Core settings\n",
        *_core_sections(),
    ]
    with_settings: list[tuple[Component, type[BaseModel]]] = []
    without: list[str] = []
    for comp in sorted(components, key=lambda c: (c.table, c.reg.kind, c.reg.name)):
        model = getattr(comp.reg.cls, "Config", None)
        if model is not None and settings_rows(model, (), plugin_table=True):
            with_settings.append((comp, model))
        else:
            free_form = " (free-form table, not validated)" if model is None else ""
            without.append(f"- `{comp.reg.name}` — {comp.reg.kind} ({comp.plugin}){free_form}")
    for comp, model in with_settings:
        parts.append(_component_section(comp, model))
    if without:
        parts.append("## Components without settings\n\n" + "\n".join(without) + "\n")
    return "\n".join(parts)


def _core_sections() -> list[str]:
    top = [name for name, f in Settings.model_fields.items() if _nested_model(f.annotation) is None]
    general = [row for row in settings_rows(Settings, (), plugin_table=False) if row.key in top]
    sections = [f"### General\n\n{_table(general)}"]
    for name, field in Settings.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is not None:
            sections.append(f"### {name}\n\n{_table(settings_rows(nested, (name,), plugin_table=False))}")
    return sections


def _component_section(comp: Component, model: type[BaseModel]) -> str:
    reg = comp.reg
    heading = f"## plugins.config.{comp.table} — {reg.kind} {reg.name} ({comp.plugin})\n\n"
    doc = reg.cls.__dict__.get("__doc__")  # the class's own docstring, not an inherited one
    intro = " ".join(doc.split("\n\n")[0].split()) + "\n\n" if doc else ""
    rows = settings_rows(model, ("plugins", "config", comp.table), plugin_table=True)
    return heading + _escape(intro) + _table(rows)


def _table(rows: list[Row]) -> str:
    lines = ["| Key | Type | Default | Environment variable | Description |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        default = row.default if row.default in ("required", "unset", "(hidden)") else _code(row.default)
        name, _, note = row.env.partition(" ")  # the variable's name, then any note on how it is read
        env = _code(name) + (f" {_escape(note)}" if note else "") if name.startswith(ENV_PREFIX) else _escape(row.env)
        lines.append(f"| {_code(row.key)} | {_code(row.type)} | {default} | {env} | {_escape(row.description)} |")
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    # A code span shows backslashes literally; only \| is special, to GFM tables.
    return "`" + text.replace("|", "\\|") + "`"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "\\<")


# --- annotations ----------------------------------------------------------------------------------------


def _strip_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _union_members(annotation: Any) -> list[Any]:
    tp = _strip_annotated(annotation)
    if get_origin(tp) in (Union, types.UnionType):
        return [_strip_annotated(arg) for arg in get_args(tp) if arg is not type(None)]
    return [tp]


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for tp in _union_members(annotation):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return tp
    return None


def _container_kind(annotation: Any) -> str | None:
    for tp in _union_members(annotation):
        origin = get_origin(tp) or tp
        if origin in SEQUENCES:
            return "sequence"
        if origin is dict:
            return "dict"
    return None


def _plain(value: Any) -> Any:
    """A default as JSON would show it: paths as text, sets sorted into lists."""
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value if isinstance(value, str | int | float | bool) else str(value)
