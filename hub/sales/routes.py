"""The console's view of sales: the store overview, the recent sales, and the price diffs to review."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.identity.access import authorize, tenant_of
from hub.identity.principal import Principal
from hub.sales import orders
from novapos import validators
from novapos.adapters.http import ApiError, route
from novapos.roles import Permission
from novapos.validators import CURRENCY_PATTERN, MAX_MINOR, MAX_TOKEN_LENGTH, TOKEN_PATTERN

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
    " WHERE st.tenant = $1 AND ($2::text[] IS NULL OR st.store = ANY($2::text[]))"
    " GROUP BY st.tenant, st.store ORDER BY st.tenant, st.store")
"""The tenant's stores ($1), all of them ($2 null) or those listed in $2."""
_DIFF_COLUMNS = "d.event_id, d.line_no, d.tenant, d.store, s.till, s.seq, d.sku, d.sold_at, d.found_at, d.diff"
_DIFF_ORDER = "found_at DESC, event_id, line_no"
PRICE_DIFFS_SQL = (
    f"SELECT {_DIFF_COLUMNS} FROM sale_price_diffs d JOIN sales s USING (event_id)"
    f" WHERE d.tenant = $1 ORDER BY d.{_DIFF_ORDER.replace(', ', ', d.')} LIMIT $2",
    f"SELECT {_DIFF_COLUMNS} FROM unnest($3::text[]) AS r(store) CROSS JOIN LATERAL ("
    f" SELECT * FROM sale_price_diffs WHERE tenant = $1 AND store = r.store ORDER BY {_DIFF_ORDER} LIMIT $2) d"
    f" JOIN sales s USING (event_id) ORDER BY d.{_DIFF_ORDER.replace(', ', ', d.')} LIMIT $2")
"""Newest found first; within one ingest transaction (one found_at), by sale and line: a stable order.
[0]: the whole tenant ($1), [1]: the stores listed in $3, each read from its own index range and merged."""

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_AUTH = {"401": {"description": "not signed in, or the session ended: sign in (POST /api/login)", "content": _ERROR},
         "403": {"description": "the user's roles do not grant sales.view where asked (the error says who can)",
                 "content": _ERROR}}
_SCOPED = "A tenant admin sees the whole tenant; a regional admin the stores of their region; a store's staff their store."
_TIME = {"type": "string", "maxLength": 40, "description": "a date (midnight UTC) or a date and time with its offset",
         "examples": ["2026-12-01", "2026-12-01T08:00:00Z"]}

