"""The campaign-kind interface: what a family of campaigns (access reviews, phishing simulations, attestations...)
adds to the engine's plain workflow. Core knows kinds only through it; ``journey``, a workflow as its file writes it,
is the built-in default kind.

A kind is a Component registered with ``register_campaign_kinds`` (its plugin-wide settings, if any, in
``plugins.config.<name>``). Each campaign of the kind gives its own ``settings:``, validated by the kind's
``Settings`` model, which every method receives already parsed. Every method has a default that does nothing, so a
kind implements only what it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from .errors import CampaignkitError
from .interfaces import Component, Target

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter, Request, Response
    from sqlalchemy import Connection
    from starlette.routing import Router

    from .step import StepContext
    from .web.rejections import Rejections

JOURNEY = "journey"
ENGINE_FACETS = ("assignee", "response", "response_at", "result", "notify")  # the run columns kinds can use


class NoSettings(BaseModel):
    """For kinds whose campaigns take no ``settings:``; any key given is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class KindTemplate:
    """A template a kind renders outside the workflow's nodes (a digest email), for checks at create and launch."""

    name: str  # its path under the template folders
    variables: Mapping[str, Any]  # what it would get for a sample row
    required: bool = True  # a missing optional template (an HTML part) is not a problem


@dataclass(frozen=True)
class RunStart:
    """Where a kind starts one run of a launch: when it is first due (a simulation's send moment) and the context
    it starts with (what the kind chose for it, e.g. the attack)."""

    due_at: datetime
    context: Mapping[str, Any]


@dataclass(frozen=True)
class LaunchedRun:
    """A run a launch has just written, as the kind's ``launched`` sees it: no need to read it back."""

    id: int
    target_key: str
    target: Mapping[str, Any]
    due_at: datetime
    context: Mapping[str, Any]


@dataclass(frozen=True)
class JobOutcome:
    """What a kind's job did: whether it changed runs (which a worker must then advance) and, for people, how much."""

    changed_runs: bool = False
    summary: str = ""


@dataclass(frozen=True)
class KindJob:
    """Something the scheduler runs every ``seconds`` for a kind (gathering digests, sweeping reminders).

    The scheduler's job store keeps a reference to core's job runner with the kind's and the job's names, never the
    function itself, so ``id`` must stay the same across releases. ``also_in_work`` runs it in ``campaignkit work``
    too, after the worker has nothing due, and again while it changes runs.
    """

    id: str
    description: str  # for the System Task audit records
    run: Callable[[Any], JobOutcome]  # takes the runtime
    seconds: float
    also_in_work: bool = False


@dataclass(frozen=True)
class RetryPoint:
    """Runs a kind counts as failed although they ended (an access review's revocation that failed: completed with
    Result Failure), which a retry sends back to ``node``: `campaign retry --status <name>` and the API's
    ``status`` name it. ``audit`` starts each retry's audit details ("retry enforcement")."""

    description: str  # what they are, for people: "runs whose revocation failed"
    node: str
    audit: str
    status: str = "completed"
    facets: Mapping[str, str] = field(default_factory=dict)  # facet column -> value: {"result": "Failure"}


@dataclass(frozen=True)
class Listing:
    """The run listing a kind calls its history or results, as its CLI and API serve it and a console tab shows it:
    the columns, the filters it takes (each with the values it allows; empty: any value) and what it sorts by."""

    title: str
    columns: tuple[str, ...]
    filters: Mapping[str, tuple[str, ...]]
    sorts: tuple[str, ...]

    def check(self, filters: Mapping[str, Any], sort: str) -> None:
        """Refuses a filter or a sort the listing does not take, naming what it takes."""
        for name, value in filters.items():
            if name not in self.filters:
                raise CampaignkitError(f"{self.title}: no filter {name!r}; it filters by {', '.join(self.filters)}")
            allowed = self.filters[name]
            if value is not None and allowed and value not in allowed:
                raise CampaignkitError(f"--{name}: one of {', '.join(allowed)}")
        if sort not in self.sorts:
            raise CampaignkitError(f"--sort: one of {', '.join(self.sorts)}")

    def describe(self) -> dict[str, Any]:
        return {"title": self.title, "columns": list(self.columns),
                "filters": {name: list(values) for name, values in self.filters.items()}, "sorts": list(self.sorts)}


