"""Training providers (register_training_providers): who enrols a person in a course and where they take it.

- builtin: campaignkit's own course page and quiz (templates ``pages/phishing/training/<course>.html`` and
  ``<course>.quiz.json``, which admins override by path). Opening the page is Started training; passing the quiz
  is Finished training.
- lms: a learning-management system reached over HTTP. The enrolment (course, person, idempotency key, and the
  URL to report completion to) is POSTed, signed with the shared secret; the LMS answers with the course's URL, and
  later POSTs ``{"event": "started" | "finished"}`` to the completion URL, signed the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from campaignkit.core import StepError, TrainingAssignment, TrainingProvider
from campaignkit.core.outbound.client import (
    CaFile,
    HttpClient,
    HttpError,
    OutboundUrl,
    SigningSecret,
    signature_headers,
)

if TYPE_CHECKING:
    import jinja2


class BuiltinTraining(TrainingProvider):
    """builtin: the course page and quiz campaignkit serves itself, at the person's training link."""

    name = "builtin"

    def assign(self, assignment: TrainingAssignment) -> str:
        return assignment.link


class LmsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: OutboundUrl = Field(description="The LMS's enrolment endpoint (POST), https:// unless loopback.")
    token: SecretStr | None = Field(default=None, description="Sent as 'Authorization: Bearer ...'.")
    signing_secret: SigningSecret = Field(description="Signs enrolments and checks the LMS's completion reports.")
    timeout_seconds: float = Field(default=10, gt=0, le=60)
    ca_file: CaFile = None


class LmsTraining(TrainingProvider):
    """lms: enrols through a learning-management system's HTTP API; it reports progress to the completion URL."""

    name = "lms"
    Config = LmsConfig
    config: LmsConfig

    def assign(self, assignment: TrainingAssignment) -> str:
        body = json.dumps({"course": assignment.course, "email": assignment.email, "name": assignment.name,
                           "idempotency_key": assignment.idempotency_key,
                           "completion_url": assignment.completion_url}, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": assignment.idempotency_key}
        if self.config.token is not None:
            headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"
        client = HttpClient(ca_file=self.config.ca_file, timeout_seconds=self.config.timeout_seconds, retries=1)
        try:
            response = client.request("POST", self.config.url, body=body, headers=headers,
                                      sign=signature_headers(self.secret, body))
        except HttpError as exc:
            raise StepError(f"LMS enrolment: {exc}", temporary=exc.temporary) from None
        try:
            url = json.loads(response.body)["url"]
        except (ValueError, KeyError, TypeError):
            raise StepError("LMS enrolment: the answer has no 'url'", temporary=False) from None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise StepError("LMS enrolment: 'url' is not an http(s) URL", temporary=False)
        return url

    @property
    def secret(self) -> bytes:
        return self.config.signing_secret.get_secret_value().encode()


BUILT_IN = [BuiltinTraining, LmsTraining]


@dataclass(frozen=True)
class Question:
    text: str
    options: tuple[str, ...]
    answer: int  # the index of the right option


@dataclass(frozen=True)
class Quiz:
    questions: tuple[Question, ...]
    pass_mark: int  # right answers needed

    def score(self, answers: dict[str, str]) -> int:
        return sum(answers.get(f"q{index}") == str(question.answer)
                   for index, question in enumerate(self.questions))


def load_quiz(env: jinja2.Environment, course: str) -> Quiz:
    """A course's quiz from ``pages/phishing/training/<course>.quiz.json`` (found like any template, so admins
    override it): {"pass_mark": N, "questions": [{"text", "options": [...], "answer": index}, ...]}."""
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, f"pages/phishing/training/{course}.quiz.json")
    data: dict[str, Any] = json.loads(source)
    questions = tuple(Question(str(q["text"]), tuple(str(o) for o in q["options"]), int(q["answer"]))
                      for q in data["questions"])
    return Quiz(questions, int(data.get("pass_mark", len(questions))))
