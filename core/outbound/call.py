"""A templated HTTP request to one configured endpoint, for plugins that call out per step (an inventory's field
update, a provisioning webhook): the URL and body render per call, the host stays the configured one, secret headers
never reach a log, and errors say what to fix without quoting secrets.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ..errors import ConfigurationError, PermanentStepError
from ..plugins.builtins import prepare_jinja_environment as prepare_default_filters
from .client import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CaFile,
    HttpClient,
    Response,
    check_outbound_url,
    redacted,
    user_agent,
)

if TYPE_CHECKING:
    import jinja2

    from ..runtime import Runtime

TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 9110 header name
# Set by the plugin itself (Content-Type has its own setting): a configured value would be dropped or duplicated.
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "idempotency-key", SIGNATURE_HEADER.lower(),
                              TIMESTAMP_HEADER.lower()})


@functools.cache
def _checker() -> jinja2.Environment:
    """Syntax and names only (requests render with runtime.jinja). Checking names compiles the template, which needs
    its filters: the default plugin's (segment, after) are known here; a template using a plugin's own filter is
    checked when HttpCall builds it with runtime.jinja. Built at first use: plugins load with every command."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    checker = ImmutableSandboxedEnvironment()
    prepare_default_filters(checker, purpose="message")
    return checker

_SEGMENT_HINT = "use the segment filter for path parts, e.g. {{ params.user | segment }}"


def _check_template(source: str, allowed: frozenset[str]) -> None:
    from jinja2 import TemplateSyntaxError, meta

    try:
        names = meta.find_undeclared_variables(_checker().parse(source))
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error (line {exc.lineno}): {exc.message}") from None
    unknown = names - allowed - set(_checker().globals)
    if unknown:
        raise ValueError(f"unknown template variable(s) {', '.join(sorted(unknown))} (known: "
                         f"{', '.join(sorted(allowed))})")


def url_shape(source: str) -> str:
    """The URL template with every {{ }} expression replaced by one character: its literal path segments, query and
    fragment are what every rendered URL must keep."""
    parts: list[str] = []
    expression = False
    for _line, token, value in _checker().lex(source):
        if token == "block_begin":
            # An {% if %} or {% for %} would make the number of segments depend on the data.
            raise ValueError("no {% %} statements in the url: its path segments must be fixed by the template; "
                             + _SEGMENT_HINT)
        if token == "variable_begin":
            expression = True
            parts.append("x")
        elif token == "variable_end":
            expression = False
        elif token == "data" and not expression:
            parts.append(value)
    return "".join(parts).strip()


class HttpCallConfig(BaseModel):
    """One endpoint: a URL and body rendered per call, secret headers, a client's timeouts and retries."""

    model_config = ConfigDict(extra="forbid")
    variables: ClassVar[frozenset[str]] = frozenset()  # what url and body templates may use

    url: str = Field(description="A template; scheme and host must be literal, https:// unless loopback; path parts "
                                 "through the segment filter, e.g. /users/{{ target_key | segment }}.")
    method: str = "POST"
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="E.g. Authorization; never logged.")
    body: str | None = Field(default=None, description='A template; unset: a JSON default; "": no body.')
    content_type: str = "application/json"
    timeout_seconds: float = Field(default=10, gt=0, le=300, description="Per attempt; keep the total under the "
                                                                          "step timeout (30 s by default).")
    retries: int = Field(default=1, ge=0, le=10, description="Extra attempts within one call on 5xx/no answer.")
    retry_backoff_seconds: float = Field(default=0.5, ge=0, le=30)
    ca_file: CaFile = Field(default=None, description="PEM bundle of a private CA that signed the server.")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if "{" in parts.scheme + parts.netloc:
            # Values from a target must never choose the host the request (and its credentials) goes to.
            raise ValueError("scheme and host must be literal: templates are allowed only after the host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("no credentials in the URL: put them in headers, which are kept secret")
        check_outbound_url(value)
        _check_template(value, cls.variables)
        url_shape(value)
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: str | None) -> str | None:
        if value:
            _check_template(value, cls.variables)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not TOKEN.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the plugin")
            if re.search(r"[\x00-\x1f\x7f]", secret.get_secret_value()):
                # Checked here: http.client's own error would quote the value.
                raise ValueError(f"header {name!r} contains control characters")
        return value


