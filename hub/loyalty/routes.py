"""The console's loyalty API: the tenant's program (earn rules, tiers, expiry, offline budget and cap) and a
customer's account (summary and ledger, newest first) with adjustments.

Reading needs VIEW_CUSTOMERS; changing the program needs MANAGE_CUSTOMERS across the tenant, an adjustment
MANAGE_CUSTOMERS (with a reason). Another tenant's customer is not found. Every change is audited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.identity.access import authorize
from hub.loyalty import accounts, adjustments
from hub.loyalty import program as programs
from hub.loyalty.program import MAX_POINTS, Program
from hub.payments import idempotency
from hub.payments.service import Conflict
from hub.refusals import Refused
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission

MAX_PAGE = 200


def _customer(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(validators.uuid_text("customer", raw))
    except validators.Invalid:
        raise ApiError(404, f"there is no customer {validators.describe(raw)}") from None


def routes(console: Console) -> Sequence[BaseRoute]:
    async def program(request: Request) -> Response:
        if request.method == "GET":
            principal = await authorize(console, request, Permission.VIEW_CUSTOMERS)

            async def read(pool: asyncpg.Pool) -> Program:
                async with pool.acquire() as conn:
                    return await programs.load(conn, principal.tenant)
            return JSONResponse((await console.seam.run(read, console.ready_pool())).to_json())
        principal = await authorize(console, request, Permission.MANAGE_CUSTOMERS, tenant_wide=True)
        body = await json_body(request)

        async def write(pool: asyncpg.Pool) -> Program:
            async with pool.acquire() as conn:
                current = await programs.load(conn, principal.tenant)
            kept = {name: getattr(current, name) for name in programs.OPTIONAL}  # not sent: as saved
            changed = programs.from_json(current.currency, {**kept, **body} if isinstance(body, dict) else body)
            return await adjustments.change_program(pool, principal.tenant, changed, principal.login)
        return JSONResponse((await console.seam.run(write, console.ready_pool())).to_json())

    async def account(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_CUSTOMERS)
        customer = _customer(request.path_params["id"])
        raw = request.query_params.get("limit", "50")
        limit = validators.integer("limit", int(raw) if raw.isdecimal() and raw.isascii() and len(raw) < 8 else raw,
                                   1, MAX_PAGE)

        async def read(pool: asyncpg.Pool) -> dict[str, Any] | None:
            async with pool.acquire() as conn:
                if not await accounts.exists(conn, principal.tenant, customer):
                    return None
                return {"customer": str(customer),
                        "summary": await accounts.summary(conn, principal.tenant, customer),
                        "ledger": await accounts.ledger(conn, principal.tenant, customer, limit=limit)}
        found = await console.seam.run(read, console.ready_pool())
        if found is None:
            raise ApiError(404, f"there is no customer {customer}")
        return JSONResponse(found)

    async def adjust(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_CUSTOMERS)
        customer = _customer(request.path_params["id"])
        body = await json_body(request)
        points = validators.integer("points", body.get("points"), -MAX_POINTS, MAX_POINTS)
        if points == 0:
            raise validators.Invalid("points", "must not be 0: add (positive) or take (negative) points")
        why = validators.text("reason", body.get("reason"))
        key = idempotency.key_of(request.headers.get(idempotency.HEADER))

        async def run() -> idempotency.Answer:
            seen = idempotency.fingerprint(request.method, request.url.path, body, principal.login)
            try:
                summary = await adjustments.adjust(console.ready_pool(), principal.tenant, customer, points, why,
                                                   principal.login, None if key is None else seen.hex()[:32])
            except Refused as refused:
                return refused.code, {"error": str(refused)}
            return 200, {"customer": str(customer), "summary": summary}

        async def once() -> idempotency.Answer:
            if key is None:
                return await run()
            seen = idempotency.fingerprint(request.method, request.url.path, body, principal.login)
            try:
                return await idempotency.once(console.ready_pool(), principal.tenant, key, seen, run)
            except Conflict as conflict:
                return 409, {"error": str(conflict), "code": "conflict"}
        status, answer = await console.seam.run(once)
        return JSONResponse(answer, status_code=status)

    return [route("/api/loyalty/program", GET=program, PUT=program),
            route("/api/loyalty/accounts/{id}", GET=account),
            route("/api/loyalty/accounts/{id}/adjust", POST=adjust)]


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_CUSTOMER = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_POINTS = {"type": "integer", "minimum": 0, "maximum": MAX_POINTS}
_PROGRAM = {"application/json": {"schema": {"$ref": "#/components/schemas/LoyaltyProgram"}}}
_SUMMARY = {"type": "object", "required": ["points", "tier", "multiplier_ppm", "spend_12m_minor", "expiring"],
            "properties": {"points": {"type": "integer"}, "tier": {"type": "string"},
                           "multiplier_ppm": {"type": "integer"}, "spend_12m_minor": {"type": "integer"},
                           "next_tier": {"type": ["object", "null"]},
                           "expiring": {"type": "array", "items": {"type": "object", "properties": {
                               "points": {"type": "integer"}, "expires_at": {"type": "string"}}}}}}
OPENAPI: dict[str, Any] = {"paths": {
    "/api/loyalty/program": {
        "get": {"summary": "The tenant's loyalty program (the default one until an administrator saves one)",
                "responses": {"200": {"description": "the program", "content": _PROGRAM}}},
        "put": {"summary": "Set the tenant's loyalty program (tenant-wide customer managers); audited",
                "requestBody": {"required": True, "content": _PROGRAM},
                "responses": {"200": {"description": "the program now", "content": _PROGRAM},
                              "422": {"description": "a field out of bounds; the error says which",
                                      "content": _ERROR}}}},
    "/api/loyalty/accounts/{id}": {"get": {
        "summary": "A customer's loyalty account: summary (points, tier, what expires soon) and ledger, newest first",
        "parameters": [_CUSTOMER, {"name": "limit", "in": "query", "required": False,
                                   "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}}],
        "responses": {"200": {"description": "the account", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"customer": {"type": "string"}, "summary": _SUMMARY,
                                             "ledger": {"type": "array", "items": {"type": "object"}}}}}}},
            "404": {"description": "no such customer", "content": _ERROR}}}},
    "/api/loyalty/accounts/{id}/adjust": {"post": {
        "summary": "Add (positive) or take (negative) points with a reason; audited (loyalty.adjusted)",
        "parameters": [_CUSTOMER, {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {
            "type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["points", "reason"],
            "properties": {"points": {"type": "integer", "minimum": -MAX_POINTS, "maximum": MAX_POINTS},
                           "reason": {"type": "string", "maxLength": validators.MAX_TEXT_LENGTH}}}}}},
        "responses": {"200": {"description": "the account's summary after it", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"customer": {"type": "string"}, "summary": _SUMMARY}}}}},
            "404": {"description": "no such customer", "content": _ERROR},
            "409": {"description": "more points than the account holds or than adjust_max_points, or the"
                                   " Idempotency-Key was another request's", "content": _ERROR},
            "422": {"description": "points 0 or out of bounds, or no reason", "content": _ERROR}}}}},
    "schemas": {"LoyaltyProgram": {"type": "object", "required": [
        "point_value_minor", "earn_points_per_unit", "earn_unit_minor", "earn_per_order_points", "earn_bonuses",
        "tiers", "expiry_months", "notice_days", "offline_store_budget_points", "offline_customer_cap_points"],
        "properties": {
            "currency": {"type": "string", "readOnly": True},
            "point_value_minor": {"type": "integer", "minimum": 1},
            "earn_points_per_unit": {"type": "integer", "minimum": 0},
            "earn_unit_minor": {"type": "integer", "minimum": 1},
            "earn_per_order_points": {"type": "integer", "minimum": 0},
            "earn_bonuses": {"type": "array", "items": {"type": "object", "properties": {
                "sku": {"type": "string"}, "category": {"type": "string"},
                "points_per_unit": {"type": "integer", "minimum": 1}}}},
            "tiers": {"type": "array", "minItems": 1, "items": {"type": "object", "required": [
                "name", "min_spend_minor", "multiplier_ppm"], "properties": {
                "name": {"type": "string"}, "min_spend_minor": {"type": "integer", "minimum": 0},
                "multiplier_ppm": {"type": "integer", "minimum": 1_000_000}}}},
            "expiry_months": {"type": "integer", "minimum": 0, "maximum": 120},
            "notice_days": {"type": "integer", "minimum": 0, "maximum": 365},
            "offline_store_budget_points": _POINTS, "offline_customer_cap_points": _POINTS,
            "adjust_max_points": {"type": "integer", "minimum": 1, "maximum": MAX_POINTS,
                                  "description": "the most points one adjustment adds or takes; kept when left out"}}}}}
