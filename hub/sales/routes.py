"""The console's view of sales: the store overview, the recent sales, and the price diffs to review."""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console.context import Console
from novapos import validators
from novapos.adapters.http import ApiError, route
from novapos.validators import CURRENCY_PATTERN, MAX_MINOR

MAX_SALES_SHOWN = 500
STORES_SQL = (
    # A few rows per store, whatever the history: the figures are kept current by the ingest transaction.
    "SELECT st.tenant, st.store, coalesce(sum(t.sales), 0)::bigint AS sales,"
    " coalesce(json_agg(json_build_object('currency', t.currency, 'minor', t.total_minor) ORDER BY t.currency)"
    "  FILTER (WHERE t.currency IS NOT NULL), '[]')::text AS totals,"
    # total_minor and currency as before, for a store that sells in one currency (null otherwise)
    " CASE WHEN count(t.currency) = 1 THEN sum(t.total_minor)::bigint END AS total_minor,"
    " CASE WHEN count(t.currency) = 1 THEN min(t.currency) END AS currency,"
    " st.last_seq, st.last_seq - st.seqs AS missing, st.events - st.seqs AS reused, max(t.last_sale) AS last_sale,"
    " (st.clock_skew_ms / 1000.0)::float8 AS clock_skew_s, st.last_received_at"
    " FROM store_stats st LEFT JOIN store_takings t ON (t.tenant, t.store) = (st.tenant, st.store)"
    " GROUP BY st.tenant, st.store ORDER BY st.tenant, st.store")
RECENT_SALES_SQL = ("SELECT event_id, tenant, store, seq, till, cashier, total_minor, currency, completed_at,"
                    " clock_suspect, received_at FROM sales ORDER BY received_at DESC LIMIT $1")
"""Newest by the hub's receive time: a store's clock (completed_at) may be years off."""
PRICE_DIFFS_SQL = ("SELECT d.event_id, d.line_no, d.tenant, d.store, s.till, s.seq, d.sku, d.sold_at, d.found_at, d.diff"
                   " FROM sale_price_diffs d JOIN sales s USING (event_id)"
                   " ORDER BY d.found_at DESC, d.event_id, d.line_no LIMIT $1")
"""Newest found first; within one ingest transaction (one found_at), by sale and line: a stable order."""

OPENAPI = {"paths": {
    "/api/stores": {"get": {
        "summary": "Per store: sales, takings, last sequence number, missing and reused sequence numbers",
        "responses": {"200": {"description": "one entry per store", "content": {"application/json": {"schema": {
            "type": "array", "items": {"$ref": "#/components/schemas/Store"}}}}}},
    }},
    "/api/sales": {"get": {
        "summary": "The most recently received sales, newest first",
        "parameters": [{"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SALES_SHOWN, "default": 50}}],
        "responses": {
            "200": {"description": "newest first", "content": {"application/json": {"schema": {
                "type": "array", "maxItems": MAX_SALES_SHOWN, "items": {"$ref": "#/components/schemas/Sale"}}}}},
            "400": {"$ref": "#/components/responses/BadRequest"}},
    }},
    "/api/price-diffs": {"get": {
        "summary": "Sale lines whose price snapshot differs from the catalog at the sale's time, newest first",
        "description": "Found by replay validation when the sale was ingested; the sale is kept as sold.",
        "parameters": [{"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SALES_SHOWN, "default": 50}}],
        "responses": {
            "200": {"description": "newest first", "content": {"application/json": {"schema": {
                "type": "array", "maxItems": MAX_SALES_SHOWN, "items": {"$ref": "#/components/schemas/PriceDiff"}}}}},
            "400": {"$ref": "#/components/responses/BadRequest"}},
    }},
}, "schemas": {
    "PriceDiff": {"type": "object", "properties": {
        "event_id": {"type": "string", "format": "uuid"}, "line_no": {"type": "integer", "minimum": 1},
        "tenant": {"type": "string"}, "store": {"type": "string"}, "till": {"type": "string"},
        "seq": {"type": "integer", "minimum": 1}, "sku": {"type": "string"},
        "sold_at": {"type": "string", "format": "date-time", "description": "the store's clock"},
        "found_at": {"type": "string", "format": "date-time", "description": "when the hub ingested the sale"},
        "diff": {"type": "object", "description": "canonical JSON as stored: line, sku, sold_at, v, catalog_version, "
                 "price (the catalog's price in force: scope, scope_id, effective_from, or null) and differences: "
                 "{name: {till, catalog}} for unknown_store, unknown_sku, no_price_in_force, unit_price, tax_class, "
                 "tax_rate_ppm, tax_included",
                 "properties": {"differences": {"type": "object", "additionalProperties": {
                     "type": "object", "properties": {"till": {}, "catalog": {}}}}}}}},
    "Store": {"type": "object", "properties": {
        "tenant": {"type": "string"}, "store": {"type": "string"}, "sales": {"type": "integer", "minimum": 0},
        "totals": {"type": "array", "items": {"type": "object", "properties": {
            "currency": {"type": "string", "pattern": f"^{CURRENCY_PATTERN}$"}, "minor": {"type": "integer"}}}},
        "total_minor": {"type": ["integer", "null"], "description": "takings, when the store sells in one currency"},
        "currency": {"type": ["string", "null"], "pattern": f"^{CURRENCY_PATTERN}$"},
        "last_seq": {"type": "integer", "minimum": 1}, "missing": {"type": "integer", "minimum": 0},
        "reused": {"type": "integer", "minimum": 0}, "last_sale": {"type": ["string", "null"], "format": "date-time",
                      "description": "when the hub received the store's latest sale (the hub's clock)"},
        "clock_skew_s": {"type": ["number", "null"],
                         "description": "hub receive time minus the store's clock, latest event; positive: behind"},
        "last_received_at": {"type": "string", "format": "date-time"}}},
    "Sale": {"type": "object", "properties": {
        "event_id": {"type": "string", "format": "uuid"}, "tenant": {"type": "string"}, "store": {"type": "string"},
        "seq": {"type": "integer", "minimum": 1}, "till": {"type": "string"}, "cashier": {"type": "string"},
        "total_minor": {"type": "integer", "minimum": 0, "maximum": MAX_MINOR},
        "currency": {"type": "string", "pattern": f"^{CURRENCY_PATTERN}$"}, "completed_at": {"type": "string", "format": "date-time"},
        "clock_suspect": {"type": "boolean", "description": "the time is implausible: the store's clock was wrong"},
        "received_at": {"type": "string", "format": "date-time", "description": "when the hub received it"}}},
}}


def routes(console: Console) -> Sequence[BaseRoute]:
    async def stores(_request: Request) -> Response:
        rows = await console.query(STORES_SQL)
        return JSONResponse([{**row, "totals": json.loads(row["totals"])} for row in rows])

    async def sales(request: Request) -> Response:
        return JSONResponse(await console.query(RECENT_SALES_SQL, _limit(request)))

    async def price_diffs(request: Request) -> Response:
        rows = await console.query(PRICE_DIFFS_SQL, _limit(request))
        return JSONResponse([{**row, "diff": json.loads(row["diff"])} for row in rows])

    return [route("/api/stores", GET=stores), route("/api/sales", GET=sales),
            route("/api/price-diffs", GET=price_diffs)]


def _limit(request: Request) -> int:
    try:
        return validators.integer("limit", int(request.query_params.get("limit", "50")), 1, MAX_SALES_SHOWN)
    except validators.Invalid as exc:
        raise ApiError(400, str(exc)) from None
    except ValueError:
        raise ApiError(400, "limit must be a whole number") from None
