"""attestation: each person of the audience confirms a policy through a personal signed link.

The kind validates its settings (settings.py), builds its workflow from them (workflow.py), gives templates the
policy and the person's link (links.py), serves the confirmation page (routes.py) and adds ``campaignkit attestation
status`` (cli.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaignkit.core import CampaignKind, StepContext, WebContext

from .settings import AttestationSettings
from .workflow import ATTESTATION_RECORDED, ATTESTED_EVENT, attestation_workflow

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter


class Attestation(CampaignKind):
    """attestation: people confirm that they have read a policy; one run per person."""

    name = "attestation"
    description = "Each person confirms a policy (acceptable use, code of conduct) through a personal signed link."
    Settings = AttestationSettings
    facets = ("response", "response_at")  # Attested / No Response / Message Delivery Failed, and when
    system_events = frozenset({ATTESTED_EVENT})  # only the confirmation page raises it
    template_names = frozenset({"policy", "links"})
    template_dir = Path(__file__).resolve().parent / "templates"
    audit_sub_types = {
        ATTESTATION_RECORDED: (
            "Interaction Event",
            "a person confirmed the policy through their link (as their address, from the client's address)",
        )
    }
    link_paths = ("/attest/",)  # refused too often, a client gets 429 here before a link is checked

    def workflow(self, settings: Any) -> Mapping[str, Any]:
        return attestation_workflow(settings)

    def audience_key(self, settings: Any) -> list[str]:
        """One run per address, unless the definition's audience names its own key."""
        return [settings.email_column]

    def target_problem(self, settings: Any, attributes: Mapping[str, Any]) -> str | None:
        return settings.target_problem(attributes)  # type: ignore[no-any-return]

    def template_variables(self, settings: Any, ctx: StepContext) -> dict[str, Any]:
        """``policy``: title, url and text; ``links.attest``: the person's signed link, a plain string, bound to
        the run and to its recipient, expiring at the cycle's deadline."""
        from .links import attest_link

        s: AttestationSettings = settings
        policy = s.policy
        return {
            "policy": {"title": policy.title, "url": policy.url or "", "text": policy.text or ""},
            "links": {"attest": attest_link(ctx.runtime, ctx.run_id, s.recipient(ctx.target), ctx.deadline, ctx.now)},
        }

    @classmethod
    def cli(cls) -> typer.Typer:
        from .cli import commands

        return commands()

    def router(self, web: WebContext) -> APIRouter:
        from .routes import attestation_router

        return attestation_router(web)
