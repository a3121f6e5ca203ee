"""The console's drawer sessions: per store and day, a keyset page of sessions with their Z figures, and one
session's Z report with its moves and the sales that reached the hub after it closed (flagged late).

Scoped like sales (Permission.VIEW_SALES): a tenant admin sees the tenant, a regional admin their region's
stores, a store's staff their store. A store out of reach is a 403, a store or session the tenant does not
have (or another tenant named) a 404.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console import keyset
from hub.console.context import Console
from hub.identity.access import authorize, tenant_of
from hub.sales import orders
from novapos import validators
from novapos.adapters.http import ApiError, route
from novapos.roles import Permission
from novapos.validators import MAX_TOKEN_LENGTH, TOKEN_PATTERN

MAX_PAGE = 200
DEFAULT_PAGE = 50
DAY_MS = 86_400_000
_PARAMS = {"store", "day", "after", "limit", "tenant"}

_COLUMNS = ("s.session, s.store, s.till, s.currency, s.opened_by, s.opened_ms, s.float_minor, z.z_number, z.closed_by, "
            "z.closed_ms, z.expected_minor, z.counted_minor, z.difference_minor, z.approver, "
            "(SELECT count(*) FROM drawer_sales d WHERE d.tenant = s.tenant AND d.session = s.session) AS sales, "
            "(SELECT count(*) FROM drawer_sales d WHERE d.tenant = s.tenant AND d.session = s.session AND d.late) "
            "AS late_sales")
LIST_SQL = (f"SELECT {_COLUMNS} FROM drawer_sessions s LEFT JOIN z_reports z USING (tenant, session) "
            "WHERE s.tenant = $1 AND ($2::text[] IS NULL OR s.store = ANY($2::text[])) "
            "AND ($3::bigint IS NULL OR (s.opened_ms >= $3 AND s.opened_ms < $3 + 86400000)) "
            "AND ($4::bigint IS NULL OR (s.opened_ms, s.session) < ($4, $5::text)) "
            "ORDER BY s.opened_ms DESC, s.session DESC LIMIT $6")
"""Newest opened first; $2: the stores in reach (null: the whole tenant); $3: the day's first ms (UTC)."""
ONE_SQL = (f"SELECT {_COLUMNS}, s.float_counts::text AS float_counts, z.counted::text AS counted, z.z::text AS z "
           "FROM drawer_sessions s LEFT JOIN z_reports z USING (tenant, session) WHERE s.tenant = $1 AND s.session = $2")
MOVES_SQL = ("SELECT event_id, seq, kind, amount_minor, reason, actor, approver, moved_ms FROM drawer_moves "
             "WHERE tenant = $1 AND session = $2 ORDER BY seq")
LATE_SQL = ("SELECT event_id, seq, kind, total_minor, received_at FROM drawer_sales "
            "WHERE tenant = $1 AND session = $2 AND late ORDER BY seq")
TAKINGS_SQL = (
    "SELECT method, sum(taken)::bigint AS taken_minor, sum(refunded)::bigint AS refunded_minor FROM ("
    " SELECT t.method, t.amount_minor AS taken, 0 AS refunded FROM drawer_sales d JOIN sale_tenders t USING (event_id)"
    "  WHERE d.tenant = $1 AND d.session = $2 AND d.kind = 'sale'"
    " UNION ALL SELECT 'cash', -s.change_minor, 0 FROM drawer_sales d JOIN sales s USING (event_id)"
    "  WHERE d.tenant = $1 AND d.session = $2 AND d.kind = 'sale' AND s.change_minor > 0"
    " UNION ALL SELECT r.refund->>'method', 0, (r.refund->>'amount_minor')::bigint FROM drawer_sales d"
    "  JOIN returns x USING (event_id) CROSS JOIN jsonb_array_elements(x.refunds) AS r(refund)"
    "  WHERE d.tenant = $1 AND d.session = $2 AND d.kind = 'return'"
    ") m GROUP BY method ORDER BY method")
"""A session's takings by tender method (cash net of change; card, qr, points, gift_card as tendered) and its
returns' refunds by method: what the drawer and the other instruments took, as the hub has it."""

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_AUTH = {"401": {"description": "not signed in, or the session ended: sign in (POST /api/login)", "content": _ERROR},
         "403": {"description": "the user's roles do not grant sales.view at that store (the error says who can)",
                 "content": _ERROR}}
_SESSION = {"type": "object", "properties": {
    "session": {"type": "string"}, "store": {"type": "string"}, "till": {"type": "string"},
    "currency": {"type": "string"}, "opened_by": {"type": "string"}, "opened_ms": {"type": "integer"},
    "float_minor": {"type": "integer"}, "z_number": {"type": ["integer", "null"], "description": "null while open"},
    "closed_by": {"type": ["string", "null"]}, "closed_ms": {"type": ["integer", "null"]},
    "expected_minor": {"type": ["integer", "null"]}, "counted_minor": {"type": ["integer", "null"]},
    "difference_minor": {"type": ["integer", "null"], "description": "counted - expected; negative: short"},
    "approver": {"type": ["string", "null"], "description": "the manager who approved a close beyond tolerance"},
    "sales": {"type": "integer", "description": "sales and returns of the session the hub has"},
    "late_sales": {"type": "integer", "description": "of which reached the hub after its Z report"}}}
