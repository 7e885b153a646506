"""Every hook campaignkit calls. Plugins implement them with ``@hookimpl`` from ``campaignkit.core``.

``register_*`` hooks return classes that the core instantiates with their validated configuration;
``prepare_*`` hooks adjust an object handed in; ``on_*`` hooks observe and return nothing. An ``on_*``
implementation that raises is logged and skipped; it never stops the engine or other plugins.

Compatibility (docs/plugins.md#compatibility; tests/test_hook_compatibility.py holds every released signature):

- An implementation may take any subset of a hook's arguments, so a new argument never breaks one written
  before it. Arguments are only ever added, at the end, and a new hook is a new name.
- An argument is removed only after a deprecation: the spec keeps it for at least one minor release with
  ``@hookspec(warn_on_impl_args={"name": DeprecationWarning("...")})``, and it goes in the next major release.
- A hook is removed the same way, its spec marked ``warn_on_impl=DeprecationWarning("...")`` first.
- What a hook returns and when it fires do not change within a major release.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pluggy reads argument names, not types: the modules behind them load when they are used
    import jinja2

    from .interfaces import (
        AudienceSource,
        AuditSink,
        Channel,
        EnforcementAction,
        FieldUpdater,
        HitDetector,
        TrainingProvider,
    )
    from .kinds import CampaignKind
    from .step import StepType

PROJECT = "campaignkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_step_types() -> list[type[StepType]]:
    """Step types that workflow nodes can use.

    When it fires: once, when a runtime is built (start of every command, worker and web process).

    :return: step-type classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def register_channels() -> list[type[Channel]]:
    """Delivery channels that ``send_message`` nodes name in their ``channel`` setting.

    When it fires: once, when a runtime is built.

    :return: channel classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def register_enforcement_actions() -> list[type[EnforcementAction]]:
    """Enforcement actions that ``enforcement_action`` nodes name in their ``action`` setting.

    When it fires: once, when a runtime is built.

    :return: action classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def register_field_updaters() -> list[type[FieldUpdater]]:
    """Custom-field updaters that ``update_custom_field`` nodes name in their ``updater`` setting.

    When it fires: once, when a runtime is built.

    :return: updater classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def register_audit_sinks() -> list[type[AuditSink]]:
    """Audit sinks an admin can enable with ``audit.sinks``.

    When it fires: once, when a runtime is built.

    :return: sink classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def register_audience_sources() -> list[type[AudienceSource]]:
    """Audience sources a campaign's ``audience.source`` can name.

    When it fires: once, when a runtime is built.

    :return: source classes; each ``name`` must be unique across all plugins.
    """


@hookspec
def register_campaign_kinds() -> list[type[CampaignKind]]:
    """Campaign kinds a definition's ``kind:`` can name: what a family of campaigns adds to a plain workflow (its
    settings and their workflow, run facets, template variables, CLI commands, web routes, scheduler jobs).

    When it fires: once, when a runtime is built. Added in campaignkit 0.2.

    :return: kind classes (``CampaignKind`` subclasses); each ``name`` must be unique across all plugins. The
        built-in ``journey`` kind may be replaced by a plugin's kind of that name.
    """


@hookspec
def register_hit_detectors() -> list[type[HitDetector]]:
    """Hit detectors: each looks at a request to a recipient's tracked link and says whether a mail-security
    scanner made it. A hit any detector flags is recorded as filtered and counted as no open or click.

    When it fires: once, when a runtime is built. Added in campaignkit 0.3.

    :return: detector classes (``HitDetector`` subclasses); each ``name`` must be unique across all plugins.
    """


@hookspec
def register_training_providers() -> list[type[TrainingProvider]]:
    """Training providers a phishing simulation's ``training.provider`` can name: they enrol a person in a course
    and give the link to it (campaignkit's own course pages, or a learning-management system).

    When it fires: once, when a runtime is built. Added in campaignkit 0.3.

    :return: provider classes (``TrainingProvider`` subclasses); each ``name`` must be unique across all plugins.
    """


@hookspec
def prepare_jinja_environment(env: jinja2.Environment, purpose: str) -> None:
    """Add filters, globals or tests to a sandboxed Jinja2 environment before first use.

    When it fires: once per environment, when the runtime creates it.

    :param env: the environment (sandboxed, StrictUndefined); change it in place.
    :param purpose: ``"message"`` for message templates and conditions, ``"page"`` for web pages.
    """


@hookspec
def on_campaign_started(campaign: Mapping[str, Any], launch_id: int, target_count: int) -> None:
    """Observe a launch: a cycle of a campaign has turned its audience into runs.

    When it fires: after the launch transaction has committed.

    :param campaign: the campaign row (id, name, folder, state, ...).
    :param launch_id: the launch (cycle) that started.
    :param target_count: how many runs it created.
    """


@hookspec
def on_campaign_finished(campaign: Mapping[str, Any], state: str) -> None:
    """Observe the end of a campaign: every run has finished, or the campaign was terminated.

    When it fires: after the transaction that set the final state has committed.

    :param campaign: the campaign row.
    :param state: ``"completed"`` or ``"terminated"``.
    """


@hookspec
def on_run_finished(run: Mapping[str, Any]) -> None:
    """Observe a run reaching a final status (completed, failed or terminated).

    When it fires: after the worker batch (or termination) that finished it has committed.

    :param run: id, campaign_id, target_key, status, current_node and error of the run.
    """


@hookspec
def on_workflow_event(run: Mapping[str, Any], name: str, payload: Mapping[str, Any]) -> None:
    """Receive an event that a ``send_event`` node emits.

    When it fires: on a worker thread while the node executes; an exception fails the step, which then
    retries by the node's policy.

    :param run: id, campaign_id and target_key of the run.
    :param name: the event name from the node's config.
    :param payload: the rendered payload.
    """
