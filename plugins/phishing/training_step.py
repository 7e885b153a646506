"""phishing_training: assigns the recipient's training through the campaign's training provider and emails them
the link; as a reminder, emails the link again. Both are keyed by the step's idempotency key, so a retry enrols
once and resends the same message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from campaignkit.core import Message, PermanentStepError, StepContext, StepResult, StepType, TrainingAssignment

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

REMINDERS = "training_reminders"  # context: reminders sent so far


class PhishingTraining(StepType):
    """phishing_training: enrols the recipient in the campaign's course and emails them its link."""

    name = "phishing_training"
    side_effect = True
    description = "Assigns a phishing simulation's training (through its provider) and emails the link."

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        provider: str = Field(min_length=1)
        course: str = Field(min_length=1)
        channel: str = Field(min_length=1)
        template: str = "email/phishing/training"
        reminder: bool = False

    def compile(self, config: Any, runtime: Runtime) -> Any:
        parsed = self.Config.model_validate(dict(config))
        runtime.registry.require("training provider", parsed.provider)
        runtime.registry.require("channel", parsed.channel)
        return parsed

    def simulate(self, ctx: StepContext) -> StepResult:
        """In a simulation: the training email rendered with the built-in course's link (a sample token); no
        provider is asked to enrol anyone and nothing is sent."""
        from campaignkit.core.templating import render
        from campaignkit.core.web.links import page_url

        from .vocabulary import SAMPLE_TOKEN

        cfg: PhishingTraining.Config = ctx.config
        url = page_url(ctx.runtime, f"p/{SAMPLE_TOKEN}/training")
        variables = {**ctx.template_vars(), "training": {"url": url, "course": cfg.course, "reminder": cfg.reminder}}
        to = str(variables["recipient"]["email"])
        env = ctx.runtime.jinja
        message = {"channel": cfg.channel, "to": to, "html": None,
                   "subject": render(env.get_template(f"{cfg.template}/subject.txt"), variables).strip(),
                   "text": render(env.get_template(f"{cfg.template}/body.txt"), variables)}
        updates: dict[str, Any] = {"training_key": ctx.idempotency_key}
        if cfg.reminder:
            updates[REMINDERS] = int(ctx.context.get(REMINDERS) or 0) + 1
        return StepResult(detail={"course": cfg.course, "reminder": cfg.reminder, "channel": cfg.channel, "to": to,
                                  "message": message}, context_updates=updates)

    def execute(self, ctx: StepContext) -> StepResult:
        # Imported here: registering the step type (the CLI's --help does) must not load the database or Jinja2.
        from campaignkit.core.db import reading
        from campaignkit.core.templating import render
        from campaignkit.core.web.links import page_url

        from . import store

        cfg: PhishingTraining.Config = ctx.config
        runtime = ctx.runtime
        with reading(runtime.engine) as conn:
            row = store.result_by_run(conn, ctx.run_id)
        if row is None:
            raise PermanentStepError(f"run {ctx.run_id} has no phishing result row")
        # The enrolment is keyed by the assignment's first visit, so a reminder never enrols a second time.
        key = str(ctx.context.get("training_key") or ctx.idempotency_key)
        assignment = TrainingAssignment(
            course=cfg.course, email=row.email, name=row.name, run_id=ctx.run_id, campaign_id=ctx.campaign_id,
            idempotency_key=key, link=page_url(runtime, f"p/{row.token}/training"),
            completion_url=page_url(runtime, f"p/{row.token}/training/complete"))
        url = runtime.registry.training_provider(cfg.provider, runtime).assign(assignment)
        variables = {**ctx.template_vars(), "training": {"url": url, "course": cfg.course, "reminder": cfg.reminder}}
        env = runtime.jinja
        subject = render(env.get_template(f"{cfg.template}/subject.txt"), variables).strip()
        text = render(env.get_template(f"{cfg.template}/body.txt"), variables)
        delivery = runtime.registry.channel(cfg.channel, runtime).send(Message(
            to=row.email, subject=subject, text=text, html=None, idempotency_key=ctx.idempotency_key,
            run_id=ctx.run_id, campaign_id=ctx.campaign_id, at=ctx.now))
        updates: dict[str, Any] = {"training_key": key}
        if cfg.reminder:
            updates[REMINDERS] = int(ctx.context.get(REMINDERS) or 0) + 1
        return StepResult(detail={"course": cfg.course, "reminder": cfg.reminder,
                                  "message_id": delivery.message_id or ""}, context_updates=updates)
