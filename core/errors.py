"""Errors a user can cause and act on; the CLI prints them as one line, never a traceback."""

from __future__ import annotations


class CampaignkitError(Exception):
    """Base of every error that is the user's to fix (bad input, bad configuration, wrong state)."""

    exit_code = 1


class ConfigurationError(CampaignkitError):
    """Invalid settings or plugin configuration; names the key and the problem."""

    exit_code = 2


class PluginError(CampaignkitError):
    """A plugin could not be loaded or registered (duplicate names, broken entry point)."""

    exit_code = 2


class DefinitionError(CampaignkitError):
    """A campaign definition is invalid; carries every problem found, each with its position."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class AudienceError(CampaignkitError):
    """An audience could not be imported; nothing of it was kept."""


class NotFound(CampaignkitError):
    """A campaign, run or target that does not exist."""


class InvalidState(CampaignkitError):
    """An action that the object's lifecycle state does not allow."""


class StepError(Exception):
    """Raised by plugins and step types: a failed step. ``temporary`` failures retry with backoff.

    ``retry_after`` (seconds), e.g. from a server's Retry-After header, makes the next attempt wait at least that
    long, even when the node's backoff would retry sooner.
    """

    def __init__(self, message: str, *, temporary: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.retry_after = retry_after


class PermanentStepError(StepError):
    """A failure that retrying cannot fix (a rejected address, a missing approver)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, temporary=False)


class RecipientRefused(PermanentStepError):
    """The recipient's address itself was refused for good (an unknown user, a mailbox that does not exist, an
    address that cannot be written): a channel raises it so that callers can tell a bad address, which no later
    message to it will get past, from a refused sender or message."""


class TemplateStepError(PermanentStepError):
    """A template failed on a run's data: the campaign author's mistake, not the outside world's. It fails the run
    visibly instead of following the node's ``failure`` edge (which means the recipient or system failed: Message
    Delivery Failed, say); once the template is fixed, retrying the run sends it."""

    follows_failure_edge = False
