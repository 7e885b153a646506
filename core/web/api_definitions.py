"""The API's campaign definitions: create a campaign (POST /api/campaigns), give it a new version (PUT
/api/campaigns/{id}/definition), read the current one (GET). The body is the definition itself, YAML or JSON, as a
file would hold it, so that the problems' lines are the body's lines. Writing needs a write token of an operator or
an admin (the gate in limits.py); the change is audited as the token's account. The console saves through the same
function (campaigns/editing.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from ..audit import Actor
from ..campaigns.editing import Saved, current_definition, save_definition
from ..definitions.problems import problems_of
from ..definitions.remote import sent_name
from ..errors import DefinitionError, NotFound
from ..runtime import Runtime
from .limits import client_ip

MEDIA_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json", "text/plain")
DEFAULT_NAME = "<request>"
BODY = {"requestBody": {"required": True, "description": "The definition, as a file would hold it (UTF-8).",
                        "content": {"application/yaml": {"schema": {"type": "string"}},
                                    "application/json": {"schema": {"type": "object"}}}}}
Filename = Annotated[str, Query(max_length=200, description="The name the problems give the definition (its file's "
                                                            "name, say); default <request>.")]


def api_definitions_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/campaigns")

    async def save(request: Request, filename: str, campaign_id: str | None = None) -> dict[str, Any]:
        media, _, parameters = request.headers.get("content-type", "").partition(";")
        if media.strip().lower() not in MEDIA_TYPES:
            raise HTTPException(415, f"send the definition as the body, with Content-Type application/yaml or "
                                     f"application/json, not {media.strip()[:60] or 'none'}")
        charset = next((value.strip().strip('"').lower() for key, _, value in
                        (part.partition("=") for part in parameters.split(";")) if key.strip().lower() == "charset"),
                       "utf-8")
        if charset not in ("utf-8", "utf8"):
            raise HTTPException(415, f"definitions are UTF-8, not {charset[:40]}")
        body = await request.body()
        name = sent_name(filename, DEFAULT_NAME)
        actor = Actor(request.state.principal.user_name, None, client_ip(request))
        try:
            saved: Saved = await run_in_threadpool(save_definition, runtime, body, name, actor, campaign_id)
        except DefinitionError as exc:  # every problem, each at its line, column and node
            raise HTTPException(422, [problem.as_dict() for problem in problems_of(exc, name)]) from None
        return {"id": saved.campaign_id, "name": saved.name, "version": saved.version, "created": saved.created}

    @router.post("", status_code=201, openapi_extra=BODY)
    async def create(request: Request, response: Response, filename: Filename = DEFAULT_NAME) -> dict[str, Any]:
        """A new campaign from the definition in the body; 422 lists its problems, 409 if its name is taken."""
        saved = await save(request, filename)
        response.headers["Location"] = f"/api/campaigns/{saved['id']}"
        return saved

    @router.put("/{campaign_id}/definition", openapi_extra=BODY)
    async def update(campaign_id: str, request: Request, filename: Filename = DEFAULT_NAME) -> dict[str, Any]:
        """The campaign's definition replaced by the body's: a campaign with runs gets a new version, its runs keep
        theirs."""
        return await save(request, filename, campaign_id)

    @router.get("/{campaign_id}/definition")
    def definition(campaign_id: str) -> dict[str, Any]:
        """The current definition as it was written (``as_written`` false: as stored, for a version from before
        definitions were kept as written)."""
        try:
            current = current_definition(runtime, campaign_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return {"id": current.campaign_id, "name": current.name, "version": current.version,
                "source": current.source, "text": current.text, "as_written": current.as_written}

    return router
