"""`campaignkit plugin new`: a ready-to-publish plugin package of one kind, from templates/scaffold/.

The files are string.Template texts ($name placeholders), not Jinja: they are Python and YAML that use Jinja's
own braces. The package is written to a temporary folder beside the destination and renamed into place, so a
failure leaves nothing half-written.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from ..errors import CampaignkitError


@dataclass(frozen=True)
class Kind:
    words: str  # what the plugin registers, in words
    hook: str
    class_suffix: str
    summary: str


KINDS: dict[str, Kind] = {
    "channel": Kind("delivery channel", "register_channels", "Channel", "A delivery channel for campaignkit."),
    "enforcement": Kind("enforcement action", "register_enforcement_actions", "Action",
                        "An enforcement action for campaignkit: removes a target's access."),
    "custom_field": Kind("custom-field updater", "register_field_updaters", "Updater",
                         "A custom-field updater for campaignkit."),
    "audit_sink": Kind("audit sink", "register_audit_sinks", "Sink", "An audit sink for campaignkit."),
    "step": Kind("step type", "register_step_types", "Step", "A workflow step type for campaignkit."),
    "audience": Kind("audience source", "register_audience_sources", "Source",
                     "An audience source for campaignkit: where a campaign's targets come from."),
    "campaign_kind": Kind("campaign kind", "register_campaign_kinds", "Kind",
                          "A campaign kind for campaignkit: a family of campaigns, its settings and its workflow."),
}

NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")


class ScaffoldError(CampaignkitError):
    """The plugin cannot be generated as asked (a bad name, an existing folder)."""


@dataclass(frozen=True)
class PluginNames:
    """Every name a plugin package needs, derived from the one the author gives (e.g. ``acme-sms``)."""

    distribution: str  # campaignkit-acme-sms: the folder and the name on PyPI
    module: str  # campaignkit_acme_sms
    component: str  # acme_sms: the registered name, the entry point and the config table
    class_prefix: str  # AcmeSms

    @classmethod
    def from_name(cls, name: str) -> PluginNames:
        if not NAME.fullmatch(name):
            raise ScaffoldError(f"plugin name {name!r}: use lowercase letters, digits and single - or _ between "
                                "them, starting with a letter (e.g. acme-sms)")
        base = re.sub(r"^campaignkit[-_]", "", name)
        if not base:
            raise ScaffoldError(f"plugin name {name!r}: give the part after 'campaignkit-' too (e.g. acme-sms)")
        component = base.replace("-", "_")
        return cls(distribution=f"campaignkit-{base.replace('_', '-')}", module=f"campaignkit_{component}",
                   component=component, class_prefix="".join(part.title() for part in component.split("_")))


def generate(name: str, kind: str, directory: Path) -> Path:
    """Write the package for ``name`` of ``kind`` into ``directory``; returns the package folder."""
    if kind not in KINDS:
        raise ScaffoldError(f"--kind {kind!r}: choose one of {', '.join(KINDS)}")
    names = PluginNames.from_name(name)
    destination = directory / names.distribution
    if destination.exists():
        raise ScaffoldError(f"{destination}: already exists; choose another name or folder")
    if not directory.is_dir():
        raise ScaffoldError(f"{directory}: no such folder")
    # Imported here: the CLI reads KINDS for its --help, which should not load jinja2 (benchmarks/cli.py).
    from .. import __version__
    from ..templating import bundled_template_dir

    values = {
        **vars(names),
        "kind_words": KINDS[kind].words,
        "hook": KINDS[kind].hook,
        "summary": KINDS[kind].summary,
        "command": names.component.replace("_", "-"),  # a campaign kind's CLI group: `campaignkit acme-ack ...`
        "campaignkit_version": ".".join(__version__.split(".")[:2]),
    }
    source = bundled_template_dir() / "scaffold"
    values["configure"] = _render(source / kind / "configure.md.tmpl", values).strip()
    values["usage"] = _render(source / kind / "usage.md.tmpl", values).strip()
    files = {
        "pyproject.toml": source / "pyproject.toml.tmpl",
        "README.md": source / "README.md.tmpl",
        ".gitignore": source / "gitignore.tmpl",
        f"src/{names.module}/__init__.py": source / kind / "plugin.py.tmpl",
        "tests/test_plugin.py": source / kind / "test_plugin.py.tmpl",
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{names.distribution}-", dir=directory))
    try:
        for relative, template in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_render(template, values), encoding="utf-8")
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def _render(template: Path, values: dict[str, str]) -> str:
    return Template(template.read_text(encoding="utf-8")).substitute(values)
