"""The console's customers API: search, create, edit, the 360, and data subject requests (export, erase).

Permissions and scope (decided here, documented in the README):
- A customer belongs to the tenant, not to a store (they shop anywhere): VIEW_CUSTOMERS anywhere in the tenant
  (a store manager's store, a regional admin's region) reads every customer record of the tenant, and
  MANAGE_CUSTOMERS anywhere creates and edits them (audited). A home store given must be in the user's reach.
- The 360's orders are sales: a user sees only the orders of stores in their VIEW_SALES reach; the count of the
  others is shown (orders_elsewhere), never what they hold.
- Export and erase (CUSTOMER_PRIVACY) read or change everything about the customer across every store, so they
  need it tenant-wide (a tenant admin). Both are audited; an erase needs a reason.
The tenant is always the signed-in user's (`tenant` naming another: 404). A malformed id is a 404 (no such
customer), a refused field a 422 naming the field (nothing changed), a card number another customer holds a 409.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.console.openapi import AUTH_RESPONSES
from hub.customers import metrics, privacy, records, view
from hub.identity.access import authorize, tenant_of
from hub.identity.principal import Principal
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission
from novapos.validators import Invalid

MAX_LISTED = 50
SEARCH_SQL = (
    f"SELECT {records.COLUMNS} FROM customers WHERE tenant = $1 AND erased_at IS NULL AND ($2::text IS NULL"
    " OR lower(name) LIKE '%' || $2 || '%' OR email = $3 OR phone = $4 OR card_number = $5)"
    " ORDER BY created_at DESC, id DESC LIMIT $6")
"""Newest first; a query matches part of the name (case-insensitive), or the email, phone or card number exactly
(normalised). Erased customers are not listed (found by id only)."""


def _like(text: str) -> str:
    """A query as a LIKE pattern's fixed text (its % and _ taken literally)."""
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(pool: asyncpg.Pool, tenant: str, query: str | None, limit: int) -> list[dict[str, Any]]:
    by_email = by_phone = by_card = None
    if query is not None:
        try:
            by_email, by_phone, by_card = records.lookup_keys(query)
        except Invalid:
            pass  # a name only
    async with pool.acquire() as conn:
        rows = await conn.fetch(SEARCH_SQL, tenant, None if query is None else _like(query), by_email, by_phone,
                                by_card, limit)
    return [records.profile(row) for row in rows]


async def create(pool: asyncpg.Pool, tenant: str, body: dict[str, Any], actor: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await records.create(conn, tenant, body, actor=actor)


async def update(pool: asyncpg.Pool, tenant: str, customer: uuid.UUID, body: dict[str, Any],
                 actor: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        return await records.update(conn, tenant, customer, body, actor=actor)


async def three_sixty(pool: asyncpg.Pool, tenant: str, customer: uuid.UUID,
                      stores: list[str] | None) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        return await view.three_sixty(conn, tenant, customer, stores=stores)


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]
_NOT_FOUND = {"404": {"description": "the user's tenant has no such customer", "content": _ERROR}}
_BAD = {"400": {"$ref": "#/components/responses/BadRequest"},
        "422": {"description": "a field was refused, nothing changed; the error names the field and says why",
                "content": _ERROR}}
_CUSTOMER_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "tenant": {"type": "string"}, "name": {"type": "string", "maxLength": records.MAX_NAME},
    "phone": {"type": ["string", "null"], "description": "kept as + and digits"},
    "email": {"type": ["string", "null"], "description": "kept lower-cased"},
    "birthday": {"type": ["string", "null"], "format": "date"},
    "card_number": {"type": ["string", "null"], "description": "left out: one is generated"},
    "home_store": {"type": ["string", "null"]},
    "preferences": {"type": "object", "description": "at most 20 short values by lower-case key"},
    "consents": {"type": "object", "description": "true/false by lower-case key (marketing_email...)"}}}
