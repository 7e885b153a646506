"""phishing_send: the simulated email of one recipient, through the campaign's channel.

It skips a bounced mailbox (Blocklisted) unless an operator asked for a resend, renders the recipient's attack,
sends it from the per-message VERP address asking for delivery notifications, and records the outcome on the
recipient's results row: Pending when the relay accepted it, Failed on a permanent refusal (the address then joins
the bounced mailboxes). A temporary refusal retries like any side effect; the last one counts as Failed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from campaignkit.core import (
    Message,
    PermanentStepError,
    RecipientRefused,
    StepContext,
    StepError,
    StepResult,
    StepType,
)

from .vocabulary import BLOCKLISTED, FAILED, UNDELIVERED

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

SMTP_CODE = re.compile(r"\b([245]\d\d)\b(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?")


class AttackRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    template: str
    sender: str


class PhishingSend(StepType):
    """phishing_send: sends the recipient's simulated phishing email and records its delivery status."""

    name = "phishing_send"
    side_effect = True
    description = "Sends a phishing simulation's email (its attack, from a VERP address) and records the status."

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        channel: str = Field(min_length=1)
        attacks: list[AttackRef] = Field(min_length=1)
        return_path: str | None = None
        attempts: int = Field(default=5, ge=1)

    def required_edges(self, config: Any) -> set[str]:
        return {"next", UNDELIVERED}

    def compile(self, config: Any, runtime: Runtime) -> Any:
        parsed = self.Config.model_validate(dict(config))
        runtime.registry.require("channel", parsed.channel)
        return parsed

    def execute(self, ctx: StepContext) -> StepResult:
        # Imported here: registering the step type (the CLI's --help does) must not load the database or Jinja2.
        from campaignkit.core.db import reading, writing

        from . import store

        cfg: PhishingSend.Config = ctx.config
        runtime = ctx.runtime
        with reading(runtime.engine) as conn:
            row = store.result_by_run(conn, ctx.run_id)
            bounced = store.blocked(conn, row.email) if row is not None else None
        if row is None:
            raise PermanentStepError(f"run {ctx.run_id} has no phishing result row (launched by another kind?)")
        if bounced is not None and row.attempt == 0:  # a resend is an operator's choice to try it again
            detail = {"code": bounced.code, "text": f"on the bounced mailboxes list since "
                                                   f"{bounced.first_seen.isoformat()}: {bounced.error}"}
            with writing(runtime.engine) as conn:
                store.mark_delivery(conn, ctx.run_id, BLOCKLISTED, ctx.now, detail)
            return StepResult.follow(UNDELIVERED, delivery=BLOCKLISTED)
        attack = next((a for a in cfg.attacks if a.name == row.attack), cfg.attacks[0])
        message = self._message(ctx, cfg, attack, row.email, row.token, row.attempt)
        try:
            delivery = runtime.registry.channel(cfg.channel, runtime).send(message)
        except PermanentStepError as exc:
            return self._failed(ctx, row, str(exc), bounced=isinstance(exc, RecipientRefused))
        except StepError as exc:
            if ctx.attempt >= cfg.attempts:
                return self._failed(ctx, row, str(exc), bounced=False)
            raise
        detail = {"channel": cfg.channel, **dict(delivery.detail)}
        if delivery.message_id:
            detail["message_id"] = delivery.message_id
        with writing(runtime.engine) as conn:
            # When the server took it (a retried send is later than the first attempt the message is dated with):
            # the scanner rule "too soon after sending" counts from here.
            store.mark_sent(conn, ctx.run_id, runtime.clock.now(), detail)
        return StepResult.follow(attack=attack.name, **detail)

    def simulate(self, ctx: StepContext) -> StepResult:
        """In a simulation (`campaign simulate`): the email the recipient would get, rendered, with a sample token in
        its links (a simulated run has no results row), or Blocklisted for an address on the bounced mailboxes
        list; nothing is sent and no delivery status written."""
        from campaignkit.core.db import reading

        from . import store
        from .vocabulary import SAMPLE_TOKEN

        cfg: PhishingSend.Config = ctx.config
        attack = next((a for a in cfg.attacks if a.name == ctx.context.get("attack")), cfg.attacks[0])
        to = str(ctx.template_vars()["recipient"]["email"]).strip()
        if not to:  # as the real send: the address is refused, and the run goes on as undelivered
            return StepResult.follow(UNDELIVERED, delivery=FAILED, error="no recipient address")
        with reading(ctx.runtime.engine) as conn:
            if store.blocked(conn, to) is not None:
                return StepResult.follow(UNDELIVERED, delivery=BLOCKLISTED)
        message = self._message(ctx, cfg, attack, to, SAMPLE_TOKEN, 0)
        return StepResult.follow(attack=attack.name, channel=cfg.channel, to=to, message={
            "channel": cfg.channel, "to": to, "subject": message.subject, "text": message.text,
            "html": message.html})

    def _message(self, ctx: StepContext, cfg: PhishingSend.Config, attack: AttackRef, to: str, token: str,
                 attempt: int) -> Message:
        from campaignkit.core.templating import render

        from .links import verp_address

        env = ctx.runtime.jinja
        variables = ctx.template_vars()
        parts = {}
        for part, file in (("subject", "subject.txt"), ("text", "body.txt"), ("html", "body.html")):
            name = f"{attack.template}/{file}"
            if part == "html" and not _exists(env, name):
                continue
            parts[part] = render(env.get_template(name), variables)
        return Message(
            to=to, subject=parts["subject"].strip(), text=parts["text"], html=parts.get("html"),
            idempotency_key=ctx.idempotency_key, run_id=ctx.run_id, campaign_id=ctx.campaign_id, at=ctx.now,
            headers={"X-Campaignkit-Token": token}, sender=attack.sender,
            # The attempt rides along with the token, so a late notification about an email sent before a resend
            # is told from one about the resend.
            return_path=verp_address(cfg.return_path, f"{token}-{attempt}") if cfg.return_path else None,
            notify=("SUCCESS", "FAILURE") if cfg.return_path else (),
            envelope_id=f"{token}-{attempt}" if cfg.return_path else None,
        )

    @staticmethod
    def _failed(ctx: StepContext, row: Any, error: str, *, bounced: bool) -> StepResult:
        """Failed, with the server's code and words; the address joins the bounced mailboxes only when the server
        refused the address itself (a refused sender or message says nothing about the mailbox)."""
        from campaignkit.core.db import writing

        from . import store

        code, status = _codes(error)
        detail = {"code": status or code, "smtp_code": code, "text": error[:500]}
        now = ctx.runtime.clock.now()
        with writing(ctx.runtime.engine) as conn:
            store.mark_delivery(conn, ctx.run_id, FAILED, now, detail)
            if bounced:
                store.add_bounced(conn, row.email, status or code or "", error, now, ctx.campaign_id, ctx.run_id)
        return StepResult.follow(UNDELIVERED, delivery=FAILED, error=error[:500])


def _codes(text: str) -> tuple[str, str]:
    """The SMTP reply code and enhanced status code in a server's refusal, as far as it gives them."""
    found = SMTP_CODE.search(text)
    return (found.group(1), found.group(2) or "") if found else ("", "")


def _exists(env: Any, name: str) -> bool:
    import jinja2

    try:
        env.get_template(name)
    except jinja2.TemplateNotFound:
        return False
    return True
