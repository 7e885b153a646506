"""The API's reference for signed-in people, at /api/docs: drawn from the app's own OpenAPI document on the server
(no script, nothing from a CDN). Scripts read the same document at /openapi.json with a token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from . import Console

API_DOCS = "/api/docs"  # a console page under /api/: the bearer-token gate lets it through to the session check
METHODS = ("get", "post", "put", "patch", "delete")
NEEDS = "x-campaignkit-needs"  # an operation's own rule, where it is stricter than its method's (admins only)


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get(API_DOCS)
    def api_docs(request: Request) -> Response:
        return console.page(request, lambda session: console.render(
            "api_docs", session=session, operations=operations(request.app.openapi())))

    return routes


def operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Each operation of the OpenAPI document, in path order: method, path, what it does, its parameters, body and
    answers, and the token it needs (reading: any account's; anything else: an operator's or admin's write token)."""
    found = []
    for path, item in sorted(document.get("paths", {}).items()):
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            body = operation.get("requestBody", {}).get("content", {})
            found.append({
                "method": method.upper(), "path": path, "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "parameters": [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                                "type": _type(p.get("schema", {})), "description": p.get("description", "")}
                               for p in operation.get("parameters", [])],
                "body": ", ".join(f"{media} ({_type(spec.get('schema', {}))})" for media, spec in body.items()),
                "responses": sorted(operation.get("responses", {})),
                "needs": operation.get(NEEDS) or ("a token of any account" if method == "get"
                                                  else "a write token of an operator or admin"),
            })
    return found


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return str(schema.get("type", "any"))