_PROFILE = {"type": "object", "properties": {
    "id": {"type": "string", "format": "uuid"}, "card_number": {"type": ["string", "null"]},
    "name": {"type": ["string", "null"]}, "phone": {"type": ["string", "null"]}, "email": {"type": ["string", "null"]},
    "birthday": {"type": ["string", "null"]}, "preferences": {"type": "object"}, "consents": {"type": "object"},
    "home_store": {"type": ["string", "null"]}, "created_by": {"type": "string"},
    "created_at": {"type": "string"}, "updated_at": {"type": "string"}, "erased": {"type": "boolean"},
    "erased_at": {"type": ["string", "null"]}}}
_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Customer"}}}
OPENAPI: dict[str, Any] = {"paths": {
    "/api/customers": {
        "get": {"summary": "Customers of the tenant, newest first: all, or those whose name holds `q` or whose "
                           "phone, email or card number is `q` (normalised)",
                "parameters": [{"name": "q", "in": "query", "required": False,
                                "schema": {"type": "string", "maxLength": records.MAX_EMAIL}},
                               {"name": "limit", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LISTED, "default": 20}}],
                "responses": {"200": {"description": "{items: [Customer]}", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"items": {"type": "array", "items": {
                        "$ref": "#/components/schemas/Customer"}}}}}}}, **_BAD, **AUTH_RESPONSES}},
        "post": {"summary": "Create a customer (MANAGE_CUSTOMERS; audited); a card number is generated unless given",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": _CUSTOMER_BODY}}},
                 "responses": {"201": {"description": "the customer", "content": _JSON}, **_BAD, **AUTH_RESPONSES,
                               "409": {"description": "the card number is another customer's", "content": _ERROR}}}},
    "/api/customers/{id}": {
        "get": {"summary": "The customer 360: profile, loyalty summary, recent orders (of the stores the user may "
                           "see; orders_elsewhere counts the others), preferences",
                "parameters": _ID, "responses": {"200": {"description": "the 360", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "customer": {"$ref": "#/components/schemas/Customer"}, "loyalty": {"type": "object"},
                        "orders": {"type": "array"}, "orders_elsewhere": {"type": "integer"},
                        "preferences": {"type": "object"}}}}}}, **AUTH_RESPONSES, **_NOT_FOUND}},
        "patch": {"summary": "Change the fields named (null clears an optional one; MANAGE_CUSTOMERS; audited)",
                  "parameters": _ID,
                  "requestBody": {"required": True, "content": {"application/json": {"schema": _CUSTOMER_BODY}}},
                  "responses": {"200": {"description": "the customer", "content": _JSON}, **_BAD, **AUTH_RESPONSES,
                                **_NOT_FOUND,
                                "409": {"description": "the card number is another customer's", "content": _ERROR}}}},
    "/api/customers/{id}/export": {"post": {
        "summary": "Data subject request: everything the hub keeps about the customer as one JSON document "
                   "(CUSTOMER_PRIVACY tenant-wide; audited)",
        "parameters": _ID, "responses": {"200": {"description": "the export", "content": {"application/json": {
            "schema": {"type": "object"}}}}, **AUTH_RESPONSES, **_NOT_FOUND}}},
    "/api/customers/{id}/erase": {"post": {
        "summary": "Data subject request: erase the customer's personal data, here and in the audit log's personal "
                   "values (CUSTOMER_PRIVACY tenant-wide; audited; the audit chain still verifies)",
        "parameters": _ID,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["reason"], "properties": {
                "reason": {"type": "string", "maxLength": validators.MAX_TEXT_LENGTH}}}}}},
        "responses": {"200": {"description": "{customer, erased_at, audit_values_erased}", "content": {
            "application/json": {"schema": {"type": "object"}}}}, **_BAD, **AUTH_RESPONSES, **_NOT_FOUND}}},
}, "schemas": {"Customer": _PROFILE}}


def _customer(request: Request) -> uuid.UUID:
    raw = request.path_params["id"]
    try:
        return uuid.UUID(validators.uuid_text("id", raw))
    except Invalid:
        raise ApiError(404, f"there is no customer {validators.describe(raw)}: a customer id looks like "
                            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "20")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_LISTED):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LISTED}")
    return int(raw)


