"""campaignkit: what plugin authors and embedders import. Everything not listed in ``__all__`` is private."""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audit.catalog import AuditType
    from .audit.records import Actor
    from .campaigns.entries import EntryOutcome, InvalidEntry, enter_target
    from .campaigns.views import CampaignView, RunView, campaign_runs, find_campaign, latest_cycle, run_view
    from .engine.events import EventAudit, InvalidEvent, send_event
    from .errors import (
        AudienceError,
        CampaignkitError,
        ConfigurationError,
        DefinitionError,
        NotFound,
        PermanentStepError,
        PluginError,
        RecipientRefused,
        StepError,
        TemplateStepError,
    )
    from .hookspecs import hookimpl
    from .interfaces import (
        AudienceSource,
        AuditSink,
        Channel,
        Component,
        Delivery,
        EnforcementAction,
        EnforcementRequest,
        EnforcementResult,
        FieldUpdate,
        FieldUpdater,
        Hit,
        HitDetector,
        Message,
        NoConfig,
        Target,
        TrainingAssignment,
        TrainingProvider,
    )
    from .kinds import (
        CampaignKind,
        ConsoleGate,
        ConsolePerson,
        ConsoleTab,
        JobOutcome,
        KindJob,
        KindTemplate,
        Listing,
        NoSettings,
        WebContext,
    )
    from .outbound.call import HttpCall, HttpCallConfig
    from .outbound.client import (
        MIN_SECRET_LENGTH,
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        CaFile,
        HttpClient,
        HttpError,
        OutboundUrl,
        Response,
        SigningSecret,
        is_loopback,
        redacted,
        sign,
        signature_headers,
        tls_context,
        user_agent,
    )
    from .step import FAILURE, NEXT, TIMEOUT, RunEvent, StepContext, StepResult, StepType
    from .web.app import create_app
    from .web.links import LinkError, LinkSigner, LinkText, link_expiry, page_url, signer
    from .web.pages import render_page

    __version__: str

# Loaded on first use, so that what never touches a plugin (`campaignkit --help`, errors, the CLI's own modules)
# does not pay for pydantic, jinja2 and the HTTP stack at start-up (benchmarks/cli.py).
_SOURCES = (
    "errors",
    "step",
    "interfaces",
    "hookspecs",
    "kinds",
    "outbound.client",
    "outbound.call",
    "web.links",
    "web.pages",
    "engine.events",
    "audit.catalog",
    "audit.records",
    "campaigns.views",
    "campaigns.entries",
    "web.app",
)
_MISSING = object()


def __getattr__(name: str) -> Any:
    value: Any
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("campaignkit")
        except PackageNotFoundError:  # running from a source tree that is not installed
            value = "0.0.0"
    else:
        found = (getattr(module, name) for module in map(_source, _SOURCES) if hasattr(module, name))
        value = next(found, _MISSING) if name in __all__ else _MISSING
        if value is _MISSING:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def _source(module: str) -> Any:
    return importlib.import_module(f".{module}", __name__)


__all__ = [
    "FAILURE",
    "MIN_SECRET_LENGTH",
    "NEXT",
    "SIGNATURE_HEADER",
    "TIMEOUT",
    "TIMESTAMP_HEADER",
    "Actor",
    "AudienceError",
    "AudienceSource",
    "AuditSink",
    "AuditType",
    "CaFile",
    "CampaignKind",
    "CampaignView",
    "CampaignkitError",
    "Channel",
    "Component",
    "ConfigurationError",
    "ConsoleGate",
    "ConsolePerson",
    "ConsoleTab",
    "DefinitionError",
    "Delivery",
    "EnforcementAction",
    "EnforcementRequest",
    "EnforcementResult",
    "EntryOutcome",
    "EventAudit",
    "FieldUpdate",
    "FieldUpdater",
    "Hit",
    "HitDetector",
    "HttpCall",
    "HttpCallConfig",
    "HttpClient",
    "HttpError",
    "InvalidEntry",
    "InvalidEvent",
    "JobOutcome",
    "KindJob",
    "KindTemplate",
    "LinkError",
    "LinkSigner",
    "LinkText",
    "Listing",
    "Message",
    "NoConfig",
    "NoSettings",
    "NotFound",
    "OutboundUrl",
    "PermanentStepError",
    "PluginError",
    "RecipientRefused",
    "Response",
    "RunEvent",
    "RunView",
    "SigningSecret",
    "StepContext",
    "StepError",
    "StepResult",
    "StepType",
    "Target",
    "TemplateStepError",
    "TrainingAssignment",
    "TrainingProvider",
    "WebContext",
    "__version__",
    "campaign_runs",
    "create_app",
    "enter_target",
    "find_campaign",
    "hookimpl",
    "is_loopback",
    "latest_cycle",
    "link_expiry",
    "page_url",
    "redacted",
    "render_page",
    "run_view",
    "send_event",
    "sign",
    "signature_headers",
    "signer",
    "tls_context",
    "user_agent",
]
