"""The console's stock API: balances, movements, what is low, and the changes a person makes (adjust,
receive, return, transfer, reserve, release, thresholds). Every value is checked at the door
(novapos.validators) and a refusal says why, changing nothing; the changes are hub.inventory.operations.

Every route authorizes first (hub.identity.access). Reads need VIEW_STOCK and show only the locations the
user's reach covers: a store's locations for a role at that store or its region, a warehouse for a role
over its region or the tenant. Changes need ADJUST_STOCK at every location they touch; an adjustment needs
a reason and is audited (stock.adjusted). The tenant is the user's own: `tenant` may be left out, another
is a 404; a location of another tenant is unknown, one outside the user's reach is a 403 naming who can.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console import keyset
from hub.console.context import Console
from hub.console.openapi import AUTH_RESPONSES
from hub.identity.access import authorize, tenant_of
from hub.identity.principal import Principal
from hub.inventory import operations
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission
from novapos.validators import MAX_BIGINT

MAX_QUANTITY = 10**9
"""Most units moved in one request: far above any delivery, far below what a balance (bigint) holds."""
MAX_ROWS = 1000
MAX_RESERVATION = timedelta(days=90)

BALANCES_SQL = (
    "SELECT b.tenant, l.location, l.kind, l.store, b.sku, b.on_hand, b.reserved, b.on_hand - b.reserved AS available,"
    " b.low_threshold, b.low, b.negative_since, b.updated_at"
    " FROM stock_balances b JOIN locations l ON l.id = b.location_id"
    " WHERE b.tenant = $1 AND ($2::text IS NULL OR l.location = $2) AND ($3::text IS NULL OR b.sku = $3)"
    " AND ($5::text[] IS NULL OR l.store = ANY($5) OR (l.store IS NULL AND l.region = ANY($6)))"
    " AND ($7::text IS NULL OR (l.location, b.sku) > ($7, $8::text))"
    " ORDER BY l.location, b.sku LIMIT $4")
MOVEMENTS_SQL = (
    "SELECT m.id, m.tenant, l.location, m.sku, m.kind, m.on_hand_change, m.reserved_change, m.reason, m.store,"
    " m.event_id, m.reservation_id, m.transfer_id, m.flags, m.created_at"
    " FROM stock_movements m LEFT JOIN locations l ON l.id = m.location_id"
    " WHERE m.tenant = $1 AND ($2::text IS NULL OR l.location = $2) AND ($3::text IS NULL OR m.sku = $3)"
    " AND (NOT $4 OR m.flags <> '{}')"
    " AND ($6::text[] IS NULL OR l.store = ANY($6) OR (l.store IS NULL AND l.region = ANY($7))"
    "  OR (l.id IS NULL AND m.store = ANY($6)))"
    " AND ($8::bigint IS NULL OR m.id < $8)"
    " ORDER BY m.id DESC LIMIT $5")
LOW_SQL = (
    "SELECT b.tenant, l.location, l.kind, l.store, b.sku, b.on_hand, b.reserved, b.on_hand - b.reserved AS available,"
    " b.low_threshold, (SELECT max(e.created_at) FROM stock_low_events e"
    "  WHERE e.location_id = b.location_id AND e.sku = b.sku) AS low_since"
    " FROM stock_balances b JOIN locations l ON l.id = b.location_id WHERE b.tenant = $1 AND b.low"
    " AND ($3::text[] IS NULL OR l.store = ANY($3) OR (l.store IS NULL AND l.region = ANY($4)))"
    " AND ($5::bigint IS NULL OR (b.on_hand - b.reserved - b.low_threshold, l.location, b.sku) > ($5, $6::text, $7::text))"
    " ORDER BY b.on_hand - b.reserved - b.low_threshold, l.location, b.sku LIMIT $2")

_TOKEN = {"type": "string", "minLength": 1, "maxLength": validators.MAX_TOKEN_LENGTH,
          "pattern": f"^{validators.TOKEN_PATTERN}$"}
_TEXT = {"type": "string", "minLength": 1, "maxLength": validators.MAX_TEXT_LENGTH}
_QUANTITY = {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY}
_TENANT = {**_TOKEN, "description": "the signed-in user's tenant (may be left out); another tenant is a 404"}
_ERRORS = {"400": {"$ref": "#/components/responses/BadRequest"}, **AUTH_RESPONSES,
           "404": {"$ref": "#/components/responses/NotFound"},
           "409": {"$ref": "#/components/responses/Conflict"}, "415": {"$ref": "#/components/responses/BadRequest"},
           "422": {"$ref": "#/components/responses/BadRequest"}}


def _query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _get(summary: str, item: str, ordered_by: str, *parameters: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": [_query("tenant", _TENANT), *parameters,
                                                       keyset.parameter(ordered_by)], "responses": {
        "200": {"description": summary, "content": {"application/json": {"schema": keyset.schema(item, MAX_ROWS)}}},
        "400": {"$ref": "#/components/responses/BadRequest"}, **AUTH_RESPONSES,
        "404": {"description": "the location filter names no location of the tenant", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "422": {"$ref": "#/components/responses/BadRequest"}}}}


def _post(summary: str, required: list[str], answer: str, **properties: dict[str, Any]) -> dict[str, Any]:
    return {"post": {"summary": summary, "requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "required": required, "properties": {"tenant": _TENANT, **properties}}}}},
        "responses": {"200": {"description": "the stock after the change", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{answer}"}}}}, **_ERRORS}}}


_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "default": 200})
_NOTE = {**_TEXT, "description": "a note kept with the movement (delivery note, order number)"}
OPENAPI = {"paths": {
    "/api/stock": _get("Stock per location and SKU: on hand, reserved, available, threshold, flags", "Balance",
                       "location, then SKU", _query("location", _TOKEN), _query("sku", _TOKEN), _LIMIT),
    "/api/stock/movements": _get("The stock ledger, newest first", "Movement", "id, newest first", _query("location", _TOKEN),
                                 _query("sku", _TOKEN), _query("flagged", {"type": "boolean", "default": False,
                                 "description": "only movements flagged for review (negative, unknown_sku, "
                                               "no_location)"}), _LIMIT),
    "/api/stock/low": _get("What is below its low-stock threshold now, furthest below first", "Low",
                           "how far below, then location and SKU", _LIMIT),
    "/api/stock/adjustments": _post(
        "Adjust stock on hand (a count, damage, theft); may not take it below zero", ["location", "sku", "quantity",
        "reason"], "Balance", location=_TOKEN, sku=_TOKEN, reason=_TEXT,
        quantity={"type": "integer", "minimum": -MAX_QUANTITY, "maximum": MAX_QUANTITY, "not": {"const": 0}}),
    "/api/stock/receipts": _post("Goods received at a location", ["location", "sku", "quantity"], "Balance",
                                 location=_TOKEN, sku=_TOKEN, quantity=_QUANTITY, note=_NOTE),
    "/api/stock/returns": _post("A customer's return back into stock", ["location", "sku", "quantity"], "Balance",
                                location=_TOKEN, sku=_TOKEN, quantity=_QUANTITY, note=_NOTE),
    "/api/stock/transfers": _post("Move stock between two locations (two movements, one transaction)",
                                  ["from", "to", "sku", "quantity"], "Transfer", to=_TOKEN, sku=_TOKEN,
                                  quantity=_QUANTITY, note=_NOTE, **{"from": _TOKEN}),
    "/api/stock/reservations": _post(
        "Reserve available stock until it expires (then the sweeper restocks it)", ["location", "sku", "quantity",
        "expires_in_s"], "Reservation", location=_TOKEN, sku=_TOKEN, quantity=_QUANTITY, note=_NOTE,
        expires_in_s={"type": "integer", "minimum": 1, "maximum": int(MAX_RESERVATION.total_seconds())}),
    "/api/stock/reservations/{id}/release": {"post": {
        "summary": "Release an active reservation: its stock is available again",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT}}],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object",
                                                                    "properties": {"tenant": _TENANT}}}}},
        "responses": {"200": {"description": "released", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Reservation"}}}}, **_ERRORS}}},
    "/api/stock/thresholds": _post(
        "Set (or clear, with null) the low-stock threshold of a SKU at a location: one alert per crossing below it",
        ["location", "sku", "threshold"], "Balance", location=_TOKEN, sku=_TOKEN,
        threshold={"type": ["integer", "null"], "minimum": 0, "maximum": MAX_QUANTITY}),
}, "schemas": {
    "Balance": {"type": "object", "properties": {
        "tenant": _TOKEN, "location": _TOKEN, "sku": _TOKEN, "on_hand": {"type": "integer"},
        "reserved": {"type": "integer", "minimum": 0}, "available": {"type": "integer"},
        "low_threshold": {"type": ["integer", "null"]}, "low": {"type": "boolean"},
        "negative_since": {"type": ["string", "null"], "format": "date-time",
                           "description": "on hand went below zero (offline sales): to review"}}},
    "Movement": {"type": "object", "properties": {
        "id": {"type": "integer"}, "location": {"type": ["string", "null"]}, "sku": _TOKEN,
        "kind": {"type": "string", "enum": ["sale", "return", "adjustment", "transfer_out", "transfer_in",
                                           "received", "reserved", "released", "expired"]},
        "on_hand_change": {"type": "integer"}, "reserved_change": {"type": "integer"},
        "reason": {"type": ["string", "null"]}, "flags": {"type": "array", "items": {
            "type": "string", "enum": ["negative", "unknown_sku", "no_location"]}}}},
    "Low": {"type": "object", "properties": {
        "location": _TOKEN, "sku": _TOKEN, "available": {"type": "integer"}, "low_threshold": {"type": "integer"},
        "low_since": {"type": ["string", "null"], "format": "date-time"}}},
    "Transfer": {"type": "object", "properties": {
        "transfer": {"type": "string", "format": "uuid"}, "from": {"$ref": "#/components/schemas/Balance"},
        "to": {"$ref": "#/components/schemas/Balance"}}},
    "Reservation": {"allOf": [{"$ref": "#/components/schemas/Balance"}, {"type": "object", "properties": {
        "reservation": {"type": "integer"}, "expires_at": {"type": "string", "format": "date-time"},
        "status": {"type": "string"}}}]},
}}


def _optional(where: str, value: Any, check: Callable[[str, Any], str]) -> str | None:
    return None if value is None else check(where, value)


def _note(body: Mapping[str, Any]) -> str | None:
    return _optional("note", body.get("note"), validators.text)


def _quantity(body: Mapping[str, Any]) -> int:
    return validators.integer("quantity", body.get("quantity"), 1, MAX_QUANTITY)


LOCATION_SQL = "SELECT store, region FROM locations WHERE tenant = $1 AND location = $2"
RESERVATION_SQL = ("SELECT l.store, l.region FROM stock_reservations r JOIN locations l ON l.id = r.location_id"
                   " WHERE r.id = $1 AND r.tenant = $2")


def _require_at(principal: Principal, permission: Permission, row: Mapping[str, Any]) -> None:
    """A store's location is covered by a role at the store (or over its region); a warehouse by its region."""
    if row["store"] is not None:
        principal.require(permission, store=row["store"])
    else:
        principal.require(permission, region=row["region"])


