"""The console's view of ingest: dead letters (why an event was refused)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.context import Console

DEAD_LETTERS_SHOWN = 100

OPENAPI = {"paths": {
    "/api/dead-letters": {"get": {
        "summary": f"The {DEAD_LETTERS_SHOWN} newest dead letters: events the hub refused, with the reason",
        "responses": {"200": {"description": "newest first", "content": {"application/json": {"schema": {
            "type": "array", "maxItems": DEAD_LETTERS_SHOWN, "items": {"$ref": "#/components/schemas/DeadLetter"}}}}}},
    }},
}, "schemas": {
    "DeadLetter": {"type": "object", "properties": {
        "id": {"type": "integer", "minimum": 1}, "event_id": {"type": ["string", "null"], "format": "uuid"},
        "subject": {"type": "string"}, "reason": {"type": "string"},
        "received_at": {"type": "string", "format": "date-time"}}},
}}


def routes(console: Console) -> Sequence[BaseRoute]:
    async def dead_letters(_request: Request) -> Response:
        return JSONResponse(await console.query(
            "SELECT id, event_id, subject, reason, received_at FROM dead_letters ORDER BY id DESC LIMIT $1",
            DEAD_LETTERS_SHOWN))

    return [Route("/api/dead-letters", dead_letters)]
