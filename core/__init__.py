"""campaignkit: what plugin authors and embedders import. Everything not listed in ``__all__`` is private."""

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    AudienceError,
    CampaignkitError,
    ConfigurationError,
    DefinitionError,
    PermanentStepError,
    PluginError,
    StepError,
)
from .hookspecs import hookimpl
from .http import (
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
from .http_call import HttpCall, HttpCallConfig
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
    Message,
    NoConfig,
    Target,
)
from .step import FAILURE, NEXT, TIMEOUT, RunEvent, StepContext, StepResult, StepType

try:
    __version__ = version("campaignkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "FAILURE",
    "MIN_SECRET_LENGTH",
    "NEXT",
    "SIGNATURE_HEADER",
    "TIMEOUT",
    "TIMESTAMP_HEADER",
    "AudienceError",
    "AudienceSource",
    "AuditSink",
    "CaFile",
    "CampaignkitError",
    "Channel",
    "Component",
    "ConfigurationError",
    "DefinitionError",
    "Delivery",
    "EnforcementAction",
    "EnforcementRequest",
    "EnforcementResult",
    "FieldUpdate",
    "FieldUpdater",
    "HttpCall",
    "HttpCallConfig",
    "HttpClient",
    "HttpError",
    "Message",
    "NoConfig",
    "OutboundUrl",
    "PermanentStepError",
    "PluginError",
    "Response",
    "RunEvent",
    "SigningSecret",
    "StepContext",
    "StepError",
    "StepResult",
    "StepType",
    "Target",
    "__version__",
    "hookimpl",
    "is_loopback",
    "redacted",
    "sign",
    "signature_headers",
    "tls_context",
    "user_agent",
]
