"""slack: delivers messages by posting JSON to a Slack-style incoming webhook (Slack, Mattermost, Rocket.Chat)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from campaignkit.core import (
    CaFile,
    Channel,
    Delivery,
    Message,
    OutboundUrl,
    PermanentStepError,
    StepError,
    user_agent,
)

from .post import Answer, Poster, Unreachable

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

_OUTBOUND = TypeAdapter(OutboundUrl)
# Worth another attempt later: the receiver is rate limiting, busy or broken for now.
TEMPORARY_STATUSES = frozenset({408, 425, 429})
# Slack's Web API answers errors with HTTP 200 and {"ok": false, "error": ...}; these pass with time.
TEMPORARY_API_ERRORS = frozenset({"ratelimited", "rate_limited", "service_unavailable", "fatal_error",
                                  "internal_error", "request_timeout"})
MESSAGE_ID_KEYS = ("message_id", "ts", "id")
MESSAGE_ID_HEADERS = ("x-message-id", "message-id")


def _check_webhook_url(value: SecretStr) -> SecretStr:
    try:
        _OUTBOUND.validate_python(value.get_secret_value())
    except ValidationError as exc:
        # Only the reason: pydantic's own text would quote the URL, and with it the token.
        raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
    return value


# A SecretStr, so that neither repr(config) nor a validation error shows the token its path carries.
WebhookUrl = Annotated[SecretStr, AfterValidator(_check_webhook_url)]


class SlackConfig(BaseModel):
    """The table ``[plugins.config.slack]``."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: WebhookUrl = Field(description="The incoming-webhook URL; its path is the credential, so it is "
                                                "kept secret and never logged. https:// unless loopback.")
    username: str | None = Field(default=None, min_length=1, description="The name the post appears under.")
    icon_emoji: str | None = Field(default=None, pattern=r"^:[a-z0-9_+\-]+:$", description="E.g. :shield:.")
    icon_url: OutboundUrl | None = Field(default=None, description="An image URL, instead of icon_emoji.")
    timeout_seconds: float = Field(default=10, gt=0, le=300, description="Connect, send and answer; keep it "
                                                                         "under the step timeout (30 s).")
    ca_file: CaFile = Field(default=None, description="PEM bundle of a private CA that signed the server.")
    include_subject: bool = Field(default=True, description="Start the post with the subject in bold.")
    escape: bool = Field(default=True, description="Escape &, < and > as Slack requires, so that target data such "
                                                   "as <!channel> cannot mention everyone. Turn off only when the "
                                                   "templates write Slack markup (<url|label>) and the data is "
                                                   "trusted.")

    @model_validator(mode="after")
    def _one_icon(self) -> SlackConfig:
        if self.icon_emoji is not None and self.icon_url is not None:
            raise ValueError("give icon_emoji or icon_url, not both")
        return self


class SlackChannel(Channel):
    name = "slack"
    Config = SlackConfig
    config: SlackConfig

    def __init__(self, config: SlackConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        self._poster = Poster(config.webhook_url.get_secret_value(), ca_file=config.ca_file,
                              timeout_seconds=config.timeout_seconds)

    def send(self, message: Message) -> Delivery:
        text = post_text(message, include_subject=self.config.include_subject, escape=self.config.escape)
        if not text.strip():
            raise PermanentStepError("slack: nothing to post: subject and text rendered empty")
        body = json.dumps(self.payload(message, text), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": user_agent(),
                   # Receivers that support it drop a repeat: retries after a lost answer reuse the key.
                   "Idempotency-Key": message.idempotency_key}
        try:
            answer = self._poster.post(body, headers)
        except Unreachable as exc:
            raise StepError(f"slack: {exc}", temporary=exc.temporary) from None
        return self._delivery(answer)

    def payload(self, message: Message, text: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"text": text, "channel": message.to}
        if self.config.username:
            payload["username"] = self.config.username
        if self.config.icon_emoji:
            payload["icon_emoji"] = self.config.icon_emoji
        if self.config.icon_url:
            payload["icon_url"] = self.config.icon_url
        return payload

    def _delivery(self, answer: Answer) -> Delivery:
        where = self._poster.origin
        status = answer.status
        if 200 <= status < 300:
            reply = _json(answer.body)
            if isinstance(reply, dict) and reply.get("ok") is False:
                error = str(reply.get("error") or "no reason given")
                if error in TEMPORARY_API_ERRORS:
                    raise StepError(f"slack: {where} refused the message for now: {error}")
                raise PermanentStepError(f"slack: {where} refused the message: {error}")
            return Delivery(message_id=_message_id(reply, answer.headers),
                            detail={"http_status": status, "endpoint": where})
        excerpt = f": {answer.excerpt}" if answer.excerpt else ""
        if status in TEMPORARY_STATUSES or status >= 500:
            # The next attempt waits for the node's backoff or the receiver's Retry-After, whichever is longer.
            seconds = answer.retry_after_seconds()
            hint = f" (Retry-After: {seconds}s)" if seconds is not None else ""
            raise StepError(f"slack: {where} answered HTTP {status}{hint}{excerpt}", temporary=True,
                            retry_after=seconds)
        if 300 <= status < 400:
            raise PermanentStepError(f"slack: {where} answered HTTP {status}: redirects are not followed; "
                                     "configure the final webhook URL")
        raise PermanentStepError(f"slack: {where} answered HTTP {status}{excerpt}")


def slack_escape(text: str) -> str:
    """The three characters Slack's mrkdwn gives a meaning to (<!channel>, <@U123>, <url|label>)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post_text(message: Message, *, include_subject: bool, escape: bool) -> str:
    """Chat has no subject line: it becomes a bold first line (HTML bodies are not used)."""
    subject, text = message.subject.strip(), message.text.strip()
    if escape:
        subject, text = slack_escape(subject), slack_escape(text)
    if include_subject and subject:
        return f"*{subject}*\n\n{text}" if text else f"*{subject}*"
    return text


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None  # Slack's incoming webhooks answer a plain "ok"


def _message_id(reply: Any, headers: dict[str, str]) -> str | None:
    if isinstance(reply, dict):
        for key in MESSAGE_ID_KEYS:
            value = reply.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
    for header in MESSAGE_ID_HEADERS:
        if headers.get(header):
            return headers[header]
    return None