def _home_store_in_reach(principal: Principal, body: dict[str, Any]) -> None:
    store = body.get("home_store")
    if isinstance(store, str) and store:
        principal.require(Permission.MANAGE_CUSTOMERS, store=validators.token("home_store", store))


def routes(console: Console) -> Sequence[BaseRoute]:
    async def run(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        try:
            return await console.seam.run(functools.partial(fn, console.ready_pool(), *args, **kwargs))
        except records.Conflict as exc:
            raise ApiError(409, str(exc)) from None

    async def listed(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_CUSTOMERS)
        tenant = tenant_of(principal, request.query_params.get("tenant"))
        if unknown := sorted(set(request.query_params) - {"q", "limit", "tenant"}):
            raise ApiError(400, f"{validators.describe(unknown[0])} is not a parameter here; use q, limit, tenant")
        raw = request.query_params.get("q")
        query = None if raw is None or not raw.strip() else validators.text("q", raw.strip(),
                                                                           max_length=records.MAX_EMAIL)
        return JSONResponse({"items": await run(search, tenant, query, _limit(request))})

    async def created(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_CUSTOMERS)
        body = await json_body(request)
        tenant = tenant_of(principal, body.get("tenant"))
        _home_store_in_reach(principal, body)
        customer = await run(create, tenant, {k: v for k, v in body.items() if k != "tenant"}, principal.login)
        metrics.CREATED.labels("console").inc()
        return JSONResponse(customer, status_code=201)

    async def one(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_CUSTOMERS)
        customer = _customer(request)
        stores = principal.reach(Permission.VIEW_SALES).store_filter()
        found = await run(three_sixty, principal.tenant, customer, stores)
        if found is None:
            raise ApiError(404, f"there is no customer {customer}")
        return JSONResponse(found)

    async def edited(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_CUSTOMERS)
        customer = _customer(request)
        body = await json_body(request)
        tenant = tenant_of(principal, body.get("tenant"))
        _home_store_in_reach(principal, body)
        changed = await run(update, tenant, customer, {k: v for k, v in body.items() if k != "tenant"},
                            principal.login)
        if changed is None:
            raise ApiError(404, f"there is no customer {customer}")
        return JSONResponse(changed)

    async def exported(request: Request) -> Response:
        principal = await authorize(console, request, Permission.CUSTOMER_PRIVACY, tenant_wide=True)
        customer = _customer(request)
        document = await run(privacy.export, principal.tenant, customer, actor=principal.login)
        if document is None:
            raise ApiError(404, f"there is no customer {customer}")
        metrics.PRIVACY.labels("export").inc()
        return Response(json.dumps(document, ensure_ascii=False, default=str), media_type="application/json",
                        headers={"content-disposition": f'attachment; filename="customer-{customer}.json"'})

    async def erased(request: Request) -> Response:
        principal = await authorize(console, request, Permission.CUSTOMER_PRIVACY, tenant_wide=True)
        customer = _customer(request)
        body = await json_body(request)
        if unknown := sorted(set(body) - {"reason", "tenant"}):
            raise Invalid(unknown[0], "is not a field here; use reason")
        tenant = tenant_of(principal, body.get("tenant"))
        reason = validators.text("reason", body.get("reason"))
        if not reason.strip():
            raise Invalid("reason", "is needed: why the customer is erased (their request, its reference)")
        done = await run(privacy.erase, tenant, customer, actor=principal.login, reason=reason.strip())
        if done is None:
            raise ApiError(404, f"there is no customer {customer}")
        metrics.PRIVACY.labels("erase").inc()
        return JSONResponse(done)

    return [route("/api/customers", GET=listed, POST=created),
            route("/api/customers/{id}", GET=one, PATCH=edited),
            route("/api/customers/{id}/export", POST=exported),
            route("/api/customers/{id}/erase", POST=erased)]