OPENAPI = {"paths": {
    "/api/stores": {"get": {
        "summary": "Per store: sales, takings, last sequence number, missing and reused sequence numbers",
        "description": _SCOPED,
        "responses": {**_AUTH, "200": {"description": "one entry per store", "content": {"application/json": {"schema": {
            "type": "array", "items": {"$ref": "#/components/schemas/Store"}}}}}},
    }},
    "/api/sales": {"get": {
        "summary": "The most recently received sales, newest first (GET /api/orders pages through all of them)",
        "description": _SCOPED,
        "parameters": [{"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SALES_SHOWN, "default": 50}}],
        "responses": {
            "200": {"description": "newest first", "content": {"application/json": {"schema": {
                "type": "array", "maxItems": MAX_SALES_SHOWN, "items": {"$ref": "#/components/schemas/Sale"}}}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, **_AUTH},
    }},
    "/api/price-diffs": {"get": {
        "summary": "Sale lines whose price snapshot differs from the catalog at the sale's time, newest first",
        "description": "Found by replay validation when the sale was ingested; the sale is kept as sold. " + _SCOPED,
        "parameters": [{"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SALES_SHOWN, "default": 50}}],
        "responses": {
            "200": {"description": "newest first", "content": {"application/json": {"schema": {
                "type": "array", "maxItems": MAX_SALES_SHOWN, "items": {"$ref": "#/components/schemas/PriceDiff"}}}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, **_AUTH},
    }},
    "/api/orders": {"get": {
        "summary": "Orders (completed sales), newest received first, one keyset page at a time",
        "description": "Ordered by the hub's receive time, then event id (descending): a store's clock may be wrong. "
                       "Pass the answer's `next` as `before` for the next page; it stays right while sales arrive. "
                       + _SCOPED,
        "parameters": [
            {"name": "store", "in": "query", "required": False, "description": "only this store's orders",
             "schema": {"type": "string", "pattern": f"^{TOKEN_PATTERN}$", "maxLength": MAX_TOKEN_LENGTH}},
            {"name": "till", "in": "query", "required": False, "description": "only this till's (needs store)",
             "schema": {"type": "string", "pattern": f"^{TOKEN_PATTERN}$", "maxLength": MAX_TOKEN_LENGTH}},
            {"name": "from", "in": "query", "required": False, "description": "received at or after", "schema": _TIME},
            {"name": "to", "in": "query", "required": False, "description": "received before (after from)",
             "schema": _TIME},
            {"name": "before", "in": "query", "required": False, "description": "the previous page's `next`",
             "schema": {"type": "string", "pattern": "^[0-9]{1,18}_[0-9a-f-]{36}$"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": orders.MAX_PAGE, "default": orders.DEFAULT_PAGE}},
            {"name": "tenant", "in": "query", "required": False, "description": "the user's own tenant (another: 404)",
             "schema": {"type": "string", "pattern": f"^{TOKEN_PATTERN}$"}}],
        "responses": {
            "200": {"description": "a page, newest first", "content": {"application/json": {"schema": {
                "type": "object", "required": ["items", "next"], "properties": {
                    "items": {"type": "array", "maxItems": orders.MAX_PAGE, "items": {"$ref": "#/components/schemas/Sale"}},
                    "next": {"type": ["string", "null"], "description": "`before` for the next page; null on the last"}}}}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, **_AUTH,
            "404": {"description": "no such store in the user's tenant, or another tenant named", "content": _ERROR}},
    }},
    "/api/orders/{id}": {"get": {
        "summary": "One order: the sale with its lines (each with the price lock it was sold under), its tenders and "
                   "the price differences replay validation found",
        "parameters": [{"name": "id", "in": "path", "description": "the sale's event id", "required": True,
                        "schema": {"type": "string", "format": "uuid"}}],
        "responses": {
            "200": {"description": "the order", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Order"}}}},
            **_AUTH, "404": {"description": "the user's tenant has no such order", "content": _ERROR}},
    }},
}, "schemas": {
    "Order": {"allOf": [{"$ref": "#/components/schemas/Sale"}, {"type": "object", "properties": {
        "session": {"type": "string"}, "tendered_minor": {"type": "integer"}, "change_minor": {"type": "integer"},
        "v": {"type": "integer", "description": "the sale.completed version: 1 carried no price locks"},
        "store_name": {"type": ["string", "null"]}, "region": {"type": ["string", "null"]},
        "drawer_session": {"type": ["string", "null"], "description": "v3: the till's drawer session, if open"},
        "order_discount_kind": {"type": ["string", "null"], "enum": ["percent", "amount", None]},
        "order_discount_value": {"type": ["integer", "null"],
                                 "description": "basis points (10000 = 100 %) or minor units, by kind"},
        "order_discount_reason": {"type": ["string", "null"]},
        "order_discount_minor": {"type": "integer", "minimum": 0, "description": "0 when none (and before v3)"},
        "customer_id": {"type": ["string", "null"], "description": "v5: the customer the sale was made for (an id)"},
        "promotions_version": {"type": ["integer", "null"], "description": "v5: the till's promotions version"},
        "coupons": {"type": "array", "description": "v5: the coupons used [{code, promotion, redemption, offline}]",
                    "items": {"type": "object"}},
        "lines": {"type": "array", "items": {"type": "object", "properties": {
            "line_no": {"type": "integer"}, "sku": {"type": "string"}, "name": {"type": "string"},
            "quantity": {"type": "integer"}, "unit_price_minor": {"type": "integer"}, "amount_minor": {"type": "integer"},
            "catalog_version": {"type": ["integer", "null"]}, "tax_class": {"type": ["string", "null"]},
            "tax_rate_ppm": {"type": ["integer", "null"]}, "tax_included": {"type": ["boolean", "null"]},
            "tax_minor": {"type": ["integer", "null"]},
            "line_id": {"type": ["string", "null"], "description": "v3 on: the till's line id"},
            "attributes": {"type": ["array", "null"], "description": "v3 on: [[name, value], ...] (size, colour)"},
            "list_price_minor": {"type": ["integer", "null"], "description": "v3 on: the price lock's unit price"},
            "override_reason": {"type": ["string", "null"]}, "override_approver": {"type": ["string", "null"]},
            "discount_kind": {"type": ["string", "null"]}, "discount_value": {"type": ["integer", "null"]},
            "discount_reason": {"type": ["string", "null"]}, "discount_minor": {"type": "integer", "minimum": 0},
            "order_discount_minor": {"type": "integer", "minimum": 0,
                                     "description": "the line's share of the order discount"},
            "promotions": {"type": "array", "description": "v5: what each promotion took off the line",
                           "items": {"type": "object", "properties": {
                               "promotion": {"type": "string"}, "name": {"type": "string"},
                               "amount_minor": {"type": "integer", "minimum": 1}}}},
            "promotions_minor": {"type": "integer", "minimum": 0, "description": "their sum (0 before v5)"}}}},
        "tenders": {"type": "array", "items": {"type": "object", "properties": {
            "tender_no": {"type": "integer"}, "method": {"type": "string",
                                                            "enum": ["cash", "card", "qr", "points", "gift_card"]},
            "amount_minor": {"type": "integer"},
            "tender_id": {"type": ["string", "null"], "description": "v3 on"},
            "card_reference": {"type": ["string", "null"]}, "card_scheme": {"type": ["string", "null"]},
            "card_masked": {"type": ["string", "null"], "description": "never the full number"},
            "card_auth_code": {"type": ["string", "null"]}, "card_terminal": {"type": ["string", "null"]},
            "card_signature": {"type": ["boolean", "null"]},
            "qr_intent": {"type": ["string", "null"], "description": "v4: a QR payment's intent at the hub"},
            "qr_provider_ref": {"type": ["string", "null"], "description": "v4: the provider's reference of it"},
            "points_customer": {"type": ["string", "null"], "description": "v5: whose points paid"},
            "points_points": {"type": ["integer", "null"], "description": "v5: the points redeemed"},
            "points_redemption": {"type": ["string", "null"]}, "points_offline": {"type": ["boolean", "null"]},
            "gift_card_masked": {"type": ["string", "null"], "description": "v5: the gift card, masked"},
            "gift_card_redemption": {"type": ["string", "null"]}}}},
        "price_diffs": {"type": "array", "items": {"type": "object", "properties": {
            "line_no": {"type": "integer"}, "sku": {"type": "string"}, "sold_at": {"type": "string", "format": "date-time"},
            "found_at": {"type": "string", "format": "date-time"},
            "diff": {"type": "object", "description": "as in PriceDiff"}}}},
        "returns": {"type": "array", "description": "its returns from any store (hub.returns; GET /api/returns)",
                    "items": {"type": "object"}}}}]},
    "PriceDiff": {"type": "object", "properties": {
        "event_id": {"type": "string", "format": "uuid"}, "line_no": {"type": "integer", "minimum": 1},
        "tenant": {"type": "string"}, "store": {"type": "string"}, "till": {"type": "string"},
        "seq": {"type": "integer", "minimum": 1}, "sku": {"type": "string"},
        "sold_at": {"type": "string", "format": "date-time", "description": "the store's clock"},
        "found_at": {"type": "string", "format": "date-time", "description": "when the hub ingested the sale"},
        "diff": {"type": "object", "description": "canonical JSON as stored: line, sku, sold_at, v, catalog_version, "
                 "price (the catalog's price in force: scope, scope_id, effective_from, or null) and differences: "
                 "{name: {till, catalog}} for unknown_store, unknown_sku, no_price_in_force, unit_price (v1, v2), "
                 "list_price (v3: the lock; overrides and discounts are not differences), tax_class, "
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
        "tax_total_minor": {"type": ["integer", "null"], "description": "null for a v1 sale"},
        "clock_suspect": {"type": "boolean", "description": "the time is implausible: the store's clock was wrong"},
        "received_at": {"type": "string", "format": "date-time", "description": "when the hub received it"}}},
}}


def routes(console: Console) -> Sequence[BaseRoute]:
    async def stores(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_SALES)
        rows = await console.query(STORES_SQL, principal.tenant, principal.reach(Permission.VIEW_SALES).store_filter())
        return JSONResponse([{**row, "totals": json.loads(row["totals"])} for row in rows])

    async def sales(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_SALES)
        window = orders.Window(principal.tenant, principal.reach(Permission.VIEW_SALES).store_filter(),
                               limit=_limit(request, MAX_SALES_SHOWN))
        answer = await console.seam.run(orders.page, console.ready_pool(), window, False)
        return JSONResponse(answer["items"] if answer is not None else [])

    async def price_diffs(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_SALES)
        stores = principal.reach(Permission.VIEW_SALES).store_filter()
        limit = _limit(request, MAX_SALES_SHOWN)
        rows = [] if stores == [] else await console.query(PRICE_DIFFS_SQL[stores is not None], principal.tenant,
                                                           limit, *([stores] if stores is not None else []))
        return JSONResponse([{**row, "diff": json.loads(row["diff"])} for row in rows])

    async def order_list(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_SALES)
        window = _window(request, principal)
        reach = principal.reach(Permission.VIEW_SALES)
        store = window.store if "store" in request.query_params else None
        pool = console.ready_pool()
        if store is not None and not reach.covers_store(store):  # 404 if the tenant has no such store, else 403
            if not await console.seam.run(orders.store_exists, pool, principal.tenant, store):
                raise ApiError(404, f"there is no store {store}")
            principal.require(Permission.VIEW_SALES, store=store)
        # A tenant admin may name any store: whether the tenant has it is asked beside the page.
        answer = await console.seam.run(orders.page, pool, window, store is not None and reach.tenant_wide)
        if answer is None:
            raise ApiError(404, f"there is no store {store}")
        return JSONResponse(answer)

    async def order(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_SALES)
        try:
            event_id = uuid.UUID(validators.uuid_text("event_id", request.path_params["id"]))
        except validators.Invalid:
            raise ApiError(404, "there is no such order: an order's id looks like "
                                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") from None
        sale = await console.seam.run(orders.detail, console.ready_pool(), principal.tenant, event_id)
        if sale is None:
            raise ApiError(404, f"there is no order {event_id}")
        principal.require(Permission.VIEW_SALES, store=sale["store"])
        return JSONResponse(sale)

    return [route("/api/stores", GET=stores), route("/api/sales", GET=sales),
            route("/api/price-diffs", GET=price_diffs), route("/api/orders", GET=order_list),
            route("/api/orders/{id}", GET=order)]


_ORDER_PARAMS = {"store", "till", "from", "to", "before", "limit", "tenant"}


def _window(request: Request, principal: Principal) -> orders.Window:
    """The orders asked for, each parameter validated at the door (400 saying which and why)."""
    params = request.query_params
    unknown = sorted(set(params) - _ORDER_PARAMS)
    try:
        if unknown:
            raise validators.Invalid(repr(unknown[0][:40]), f"is not a parameter here; use "
                                     f"{', '.join(sorted(_ORDER_PARAMS))}")
        tenant_of(principal, params.get("tenant"))
        store = validators.token("store", params["store"]) if "store" in params else None
        till = validators.token("till", params["till"]) if "till" in params else None
        if till is not None and store is None:
            raise validators.Invalid("till", "needs the store it belongs to: add store=")
        since = orders.instant("from", params["from"]) if "from" in params else None
        until = orders.instant("to", params["to"]) if "to" in params else None
        if since is not None and until is not None and since >= until:
            raise validators.Invalid("to", "must be after from")
        before = orders.Cursor.parse("before", params["before"]) if "before" in params else None
    except validators.Invalid as exc:
        raise ApiError(400, str(exc)) from None
    stores = [store] if store is not None else principal.reach(Permission.VIEW_SALES).store_filter()
    return orders.Window(principal.tenant, stores, till, since, until, before,
                         _limit(request, orders.MAX_PAGE, orders.DEFAULT_PAGE))


def _limit(request: Request, maximum: int, default: int = 50) -> int:
    try:
        return validators.integer("limit", int(request.query_params.get("limit", str(default))), 1, maximum)
    except validators.Invalid as exc:
        raise ApiError(400, str(exc)) from None
    except ValueError:
        raise ApiError(400, "limit must be a whole number") from None
