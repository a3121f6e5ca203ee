"""/openapi.json: the console API as every domain describes its own routes, with their bounds.

Every /api route but sign-in answers 401 without a session and 403 when the user's roles do not reach what
was asked (or a change lacks the CSRF header): domains reference AUTH_RESPONSES, and `document` adds them to
any /api operation that does not say otherwise, so the document never omits them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub.domains import Domain

_COMMON: dict[str, Any] = {
    "paths": {
        "/healthz": {"get": {"summary": "Ready to serve: 200 once PostgreSQL answers, 503 while starting or failing",
                             "responses": {"200": {"description": "ok"}, "503": {
                                 "description": "starting, failing, or degraded: cut off from NATS for over 10 s"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}},
    },
    "responses": {
        "BadRequest": {"description": "a parameter is out of bounds; the error says which and what is allowed",
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "NotFound": {"description": "no such item",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "Unauthorized": {"description": "not signed in, or the session ended: sign in (POST /api/login)",
                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "Forbidden": {"description": "the signed-in user's roles do not reach this (the error names who can), or a "
                                     "change lacks the session's X-CSRF-Token header; nothing changed",
                      "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "Conflict": {"description": "the item is not in a state that allows this",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    },
    "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}},
}


AUTH_RESPONSES: dict[str, Any] = {"401": {"$ref": "#/components/responses/Unauthorized"},
                                  "403": {"$ref": "#/components/responses/Forbidden"}}
"""The answers of authorize() (hub.identity.access), for a route's "responses"."""
SIGN_IN = "/api/login"
"""The one /api route a person reaches without a session."""


def _with_auth(path: str, item: dict[str, Any]) -> dict[str, Any]:
    if not path.startswith("/api/") or path == SIGN_IN:
        return item
    return {method: {**operation, "responses": {**AUTH_RESPONSES, **operation.get("responses", {})}}
            if isinstance(operation, dict) and method in ("get", "post", "put", "patch", "delete") else operation
            for method, operation in item.items()}


def document(of: Sequence[Domain]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the console and the given domains' routes."""
    paths = dict(_COMMON["paths"])
    schemas = dict(_COMMON["schemas"])
    for domain in of:
        paths.update({path: _with_auth(path, item) for path, item in domain.openapi.get("paths", {}).items()})
        schemas.update(domain.openapi.get("schemas", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "NovaPOS hub console API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "responses": _COMMON["responses"]},
    }
