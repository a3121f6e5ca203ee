"""The console's view of ingest: dead letters (why an event was refused), and their re-drive after a fix."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.ingest.dead_letters import NotRedrivable, redrive
from novapos.adapters.http import ApiError, route
from novapos.validators import describe

DEAD_LETTERS_SHOWN = 100
DEAD_LETTERS_SQL = ("SELECT id, event_id, subject, reason, received_at, redriven_at, redrive_outcome"
                    " FROM dead_letters ORDER BY id DESC LIMIT $1")

OPENAPI = {"paths": {
    "/api/dead-letters": {"get": {
        "summary": f"The {DEAD_LETTERS_SHOWN} newest dead letters: events the hub refused, with the reason",
        "responses": {"200": {"description": "newest first", "content": {"application/json": {"schema": {
            "type": "array", "maxItems": DEAD_LETTERS_SHOWN, "items": {"$ref": "#/components/schemas/DeadLetter"}}}}}},
    }},
    "/api/dead-letters/{id}/redrive": {"post": {
        "summary": "Re-apply a dead letter through ingest after its cause was fixed; the letter is kept and marked",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}],
        "responses": {
            "200": {"description": "what came of it", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"id": {"type": "integer"}, "outcome": {
                    "type": "string", "enum": ["applied", "already applied", "refused again: see the newer dead letter"]}}}}}},
            "404": {"$ref": "#/components/responses/NotFound"},
            "409": {"$ref": "#/components/responses/Conflict"},
            "503": {"description": "the hub cannot apply events right now; try again"}},
    }},
}, "schemas": {
    "DeadLetter": {"type": "object", "properties": {
        "id": {"type": "integer", "minimum": 1}, "event_id": {"type": ["string", "null"], "format": "uuid"},
        "subject": {"type": "string"}, "reason": {"type": "string"},
        "received_at": {"type": "string", "format": "date-time"},
        "redriven_at": {"type": ["string", "null"], "format": "date-time"},
        "redrive_outcome": {"type": ["string", "null"]}}},
}}


def routes(console: Console) -> Sequence[BaseRoute]:
    async def dead_letters(_request: Request) -> Response:
        return JSONResponse(await console.query(DEAD_LETTERS_SQL, DEAD_LETTERS_SHOWN))

    async def redrive_one(request: Request) -> Response:
        raw = request.path_params["id"]  # text: a 5000-digit "id" must be a 404, not int()'s ValueError
        letter = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else 0
        if not 1 <= letter < 2**63:
            raise ApiError(404, f"there is no dead letter {describe(raw)}")
        try:
            done = await console.seam.run(redrive, console.ready_pool(), letter, console.tenants)
        except NotRedrivable as exc:
            raise ApiError(404 if exc.missing else 409, str(exc)) from None
        except Exception as exc:
            raise ApiError(503, f"the hub cannot apply events right now ({type(exc).__name__}); "
                                "the letter is unchanged, try again") from None
        return JSONResponse({"id": done.id, "outcome": done.outcome})

    return [route("/api/dead-letters", GET=dead_letters),
            route("/api/dead-letters/{id}/redrive", POST=redrive_one)]