OPENAPI = {"paths": {
    "/api/drawer-sessions": {"get": {
        "summary": "Drawer sessions, newest opened first, one keyset page at a time, per store and day",
        "description": "A tenant admin sees the whole tenant; a regional admin the stores of their region; a store's "
                       "staff their store.",
        "parameters": [
            {"name": "store", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": f"^{TOKEN_PATTERN}$", "maxLength": MAX_TOKEN_LENGTH}},
            {"name": "day", "in": "query", "required": False, "description": "opened on this day (UTC)",
             "schema": {"type": "string", "format": "date"}},
            keyset.parameter("opened_ms descending, then session"),
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}},
            {"name": "tenant", "in": "query", "required": False, "description": "the user's own tenant (another: 404)",
             "schema": {"type": "string", "pattern": f"^{TOKEN_PATTERN}$"}}],
        "responses": {"200": {"description": "a page", "content": {"application/json": {
            "schema": keyset.schema("DrawerSession", MAX_PAGE)}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, **_AUTH,
            "404": {"description": "no such store in the user's tenant, or another tenant named", "content": _ERROR}}}},
    "/api/drawer-sessions/{id}": {"get": {
        "summary": "One drawer session: its float, moves, Z report (when closed) and the sales that reached the hub "
                   "after it closed (late)",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
        "responses": {"200": {"description": "the session", "content": {"application/json": {"schema": {
            "allOf": [{"$ref": "#/components/schemas/DrawerSession"}, {"type": "object", "properties": {
                "float_counts": {"type": "object"}, "counted": {"type": ["object", "null"]},
                "z": {"type": ["object", "null"], "description": "the drawer.closed event's z figures"},
                "moves": {"type": "array"}, "late": {"type": "array"},
                "takings": {"type": "array", "description": "by tender method: taken (cash net of change) and "
                            "refunded", "items": {"type": "object", "properties": {
                                "method": {"type": "string"}, "taken_minor": {"type": "integer"},
                                "refunded_minor": {"type": "integer"}}}}}}]}}}},
            **_AUTH, "404": {"description": "the user's tenant has no such drawer session", "content": _ERROR}}}},
}, "schemas": {"DrawerSession": _SESSION}}


def _day(value: str) -> int:
    try:
        if len(value) != 10 or not value.isascii():
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"day={validators.describe(value)} is not a date: use YYYY-MM-DD") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_PAGE))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_PAGE):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def routes(console: Console) -> Sequence[BaseRoute]:
    async def exists(tenant: str, store: str) -> None:
        if not await console.seam.run(orders.store_exists, console.ready_pool(), tenant, store):
            raise ApiError(404, f"there is no store {store}")

    async def sessions(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_SALES)
        params = request.query_params
        if unknown := sorted(set(params) - _PARAMS):
            raise ApiError(400, f"{validators.describe(unknown[0])} is not a parameter here; use "
                                f"{', '.join(sorted(_PARAMS))}")
        tenant = tenant_of(principal, params.get("tenant"))
        reach = principal.reach(Permission.VIEW_SALES)
        stores = reach.store_filter()
        if "store" in params:
            try:
                store = validators.token("store", params["store"])
            except validators.Invalid as exc:
                raise ApiError(400, str(exc)) from None
            if not reach.covers_store(store):  # 404 if the tenant has no such store, else 403
                await exists(tenant, store)
                principal.require(Permission.VIEW_SALES, store=store)
            stores = [store]
        day = _day(params["day"]) if "day" in params else None
        limit = _limit(request)
        cursor = keyset.after(params, "int", "token") or [None, None]
        rows = [] if stores == [] else await console.query(LIST_SQL, tenant, stores, day, *cursor, limit + 1)
        if not rows and "store" in params:  # an empty page of a store the tenant does not have is a 404
            await exists(tenant, params["store"])
        return JSONResponse(keyset.page(rows, limit, lambda row: [row["opened_ms"], row["session"]]))

    async def one(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_SALES)
        try:
            session = validators.uuid_text("id", request.path_params["id"])
        except validators.Invalid:
            raise ApiError(404, "there is no such drawer session: its id looks like "
                                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") from None
        rows = await console.query(ONE_SQL, principal.tenant, session)
        if not rows:
            raise ApiError(404, f"there is no drawer session {session}")
        found: dict[str, Any] = rows[0]
        principal.require(Permission.VIEW_SALES, store=found["store"])
        for name in ("float_counts", "counted", "z"):
            found[name] = None if found[name] is None else json.loads(found[name])
        found["moves"] = await console.query(MOVES_SQL, principal.tenant, session)
        found["late"] = await console.query(LATE_SQL, principal.tenant, session)
        found["takings"] = await console.query(TAKINGS_SQL, principal.tenant, session)
        return JSONResponse(found)

    return [route("/api/drawer-sessions", GET=sessions), route("/api/drawer-sessions/{id}", GET=one)]