class HttpCall:
    """Renders and sends one request to a configured endpoint; raises HttpError, or PermanentStepError when
    the request cannot even be built (a template fails on this target's data)."""

    def __init__(self, config: HttpCallConfig, runtime: Runtime) -> None:
        from jinja2 import TemplateError

        self.config = config
        try:
            self._url = runtime.jinja.from_string(config.url)
            self._body = runtime.jinja.from_string(config.body) if config.body else None
        except TemplateError as exc:  # e.g. a filter the environment does not have
            raise ConfigurationError(f"invalid template: {exc}") from None
        parts = urlsplit(config.url)
        self._origin = (parts.scheme, parts.netloc)
        self._shape = url_shape(config.url)
        self._segments = urlsplit(self._shape).path.split("/")
        self._client = HttpClient(ca_file=config.ca_file, timeout_seconds=config.timeout_seconds,
                                  retries=config.retries, retry_backoff_seconds=config.retry_backoff_seconds)

    def url(self, variables: Mapping[str, Any]) -> str:
        url = _render(self._url, variables, "url").strip()
        parts = urlsplit(url)
        if re.search(r"[\x00-\x20\x7f]", url):
            raise PermanentStepError(f"url rendered with spaces or control characters: {redacted(url)} "
                                     f"({_SEGMENT_HINT})")
        if (parts.scheme, parts.netloc) != self._origin:
            raise PermanentStepError("url rendered with another scheme or host")
        if {".", ".."} & set(unquote(parts.path).split("/")):
            # A value like ../admin must not walk the receiver's paths.
            raise PermanentStepError(f"url rendered with a . or .. segment: {redacted(url)}")
        self._check_shape(url, parts)
        return url

    def _check_shape(self, url: str, parts: SplitResult) -> None:
        """A value must fill its own segment: one holding a / (urlencode keeps it), a ? or a # would send the
        request to another resource, whose 404 an action could even count as "already removed"."""
        if any(url.count(mark) != self._shape.count(mark) for mark in "?#"):
            # Counted, not just looked for: /members/{{ user }}?x=1 with user bob? would still reach bob.
            raise PermanentStepError(f"url rendered with a ? or # the template does not have: {redacted(url)} "
                                     f"({_SEGMENT_HINT})")
        segments, expected = parts.path.split("/"), self._segments
        if len(segments) != len(expected):
            raise PermanentStepError(f"url rendered with {len(segments) - 1} path segments where the template has "
                                     f"{len(expected) - 1}, so a value holds a /: {redacted(url)} ({_SEGMENT_HINT})")
        if any(wanted and not segment for wanted, segment in zip(expected, segments, strict=True)):
            # /access//Payroll: a receiver that merges slashes would act on /access/Payroll.
            raise PermanentStepError(f"url rendered with an empty path segment: {redacted(url)}")

    def body(self, variables: Mapping[str, Any], default: Mapping[str, Any]) -> bytes | None:
        if self.config.body == "":
            return None
        if self._body is None:
            return json.dumps(dict(default), ensure_ascii=False, separators=(",", ":"), default=str).encode()
        text = _render(self._body, variables, "body")
        media = self.config.content_type.split(";")[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            try:
                json.loads(text)
            except ValueError as exc:  # the message names a position, not the content
                raise PermanentStepError(f"body template did not render valid JSON ({exc}); use the tojson filter"
                                         ) from None
        return text.encode()

    def send(self, variables: Mapping[str, Any], default_body: Mapping[str, Any], idempotency_key: str,
             sign: Callable[[bytes], Callable[[], Mapping[str, str]]] | None = None) -> tuple[str, Response]:
        """Returns the URL (for messages: pass it through redacted) and the 2xx response."""
        url, body = self.url(variables), self.body(variables, default_body)
        headers = {name: value.get_secret_value() for name, value in self.config.headers.items()}
        headers.update({"User-Agent": user_agent(), "Idempotency-Key": idempotency_key})
        if body is not None:
            headers["Content-Type"] = self.config.content_type
        signer = sign(body or b"") if sign is not None else None
        return url, self._client.request(self.config.method, url, body=body, headers=headers, sign=signer)


def _render(template: jinja2.Template, variables: Mapping[str, Any], part: str) -> str:
    try:
        return template.render(dict(variables))
    except Exception as exc:  # not only TemplateError: tojson of an undefined value raises TypeError
        from jinja2 import TemplateError

        # The same data renders the same way on every attempt: retrying cannot help.
        what = str(exc) if isinstance(exc, TemplateError) else f"{type(exc).__name__}: {exc}"
        raise PermanentStepError(f"{part} template error: {what}") from None