def routes(console: Console) -> Sequence[BaseRoute]:
    async def located(principal: Principal, permission: Permission, tenant: str, location: str,
                      status: int = 422) -> None:
        """Refuse unless `location` is the tenant's (else `status`, as for any unknown location) and in reach."""
        rows = await console.query(LOCATION_SQL, tenant, location)
        if not rows:
            raise ApiError(status, f"tenant {tenant!r} has no location {location!r}: see the locations of the "
                                   "tenant's stores and warehouses")
        _require_at(principal, permission, rows[0])

    def reach_of(principal: Principal, permission: Permission) -> tuple[list[str] | None, list[str]]:
        """The SQL filter of the user's reach: (stores or None for the whole tenant, regions of warehouses)."""
        reach = principal.reach(permission)
        return reach.store_filter(), sorted(reach.regions)

    def limit_of(request: Request) -> int:
        try:
            return validators.integer("limit", int(request.query_params.get("limit", "200")), 1, MAX_ROWS)
        except ValueError:
            raise ApiError(400, "limit must be a whole number") from None

    async def filters(request: Request) -> tuple[Principal, str, str | None, str | None]:
        principal = await authorize(console, request, Permission.VIEW_STOCK)
        params = request.query_params
        tenant = tenant_of(principal, params.get("tenant"))
        location = _optional("location", params.get("location"), validators.token)
        if location is not None:
            await located(principal, Permission.VIEW_STOCK, tenant, location, status=404)
        return principal, tenant, location, _optional("sku", params.get("sku"), validators.token)

    async def run(operation: Callable[..., Awaitable[dict[str, Any]]], *args: Any, **kwargs: Any) -> Response:
        async def in_a_connection(pool: asyncpg.Pool) -> dict[str, Any]:
            async with pool.acquire() as conn:
                return await operation(conn, *args, **kwargs)
        return JSONResponse(await console.seam.run(in_a_connection, console.ready_pool()))

    async def balances(request: Request) -> Response:
        principal, *where = await filters(request)
        limit, cursor = limit_of(request), keyset.after(request.query_params, "token", "token") or [None, None]
        rows = await console.query(BALANCES_SQL, *where, limit + 1, *reach_of(principal, Permission.VIEW_STOCK),
                                   *cursor)
        return JSONResponse(keyset.page(rows, limit, lambda row: [row["location"], row["sku"]]))

    async def movements(request: Request) -> Response:
        principal, *where = await filters(request)
        flagged = request.query_params.get("flagged", "false")
        if flagged not in ("true", "false"):
            raise ApiError(400, "flagged must be true or false")
        limit, cursor = limit_of(request), keyset.after(request.query_params, "int") or [None]
        rows = await console.query(MOVEMENTS_SQL, *where, flagged == "true", limit + 1,
                                   *reach_of(principal, Permission.VIEW_STOCK), *cursor)
        return JSONResponse(keyset.page(rows, limit, lambda row: [row["id"]]))

    async def low(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_STOCK)
        tenant = tenant_of(principal, request.query_params.get("tenant"))
        limit = limit_of(request)
        cursor = keyset.after(request.query_params, "int", "token", "token") or [None, None, None]
        rows = await console.query(LOW_SQL, tenant, limit + 1, *reach_of(principal, Permission.VIEW_STOCK), *cursor)
        return JSONResponse(keyset.page(rows, limit, lambda row: [row["available"] - row["low_threshold"],
                                                                  row["location"], row["sku"]]))

    async def changing(request: Request) -> tuple[Principal, Mapping[str, Any], str]:
        """The user (ADJUST_STOCK somewhere), the body and the tenant of a change."""
        principal = await authorize(console, request, Permission.ADJUST_STOCK)
        body = await json_body(request)
        return principal, body, tenant_of(principal, body.get("tenant"))

    async def where(request: Request) -> tuple[Principal, Mapping[str, Any], tuple[str, str, str]]:
        """A change at one location: the user must hold ADJUST_STOCK there."""
        principal, body, tenant = await changing(request)
        location = validators.token("location", body.get("location"))
        sku = validators.token("sku", body.get("sku"))
        await located(principal, Permission.ADJUST_STOCK, tenant, location)
        return principal, body, (tenant, location, sku)

    async def adjust(request: Request) -> Response:
        principal, body, at = await where(request)
        quantity = validators.integer("quantity", body.get("quantity"), -MAX_QUANTITY, MAX_QUANTITY)
        if quantity == 0:
            raise ApiError(422, "quantity must not be 0: an adjustment changes stock (negative takes it off)")
        reason = validators.text("reason", body.get("reason"))
        return await run(operations.change, *at, "adjustment", quantity, reason, actor=principal.login)

    async def receive(request: Request) -> Response:
        principal, body, at = await where(request)
        return await run(operations.change, *at, "received", _quantity(body), _note(body), actor=principal.login)

    async def take_back(request: Request) -> Response:
        principal, body, at = await where(request)
        return await run(operations.change, *at, "return", _quantity(body), _note(body), actor=principal.login)

    async def transfer(request: Request) -> Response:
        principal, body, tenant = await changing(request)
        source, destination = validators.token("from", body.get("from")), validators.token("to", body.get("to"))
        sku = validators.token("sku", body.get("sku"))
        for location in (source, destination):
            await located(principal, Permission.ADJUST_STOCK, tenant, location)
        return await run(operations.transfer, tenant, source, destination, sku, _quantity(body), _note(body))

    async def reserve(request: Request) -> Response:
        _principal, body, (tenant, location, sku) = await where(request)
        quantity = _quantity(body)
        seconds = validators.integer("expires_in_s", body.get("expires_in_s"), 1, int(MAX_RESERVATION.total_seconds()))
        return await run(operations.reserve, tenant, location, sku, quantity, timedelta(seconds=seconds), _note(body))

    async def release(request: Request) -> Response:
        principal = await authorize(console, request, Permission.ADJUST_STOCK)
        raw = request.path_params["id"]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not 1 <= int(raw) <= MAX_BIGINT:
            raise ApiError(404, f"there is no reservation {validators.describe(raw)}: ids are whole numbers from 1")
        body = await json_body(request)
        tenant = tenant_of(principal, body.get("tenant"))
        rows = await console.query(RESERVATION_SQL, int(raw), tenant)
        if not rows:
            raise ApiError(404, f"tenant {tenant!r} has no reservation {int(raw)}")
        _require_at(principal, Permission.ADJUST_STOCK, rows[0])
        return await run(operations.release, tenant, int(raw))

    async def threshold(request: Request) -> Response:
        _principal, body, at = await where(request)
        if "threshold" not in body:
            raise ApiError(422, "threshold is required: a number of units, or null to clear it")
        value = body["threshold"]
        level = None if value is None else validators.integer("threshold", value, 0, MAX_QUANTITY)
        return await run(operations.set_threshold, *at, level)

    return [route("/api/stock", GET=balances), route("/api/stock/movements", GET=movements),
            route("/api/stock/low", GET=low), route("/api/stock/adjustments", POST=adjust),
            route("/api/stock/receipts", POST=receive), route("/api/stock/returns", POST=take_back),
            route("/api/stock/transfers", POST=transfer), route("/api/stock/reservations", POST=reserve),
            route("/api/stock/reservations/{id}/release", POST=release),
            route("/api/stock/thresholds", POST=threshold)]
