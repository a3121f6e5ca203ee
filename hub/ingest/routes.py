"""The console's view of ingest: dead letters (why an event was refused), their re-drive after a fix, and the
stores whose sequence numbers have gaps or were reused.

Every route authorizes first (hub.identity.access) and shows only the user's tenant and the stores their
role reaches: dead letters need dead_letters.view, a re-drive dead_letters.redrive at the letter's store
(audited), sequence issues fleet.view. Another tenant's letter is a 404, another region's a 403.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console import keyset
from hub.console.context import Console
from hub.console.openapi import AUTH_RESPONSES
from hub.identity.access import authorize
from hub.ingest.dead_letters import NotRedrivable, redrive
from novapos.adapters.http import ApiError, route
from novapos.roles import Permission
from novapos.validators import describe

DEAD_LETTERS_SHOWN = 100
_LETTER = "id, event_id, subject, reason, received_at, redriven_at, redrive_outcome"
TENANT_DEAD_LETTERS_SQL = (f"SELECT {_LETTER} FROM dead_letters WHERE (tenant, id) > ($2, 0) AND (tenant, id) < ($2, $3)"
                           " ORDER BY tenant DESC, id DESC LIMIT $1")
"""A page of the tenant's letters: one backward walk of the (tenant, id) index from the cursor. Written as a
range of (tenant, id) rather than tenant = $2, so that only that index gives the order: with an equality the
planner may walk the primary key instead, through every other tenant's newer letters."""
STORES_DEAD_LETTERS_SQL = (
    f"SELECT {_LETTER} FROM unnest($3::text[]) AS s(store) CROSS JOIN LATERAL ("
    f" SELECT {_LETTER} FROM dead_letters d WHERE d.tenant = $2 AND d.store = s.store AND d.id < $4"
    " ORDER BY d.id DESC LIMIT $1) d ORDER BY id DESC LIMIT $1")
"""A page of some stores' letters: each store's newest after the cursor from the (tenant, store, id) index,
merged; never a walk over other stores' letters, however many there are."""
LETTER_SQL = "SELECT tenant, store FROM dead_letters WHERE id = $1"
MAX_ID = 2**63 - 1
SEQUENCE_SHOWN = 100
SEQUENCE_STORES_SHOWN = 500
SEQUENCE_SQL = (
    # Read from the figures and lists the ingest transaction keeps (hub.ingest.store_stats): no inbox scan.
    "SELECT st.tenant, st.store, st.last_seq, st.last_seq - st.seqs AS missing, st.events - st.seqs AS reused,"
    " (SELECT coalesce(json_agg(json_build_object('first', g.first_seq, 'last', g.last_seq, 'found_at', g.found_at)"
    "   ORDER BY g.first_seq DESC), '[]')::text FROM (SELECT * FROM store_seq_gaps g"
    "   WHERE (g.tenant, g.store) = (st.tenant, st.store) ORDER BY g.first_seq DESC LIMIT $1) g) AS gaps,"
    " (SELECT coalesce(json_agg(json_build_object('seq', r.seq, 'event_id', r.event_id, 'found_at', r.found_at)"
    "   ORDER BY r.seq DESC, r.found_at DESC), '[]')::text FROM (SELECT * FROM store_seq_reuses r"
    "   WHERE (r.tenant, r.store) = (st.tenant, st.store) ORDER BY r.seq DESC, r.found_at DESC LIMIT $1) r) AS reuses"
    " FROM store_stats st WHERE (st.last_seq > st.seqs OR st.events > st.seqs)"
    " AND st.tenant = $3 AND ($4::text[] IS NULL OR st.store = ANY($4)) AND ($5::text IS NULL OR st.store > $5)"
    " ORDER BY st.tenant, st.store LIMIT $2")

