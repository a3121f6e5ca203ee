"""The console's view of sales: the store overview and the recent sales."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.context import Console
from novapos import validators
from novapos.adapters.http import ApiError
from novapos.validators import MAX_MINOR

MAX_SALES_SHOWN = 500

OPENAPI = {"paths": {
    "/api/stores": {"get": {
        "summary": "Per store: sales, takings, last sequence number, missing and reused sequence numbers",
        "responses": {"200": {"description": "one entry per store", "content": {"application/json": {"schema": {
            "type": "array", "items": {"$ref": "#/components/schemas/Store"}}}}}},
    }},
    "/api/sales": {"get": {
        "summary": "The most recent sales, newest first",
        "parameters": [{"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SALES_SHOWN, "default": 50}}],
        "responses": {
            "200": {"description": "newest first", "content": {"application/json": {"schema": {
                "type": "array", "maxItems": MAX_SALES_SHOWN, "items": {"$ref": "#/components/schemas/Sale"}}}}},
            "400": {"$ref": "#/components/responses/BadRequest"}},
    }},
}, "schemas": {
    "Store": {"type": "object", "properties": {
        "tenant": {"type": "string"}, "store": {"type": "string"}, "sales": {"type": "integer", "minimum": 0},
        "total_minor": {"type": "integer"}, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "last_seq": {"type": "integer", "minimum": 1}, "missing": {"type": "integer", "minimum": 0},
        "reused": {"type": "integer", "minimum": 0}, "last_sale": {"type": "string", "format": "date-time"}}},
    "Sale": {"type": "object", "properties": {
        "event_id": {"type": "string", "format": "uuid"}, "tenant": {"type": "string"}, "store": {"type": "string"},
        "seq": {"type": "integer", "minimum": 1}, "till": {"type": "string"}, "cashier": {"type": "string"},
        "total_minor": {"type": "integer", "minimum": 0, "maximum": MAX_MINOR},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}, "completed_at": {"type": "string", "format": "date-time"}}},
}}


def routes(console: Console) -> Sequence[BaseRoute]:
    async def stores(_request: Request) -> Response:
        return JSONResponse(await console.query(
            "SELECT s.tenant, s.store, count(*) AS sales, sum(s.total_minor)::bigint AS total_minor, min(s.currency) AS currency,"
            " max(s.seq) AS last_seq, max(s.completed_at) AS last_sale,"
            " (SELECT max(i.seq) - count(DISTINCT i.seq) FROM inbox i"
            "  WHERE i.tenant = s.tenant AND i.store = s.store) AS missing,"
            " (SELECT count(*) - count(DISTINCT i.seq) FROM inbox i"
            "  WHERE i.tenant = s.tenant AND i.store = s.store) AS reused"
            " FROM sales s GROUP BY s.tenant, s.store ORDER BY s.tenant, s.store"))

    async def sales(request: Request) -> Response:
        try:
            limit = validators.integer("limit", int(request.query_params.get("limit", "50")), 1, MAX_SALES_SHOWN)
        except validators.Invalid as exc:
            raise ApiError(400, str(exc)) from None
        except ValueError:
            raise ApiError(400, "limit must be a whole number") from None
        return JSONResponse(await console.query(
            "SELECT event_id, tenant, store, seq, till, cashier, total_minor, currency, completed_at"
            " FROM sales ORDER BY completed_at DESC LIMIT $1", limit))

    return [Route("/api/stores", stores), Route("/api/sales", sales)]
