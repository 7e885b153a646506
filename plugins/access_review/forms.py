"""What a decision POST must look like before the review service sees it: a plain form from our own page.

A cross-site page can make a browser POST to a decision link it somehow learnt, but it cannot send our Origin, nor
(without reading our page) the page's nonce; a text/plain or JSON POST is not what our forms send. Each refusal is
one line for the audit trail (coalesced per client by Rejections).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from campaignkit.core.web.forms import FormRefused, form_value, own_form

from .decisions import CHOICES


@dataclass(frozen=True)
class DecisionForm:
    choice: str | None  # approve / revoke, None for anything else
    nonce: str
    runs: set[int] = field(default_factory=set)  # the items a review-all page showed


async def decision_form(request: Request, own_origin: str) -> DecisionForm:
    """The posted form, or FormRefused (403 cross-site, 415 not a form, 400 malformed)."""
    fields = await own_form(request, own_origin, max_fields=2000, what="decision POST",
                            use="decisions are taken with the buttons of the page")
    choice = form_value(fields, "choice")
    try:
        shown = {int(value) for value in fields.get("run", [])}
    except ValueError:
        raise FormRefused(400, "this form could not be read; nothing was changed",
                          "decision POST refused: malformed item list") from None
    return DecisionForm(choice if choice in CHOICES else None, form_value(fields, "nonce"), shown)