@dataclass(frozen=True)
class ConsoleTab:
    """One of a kind's tabs on a campaign's console page: a template of the kind's own (found through its
    ``template_dir``, e.g. ``console/<kind>/<tab>.html``) and the plain values it renders with."""

    template: str
    variables: Mapping[str, Any]


@dataclass(frozen=True)
class ConsolePerson:
    """Who is signed in to the console, as a kind's console routes and tab templates see them. A form that changes
    something posts ``csrf``; an audit record names ``user_name`` from ``client_ip``
    (``Actor(person.user_name, None, person.client_ip)``)."""

    user_name: str
    role: str  # admin, operator or auditor
    may_operate: bool  # runs campaigns (launch, pause, terminate, retry...): operators and admins
    csrf: str  # the session's CSRF token
    client_ip: str | None = None


class ConsoleGate(Protocol):
    """The console's sign-in, for a kind's own console routes (``WebContext.console``): the pages and forms a kind
    adds next to its ``console_tabs`` (an export, a confirmation page) need the signed-in person, as core's do."""

    def page(self, request: Request, render: Callable[[ConsolePerson], Response], *,
             operate: bool = False) -> Response:
        """``render(person)`` for a signed-in person (with ``operate``, only an operator or admin: anyone else gets
        a 403 page); the sign-in page for anyone not signed in."""
        ...

    async def posted(self, request: Request, *, operate: bool = True,
                     ) -> tuple[ConsolePerson, Mapping[str, list[str]]] | Response:
        """The person and fields of a state-changing form: signed in, an operator or admin (unless ``operate`` is
        False), posted from the console's own origin with the session's CSRF token (field ``csrf``). Anything else
        is answered here: return the Response as it is."""
        ...

    def render(self, person: ConsolePerson, template: str, status_code: int = 200, /,
               **variables: Any) -> Response:
        """A console page from ``template`` (a path under the template folders: the kind's own, extending
        ``console/base.html``, or core's ``console/message.html`` with ``message``), rendered autoescaped with the
        person as ``session`` and the console's page headers."""
        ...


@dataclass(frozen=True)
class WebContext:
    """What a kind's routes may use: the runtime, the refusals recorder (rate-limited, coalesced audit), and the
    console's sign-in for its console pages (None outside ``create_app``)."""

    runtime: Any
    rejections: Rejections
    console: ConsoleGate | None = None


