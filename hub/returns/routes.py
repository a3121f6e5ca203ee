"""The console's returns: GET /api/returns, a store's (or every store in the user's reach) returns, newest first,
a keyset page at a time, with their items and what was flagged for review."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console import keyset
from hub.console.context import Console
from hub.identity.access import authorize, tenant_of
from novapos import validators
from novapos.adapters.http import ApiError, route
from novapos.roles import Permission

MAX_PAGE = 200
LISTED = (
    "SELECT id, event_id, store, till, cashier, approver, reason, currency, original_order, original_store,"
    " total_minor, refunded_minor, restocking_fee_minor, refund_methods, review, returned_at, received_at,"
    " customer_id, refunds::text AS refunds,"
    " (SELECT coalesce(json_agg(json_build_object('kind', kind, 'line_no', line_no, 'original_line', original_line,"
    "   'sku', sku, 'name', name, 'quantity', quantity, 'amount_minor', amount_minor, 'condition', condition,"
    "   'restock', restock) ORDER BY kind DESC, line_no), '[]') FROM return_lines l"
    "   WHERE l.event_id = returns.event_id) AS lines"
    " FROM returns WHERE tenant = $1 AND ($2::text[] IS NULL OR store = ANY($2)) AND ($3::bigint IS NULL OR id < $3)"
    " ORDER BY id DESC LIMIT $4")
STORE_EXISTS = "SELECT EXISTS (SELECT 1 FROM stores WHERE tenant = $1 AND store = $2) AS found"

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
OPENAPI: dict[str, Any] = {"paths": {"/api/returns": {"get": {
    "summary": "Returns and exchanges from the stores, newest first (by the hub's arrival order): each with its "
               "items (kind returned or new), the refund, and `review` (a return beyond what was sold, of an order "
               "the hub does not know, or of another SKU: kept, since the store paid out)",
    "parameters": [
        {"name": "tenant", "in": "query", "required": False, "description": "left out: the user's tenant "
         "(another is not found)", "schema": {"type": "string"}},
        {"name": "store", "in": "query", "required": False, "description": "only this store's (404: not the "
         "tenant's; 403: outside the user's reach); left out: every store the user may see",
         "schema": {"type": "string", "pattern": f"^{validators.TOKEN_PATTERN}$"}},
        keyset.parameter("id, newest first"),
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}}],
    "responses": {"200": {"description": "a page of returns", "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/ReturnsPage"}}}},
        "400": {"description": "a bad limit or cursor", "content": _ERROR},
        "401": {"description": "not signed in", "content": _ERROR},
        "403": {"description": "the user may not see this store's sales", "content": _ERROR},
        "404": {"description": "no such store", "content": _ERROR}}}}},
    "schemas": {"ReturnsPage": keyset.schema("Return", MAX_PAGE), "Return": {"type": "object"}}}


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}")
    try:
        return validators.integer("limit", int(raw), 1, MAX_PAGE)
    except validators.Invalid as exc:
        raise ApiError(400, str(exc)) from None


def routes(console: Console) -> Sequence[BaseRoute]:
    async def returns(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_SALES)
        tenant_of(principal, request.query_params.get("tenant"))  # another tenant's: 404
        reach = principal.reach(Permission.VIEW_SALES)
        limit = _limit(request)
        after = keyset.after(request.query_params, "int")
        stores = reach.store_filter()
        if "store" in request.query_params:
            try:
                store = validators.token("store", request.query_params["store"])
            except validators.Invalid:
                raise ApiError(404, "there is no such store") from None
            if not (await console.query(STORE_EXISTS, principal.tenant, store))[0]["found"]:
                raise ApiError(404, f"there is no store {store}")
            principal.require(Permission.VIEW_SALES, store=store)
            stores = [store]
        rows = [] if stores == [] else await console.query(LISTED, principal.tenant, stores,
                                                           None if after is None else after[0], limit + 1)
        rows = [{**row, "lines": json.loads(row["lines"]), "refunds": json.loads(row["refunds"])} for row in rows]
        return JSONResponse(keyset.page(rows, limit, lambda item: (item["id"],)))

    return [route("/api/returns", GET=returns)]
