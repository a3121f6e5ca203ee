"""The console's stock API: balances, movements, what is low, and the changes a person makes (adjust,
receive, return, transfer, reserve, release, thresholds). Every value is checked at the door
(novapos.validators) and a refusal says why, changing nothing; the changes are hub.inventory.operations.

`tenant` may be left out when the hub serves one tenant; otherwise it names one the hub serves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.inventory import operations
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
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
    " ORDER BY l.location, b.sku LIMIT $4")
MOVEMENTS_SQL = (
    "SELECT m.id, m.tenant, l.location, m.sku, m.kind, m.on_hand_change, m.reserved_change, m.reason, m.store,"
    " m.event_id, m.reservation_id, m.transfer_id, m.flags, m.created_at"
    " FROM stock_movements m LEFT JOIN locations l ON l.id = m.location_id"
    " WHERE m.tenant = $1 AND ($2::text IS NULL OR l.location = $2) AND ($3::text IS NULL OR m.sku = $3)"
    " AND (NOT $4 OR m.flags <> '{}') ORDER BY m.id DESC LIMIT $5")
LOW_SQL = (
    "SELECT b.tenant, l.location, l.kind, l.store, b.sku, b.on_hand, b.reserved, b.on_hand - b.reserved AS available,"
    " b.low_threshold, (SELECT max(e.created_at) FROM stock_low_events e"
    "  WHERE e.location_id = b.location_id AND e.sku = b.sku) AS low_since"
    " FROM stock_balances b JOIN locations l ON l.id = b.location_id WHERE b.tenant = $1 AND b.low"
    " ORDER BY b.on_hand - b.reserved - b.low_threshold, l.location, b.sku LIMIT $2")

_TOKEN = {"type": "string", "minLength": 1, "maxLength": validators.MAX_TOKEN_LENGTH,
          "pattern": f"^{validators.TOKEN_PATTERN}$"}
_TEXT = {"type": "string", "minLength": 1, "maxLength": validators.MAX_TEXT_LENGTH}
_QUANTITY = {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY}
_TENANT = {**_TOKEN, "description": "may be left out when the hub serves one tenant"}
_ERRORS = {"400": {"$ref": "#/components/responses/BadRequest"}, "404": {"$ref": "#/components/responses/NotFound"},
           "409": {"$ref": "#/components/responses/Conflict"}, "415": {"$ref": "#/components/responses/BadRequest"},
           "422": {"$ref": "#/components/responses/BadRequest"}}


def _query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _get(summary: str, item: str, *parameters: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": [_query("tenant", _TENANT), *parameters], "responses": {
        "200": {"description": summary, "content": {"application/json": {"schema": {
            "type": "array", "maxItems": MAX_ROWS, "items": {"$ref": f"#/components/schemas/{item}"}}}}},
        "400": {"$ref": "#/components/responses/BadRequest"}, "422": {"$ref": "#/components/responses/BadRequest"}}}}


def _post(summary: str, required: list[str], answer: str, **properties: dict[str, Any]) -> dict[str, Any]:
    return {"post": {"summary": summary, "requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "required": required, "properties": {"tenant": _TENANT, **properties}}}}},
        "responses": {"200": {"description": "the stock after the change", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{answer}"}}}}, **_ERRORS}}}


_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "default": 200})
_NOTE = {**_TEXT, "description": "a note kept with the movement (delivery note, order number)"}
OPENAPI = {"paths": {
    "/api/stock": _get("Stock per location and SKU: on hand, reserved, available, threshold, flags", "Balance",
                       _query("location", _TOKEN), _query("sku", _TOKEN), _LIMIT),
    "/api/stock/movements": _get("The stock ledger, newest first", "Movement", _query("location", _TOKEN),
                                 _query("sku", _TOKEN), _query("flagged", {"type": "boolean", "default": False,
                                 "description": "only movements flagged for review (negative, unknown_sku, "
                                               "no_location)"}), _LIMIT),
    "/api/stock/low": _get("What is below its low-stock threshold now, furthest below first", "Low", _LIMIT),
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


def routes(console: Console) -> Sequence[BaseRoute]:
    def tenant_of(value: Any) -> str:
        if value is None and len(console.tenants) == 1:
            return next(iter(console.tenants))
        tenant = validators.token("tenant", value)
        if tenant not in console.tenants:
            raise ApiError(422, f"this hub does not serve tenant {tenant!r}: it serves "
                                f"{', '.join(sorted(console.tenants))}")
        return tenant

    def limit_of(request: Request) -> int:
        try:
            return validators.integer("limit", int(request.query_params.get("limit", "200")), 1, MAX_ROWS)
        except ValueError:
            raise ApiError(400, "limit must be a whole number") from None

    def filters(request: Request) -> tuple[str, str | None, str | None]:
        params = request.query_params
        return (tenant_of(params.get("tenant")), _optional("location", params.get("location"), validators.token),
                _optional("sku", params.get("sku"), validators.token))

    async def run(operation: Callable[..., Awaitable[dict[str, Any]]], *args: Any) -> Response:
        async def in_a_connection(pool: asyncpg.Pool) -> dict[str, Any]:
            async with pool.acquire() as conn:
                return await operation(conn, *args)
        return JSONResponse(await console.seam.run(in_a_connection, console.ready_pool()))

    async def balances(request: Request) -> Response:
        return JSONResponse(await console.query(BALANCES_SQL, *filters(request), limit_of(request)))

    async def movements(request: Request) -> Response:
        flagged = request.query_params.get("flagged", "false")
        if flagged not in ("true", "false"):
            raise ApiError(400, "flagged must be true or false")
        return JSONResponse(await console.query(MOVEMENTS_SQL, *filters(request), flagged == "true",
                                                limit_of(request)))

    async def low(request: Request) -> Response:
        return JSONResponse(await console.query(LOW_SQL, tenant_of(request.query_params.get("tenant")),
                                                limit_of(request)))

    def where(body: Mapping[str, Any]) -> tuple[str, str, str]:
        return (tenant_of(body.get("tenant")), validators.token("location", body.get("location")),
                validators.token("sku", body.get("sku")))

    async def adjust(request: Request) -> Response:
        body = await json_body(request)
        tenant, location, sku = where(body)
        quantity = validators.integer("quantity", body.get("quantity"), -MAX_QUANTITY, MAX_QUANTITY)
        if quantity == 0:
            raise ApiError(422, "quantity must not be 0: an adjustment changes stock (negative takes it off)")
        reason = validators.text("reason", body.get("reason"))
        return await run(operations.change, tenant, location, sku, "adjustment", quantity, reason)

    async def receive(request: Request) -> Response:
        body = await json_body(request)
        return await run(operations.change, *where(body), "received", _quantity(body), _note(body))

    async def take_back(request: Request) -> Response:
        body = await json_body(request)
        return await run(operations.change, *where(body), "return", _quantity(body), _note(body))

    async def transfer(request: Request) -> Response:
        body = await json_body(request)
        tenant = tenant_of(body.get("tenant"))
        source, destination = validators.token("from", body.get("from")), validators.token("to", body.get("to"))
        return await run(operations.transfer, tenant, source, destination, validators.token("sku", body.get("sku")),
                         _quantity(body), _note(body))

    async def reserve(request: Request) -> Response:
        body = await json_body(request)
        tenant, location, sku = where(body)
        quantity = _quantity(body)
        seconds = validators.integer("expires_in_s", body.get("expires_in_s"), 1, int(MAX_RESERVATION.total_seconds()))
        return await run(operations.reserve, tenant, location, sku, quantity, timedelta(seconds=seconds), _note(body))

    async def release(request: Request) -> Response:
        raw = request.path_params["id"]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not 1 <= int(raw) <= MAX_BIGINT:
            raise ApiError(404, f"there is no reservation {validators.describe(raw)}: ids are whole numbers from 1")
        body = await json_body(request)
        return await run(operations.release, tenant_of(body.get("tenant")), int(raw))

    async def threshold(request: Request) -> Response:
        body = await json_body(request)
        tenant, location, sku = where(body)
        if "threshold" not in body:
            raise ApiError(422, "threshold is required: a number of units, or null to clear it")
        value = body["threshold"]
        level = None if value is None else validators.integer("threshold", value, 0, MAX_QUANTITY)
        return await run(operations.set_threshold, tenant, location, sku, level)

    return [route("/api/stock", GET=balances), route("/api/stock/movements", GET=movements),
            route("/api/stock/low", GET=low), route("/api/stock/adjustments", POST=adjust),
            route("/api/stock/receipts", POST=receive), route("/api/stock/returns", POST=take_back),
            route("/api/stock/transfers", POST=transfer), route("/api/stock/reservations", POST=reserve),
            route("/api/stock/reservations/{id}/release", POST=release),
            route("/api/stock/thresholds", POST=threshold)]