OPENAPI = {"paths": {
    "/api/sequence-issues": {"get": {
        "summary": ("Stores whose sequence numbers have gaps (never arrived) or were reused by another event id: "
                    f"the counts, and the {SEQUENCE_SHOWN} highest gaps and reuses of each"),
        "parameters": [keyset.parameter("store")],
        "responses": {"200": {"description": "by store", "content": {"application/json": {
            "schema": keyset.schema("SequenceIssues", SEQUENCE_STORES_SHOWN)}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, **AUTH_RESPONSES},
    }},
    "/api/dead-letters": {"get": {
        "summary": f"Dead letters of the stores in reach, {DEAD_LETTERS_SHOWN} a page, newest first: events the hub "
                   "refused, with the reason",
        "parameters": [keyset.parameter("id, newest first")],
        "responses": {"200": {"description": "newest first", "content": {"application/json": {
            "schema": keyset.schema("DeadLetter", DEAD_LETTERS_SHOWN)}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, **AUTH_RESPONSES},
    }},
    "/api/dead-letters/{id}/redrive": {"post": {
        "summary": "Re-apply a dead letter through ingest after its cause was fixed; the letter is kept and marked; "
                   "needs dead_letters.redrive at the letter's store",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}],
        "responses": {
            "200": {"description": "what came of it", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"id": {"type": "integer"}, "outcome": {
                    "type": "string", "enum": ["applied", "already applied", "refused again: see the newer dead letter"]}}}}}},
            **AUTH_RESPONSES,
            "404": {"$ref": "#/components/responses/NotFound"},
            "409": {"$ref": "#/components/responses/Conflict"},
            "503": {"description": "the hub cannot apply events right now; try again"}},
    }},
}, "schemas": {
    "SequenceIssues": {"type": "object", "properties": {
        "tenant": {"type": "string"}, "store": {"type": "string"}, "last_seq": {"type": "integer", "minimum": 0},
        "missing": {"type": "integer", "minimum": 0, "description": "numbers up to last_seq never seen"},
        "reused": {"type": "integer", "minimum": 0, "description": "events whose number an earlier event had"},
        "gaps": {"type": "array", "maxItems": SEQUENCE_SHOWN, "items": {"type": "object", "properties": {
            "first": {"type": "integer"}, "last": {"type": "integer"},
            "found_at": {"type": "string", "format": "date-time"}}}},
        "reuses": {"type": "array", "maxItems": SEQUENCE_SHOWN, "items": {"type": "object", "properties": {
            "seq": {"type": "integer"}, "event_id": {"type": "string", "format": "uuid"},
            "found_at": {"type": "string", "format": "date-time"}}}}}},
    "DeadLetter": {"type": "object", "properties": {
        "id": {"type": "integer", "minimum": 1}, "event_id": {"type": ["string", "null"], "format": "uuid"},
        "subject": {"type": "string"}, "reason": {"type": "string"},
        "received_at": {"type": "string", "format": "date-time"},
        "redriven_at": {"type": ["string", "null"], "format": "date-time"},
        "redrive_outcome": {"type": ["string", "null"]}}},
}}


def routes(console: Console) -> Sequence[BaseRoute]:
    async def dead_letters(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_DEAD_LETTERS)
        stores = principal.reach(Permission.VIEW_DEAD_LETTERS).store_filter()
        [before] = keyset.after(request.query_params, "int") or [MAX_ID]
        if stores is None:
            rows = await console.query(TENANT_DEAD_LETTERS_SQL, DEAD_LETTERS_SHOWN + 1, principal.tenant, before)
        else:
            rows = await console.query(STORES_DEAD_LETTERS_SQL, DEAD_LETTERS_SHOWN + 1, principal.tenant, stores, before)
        return JSONResponse(keyset.page(rows, DEAD_LETTERS_SHOWN, lambda row: [row["id"]]))

    async def redrive_one(request: Request) -> Response:
        principal = await authorize(console, request, Permission.REDRIVE)
        raw = request.path_params["id"]  # text: a 5000-digit "id" must be a 404, not int()'s ValueError
        letter = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else 0
        if not 1 <= letter <= MAX_ID:
            raise ApiError(404, f"there is no dead letter {describe(raw)}")
        found = await console.query(LETTER_SQL, letter)
        if not found or found[0]["tenant"] != principal.tenant:
            raise ApiError(404, f"there is no dead letter {letter}")
        principal.require(Permission.REDRIVE, store=found[0]["store"])
        try:
            done = await console.seam.run(redrive, console.ready_pool(), letter, console.tenants, principal.login)
        except NotRedrivable as exc:
            raise ApiError(404 if exc.missing else 409, str(exc)) from None
        except Exception as exc:
            raise ApiError(503, f"the hub cannot apply events right now ({type(exc).__name__}); "
                                "the letter is unchanged, try again") from None
        return JSONResponse({"id": done.id, "outcome": done.outcome})

    async def sequence_issues(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_FLEET)
        stores = principal.reach(Permission.VIEW_FLEET).store_filter()
        cursor = keyset.after(request.query_params, "token") or [None]
        rows = await console.query(SEQUENCE_SQL, SEQUENCE_SHOWN, SEQUENCE_STORES_SHOWN + 1, principal.tenant, stores,
                                   *cursor)
        answer = keyset.page(rows, SEQUENCE_STORES_SHOWN, lambda row: [row["store"]])
        answer["items"] = [{**row, "gaps": json.loads(row["gaps"]), "reuses": json.loads(row["reuses"])}
                           for row in answer["items"]]
        return JSONResponse(answer)

    return [route("/api/sequence-issues", GET=sequence_issues),
            route("/api/dead-letters", GET=dead_letters),
            route("/api/dead-letters/{id}/redrive", POST=redrive_one)]