class CampaignKind(Component):
    """One family of campaigns. Subclasses set ``name`` (the ``kind:`` of a definition) and what they need."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Settings: ClassVar[type[BaseModel]] = NoSettings
    # Which of the run's facet columns (ENGINE_FACETS) this kind's steps set: a step setting another one fails.
    facets: ClassVar[tuple[str, ...]] = ("assignee", "response", "response_at", "result")
    # Events only campaignkit itself raises in this kind's runs: the API and the CLI cannot post them.
    system_events: ClassVar[frozenset[str]] = frozenset()
    # Names its templates may use besides the engine's own (target, context, run, now).
    template_names: ClassVar[frozenset[str]] = frozenset()
    # Its own templates: searched after the admins' template_dirs (which override them) and before core's.
    template_dir: ClassVar[Path | None] = None
    # Audit sub-types it writes (name -> (audit type, when it is written)), for the audit vocabulary.
    audit_sub_types: ClassVar[Mapping[str, tuple[str, str]]] = {}
    # Its run listing (an access review's Run History, a simulation's results), if it has one.
    listing: ClassVar[Listing | None] = None
    # The tabs it adds to a campaign's page in the console, in order.
    console_tabs: ClassVar[tuple[str, ...]] = ()
    # Whether a new version moves the runs in progress onto it (campaigns/live_edit.py), or every run finishes on
    # the version it started on.
    moves_runs_on_edit: ClassVar[bool] = False
    # Finished runs it counts as failed, which a retry may send back to a node, by name (RetryPoint).
    retry_points: ClassVar[Mapping[str, RetryPoint]] = {}
    # Path prefixes of the pages its router serves to recipients ("/review/"): a client refused too often there
    # (bad or expired links) gets 429 before a signature is checked or a row read. /api/ is always covered.
    link_paths: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What clients (the API, the console) learn about the kind of a campaign."""
        return {"name": cls.name, "description": cls.description, "facets": list(cls.facets),
                "listing": cls.listing.describe() if cls.listing else None, "console_tabs": list(cls.console_tabs)}

    def settings(self, raw: Mapping[str, Any]) -> BaseModel:
        """A campaign's ``settings:`` as the kind's model; pydantic's ValidationError names the key."""
        return self.Settings.model_validate(dict(raw))

    def workflow(self, settings: Any) -> Mapping[str, Any] | None:
        """The workflow a campaign of this kind runs, built from its settings; None: the one its file writes."""
        return None

    def audience_key(self, settings: Any) -> list[str] | None:
        """The audience columns that make a run's key, when the definition does not say."""
        return None

    def target_problem(self, settings: Any, attributes: Mapping[str, Any]) -> str | None:
        """Why an audience row cannot be launched (checked for every row; the launch names them all)."""
        return None

    def launch_planner(self, settings: Any, launched_at: datetime) -> Callable[[Target], RunStart] | None:
        """How each run of a launch starts, for kinds that spread or prepare their runs: asked once per launch,
        then called once per distinct target, in the launch's transaction. None: every run is due at once, with an
        empty context."""
        return None

    def launched(self, conn: Connection, settings: Any, campaign_id: str, launch_id: int,
                 batch: Sequence[LaunchedRun], now: datetime) -> None:
        """Write the kind's own rows (its results table) for a batch of runs the launch has just written, in the
        launch's transaction: a failure here rolls the whole launch back. Called once per batch of up to a few
        thousand runs; a target repeated in a later batch comes again with the same run id."""

    def template_variables(self, settings: Any, ctx: StepContext) -> dict[str, Any]:
        """Variables the kind adds to its runs' templates (named in ``template_names``): plain values only."""
        return {}

    def extra_templates(self, settings: Any, row: Mapping[str, Any], now: datetime) -> list[KindTemplate]:
        """Templates the kind renders outside the workflow, to be tried with a sample row at create and launch."""
        return []

    def launch_question(self, settings: Any, count_targets: Callable[[], int]) -> str | None:
        """A consequence the operator must confirm (``--yes``) before a launch, e.g. accesses it may remove."""
        return None

    def run_details(self, conn: Connection, run_id: int) -> dict[str, Any]:
        """What a run's timeline shows besides its steps (the digests that carried it, say)."""
        return {}

    @classmethod
    def cli(cls) -> typer.Typer | None:
        """Commands mounted as ``campaignkit <name> ...`` (underscores in the name become dashes). A class method:
        the CLI mounts them before any runtime exists; a command that needs one calls ``ctx.obj()`` (``ctx`` its
        ``typer.Context``), which builds it once per command from the settings in effect, or raises a
        CampaignkitError if the database is not initialised."""
        return None

    @classmethod
    def cli_aliases(cls) -> Mapping[str, Callable[..., Any]]:
        """Commands kept where they were before the kind had its own group, by path ("history",
        "campaign retry-enforcement"), so that scripts written for them keep working."""
        return {}

    def router(self, web: WebContext) -> APIRouter | None:
        """HTTP routes: the kind's API listings and console pages (and, for a kind without ``link_router``, its
        recipients' pages)."""
        return None

    def link_router(self, web: WebContext) -> Router | None:
        """The recipients' pages and tracking endpoints, every path under ``link_paths``: served by an app of the
        kind's link routes only, reached without matching the console's and the API's routes first. A FastAPI
        APIRouter, or a plain Starlette Router where FastAPI's matching and parameter solving would cost more than
        the answer (a tracking pixel). None: they are in ``router``, which then serves those paths too."""
        return None

    def jobs(self) -> list[KindJob]:
        """What the scheduler runs for this kind."""
        return []

    def console_tab(self, tab: str, campaign_id: str, query: Mapping[str, str]) -> ConsoleTab | None:
        """The content of ``tab`` (one of ``console_tabs``) on a campaign's page, for the page's query parameters
        (its filters, sort and page; a CampaignkitError is shown as the tab's message). Links and forms in it keep
        ``tab`` among their parameters. Its template also gets ``person`` (ConsolePerson), to offer a change only to
        those who may make it; the change itself goes through the kind's own routes (``WebContext.console``)."""
        return None


class FreeSettings(BaseModel):
    """A journey's ``settings:`` are its author's own: any key, read by its templates through nothing else."""

    model_config = ConfigDict(extra="allow")


class Journey(CampaignKind):
    """journey: a workflow as the definition writes it (entered campaign, send email, delays, branches, ...)."""

    name = JOURNEY
    description = "A workflow graph per contact, as the definition's nodes and edges write it."
    Settings = FreeSettings
    moves_runs_on_edit = True  # a new version is the journey from now on, for the contacts already in it too
