"""/openapi.json: the console API as every domain describes its own routes, with their bounds."""

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
        "/static/console.js": {"get": {"summary": "The console page's script (the page itself is /)",
                                       "responses": {"200": {"description": "text/javascript"}}}},
        "/static/console.css": {"get": {"summary": "The console page's style sheet",
                                        "responses": {"200": {"description": "text/css"}}}},
    },
    "responses": {
        "BadRequest": {"description": "a parameter is out of bounds; the error says which and what is allowed",
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "NotFound": {"description": "no such item",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "Conflict": {"description": "the item is not in a state that allows this",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    },
    "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}},
}


def document(of: Sequence[Domain]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the console and the given domains' routes."""
    paths = dict(_COMMON["paths"])
    schemas = dict(_COMMON["schemas"])
    for domain in of:
        paths.update(domain.openapi.get("paths", {}))
        schemas.update(domain.openapi.get("schemas", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "NovaPOS hub console API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "responses": _COMMON["responses"]},
    }
