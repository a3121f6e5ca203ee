"""The console's coupons API: a promotion's codes (list, one with its uses), batches of single-use codes, named
multi-use codes, and withdrawing or restoring a code.

Reading needs promotions.view, but only promotions.manage across the tenant lists codes in full (an unused code is a
bearer secret: a store manager sees each code masked to its last four, with its uses); changing needs
promotions.manage across the tenant (codes are the tenant's: a
region's admin cannot give out codes of a promotion that reaches other regions). Every change is audited
(coupon.batch_created, coupon.created, coupon.blocked, coupon.unblocked). Another tenant's code is not found.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.catalog.changes import timestamp
from hub.console import keyset
from hub.console.context import Console
from hub.coupons import codes, issuing
from hub.identity.access import authorize, tenant_of
from hub.payments.requests import reason
from hub.refusals import Refused
from novapos import coupon_codes, validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission

MAX_PAGE = 200
MAX_USES = 10_000_000
USES_SHOWN = 100
LISTED = ("SELECT * FROM coupon_codes WHERE tenant = $1 AND ($2::uuid IS NULL OR promotion = $2)"
          " AND ($3::uuid IS NULL OR batch = $3) AND ($4::text IS NULL OR code > $4) ORDER BY code LIMIT $5")
EXISTS = "SELECT 1 FROM coupon_codes WHERE tenant = $1 AND code = $2"
USES = ("SELECT redemption, state, offline, store, till, customer::text, held_until, created_at, updated_at FROM"
        " coupon_redemptions WHERE tenant = $1 AND code = $2 ORDER BY created_at DESC, redemption LIMIT $3")


def limit_of(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_PAGE):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def query_uuid(request: Request, name: str) -> uuid.UUID | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return uuid.UUID(validators.uuid_text(name, raw))
    except validators.Invalid:
        raise ApiError(400, f"{name} must be a UUID, got {validators.describe(raw)}") from None


def optional_time(where: str, value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    moment = timestamp(where, value)
    if moment <= datetime.now(moment.tzinfo):
        raise validators.Invalid(where, "must be in the future")
    return moment


def optional_count(where: str, value: Any, maximum: int) -> int | None:
    return None if value is None else validators.integer(where, value, 1, maximum)


def _code_in_path(request: Request) -> str:
    try:
        return coupon_codes.normalise("code", request.path_params["id"])
    except validators.Invalid:
        raise ApiError(404, f"there is no coupon {validators.describe(request.path_params['id'])}") from None


def routes(console: Console) -> Sequence[BaseRoute]:
    async def change(work: Any, *args: Any, status: int = 200, **kwargs: Any) -> Response:
        try:
            answer = await console.seam.run(functools.partial(work, **kwargs), console.ready_pool(), *args)
        except Refused as exc:
            raise ApiError(exc.code, str(exc)) from None
        return JSONResponse(answer, status_code=status)

    async def listed(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PROMOTIONS)
        tenant_of(principal, request.query_params.get("tenant"))
        promotion, batch, limit = query_uuid(request, "promotion"), query_uuid(request, "batch"), limit_of(request)
        after = keyset.after(request.query_params, "token")
        rows = await console.seam.run(_page, console.ready_pool(), principal.tenant, promotion, batch,
                                      after[0] if after else None, limit)
        page = keyset.page(rows, limit, lambda item: (item["code"],))
        if not principal.reach(Permission.MANAGE_PROMOTIONS).tenant_wide:  # bearer codes: uses, not codes
            page = {"items": [{**item, "code": codes.mask(item["code"]), "masked": True} for item in page["items"]],
                    "next": None}  # the cursor is a code: the first page only
        return JSONResponse(page)

    async def create(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_PROMOTIONS, tenant_wide=True)
        body = await json_body(request)
        promotion = uuid.UUID(validators.uuid_text("promotion", body.get("promotion")))
        code = None if body.get("code") in (None, "") else coupon_codes.normalise("code", body.get("code"))
        return await change(issuing.create_code, principal.tenant, promotion=promotion, code=code,
                            max_uses=validators.integer("max_uses", body.get("max_uses"), 1, MAX_USES),
                            per_customer=optional_count("per_customer", body.get("per_customer"), MAX_USES),
                            expires_at=optional_time("expires_at", body.get("expires_at")), actor=principal.login,
                            status=201)

    async def batch(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_PROMOTIONS, tenant_wide=True)
        body = await json_body(request)
        return await change(issuing.create_batch, principal.tenant,
                            promotion=uuid.UUID(validators.uuid_text("promotion", body.get("promotion"))),
                            count=validators.integer("count", body.get("count"), 1, codes.MAX_BATCH),
                            per_customer=optional_count("per_customer", body.get("per_customer"), MAX_USES),
                            expires_at=optional_time("expires_at", body.get("expires_at")), actor=principal.login,
                            status=201)

    async def one(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PROMOTIONS)
        found = await console.seam.run(_one, console.ready_pool(), principal.tenant, _code_in_path(request))
        if found is None:
            raise ApiError(404, f"there is no coupon {validators.describe(request.path_params['id'])}")
        return JSONResponse(found)

    def withdrawal(active: bool) -> Any:
        async def handle(request: Request) -> Response:
            principal = await authorize(console, request, Permission.MANAGE_PROMOTIONS, tenant_wide=True)
            code = _code_in_path(request)
            if not await console.query(EXISTS, principal.tenant, code):
                raise ApiError(404, f"there is no coupon {code}")
            body = await json_body(request)
            why = reason("reason", body.get("reason"))
            if not why:
                raise validators.Invalid("reason", "is needed: say why")
            return await change(issuing.set_active, principal.tenant, code, active=active, reason=why,
                                actor=principal.login)
        return handle

    return [route("/api/coupons", GET=listed, POST=create),
            route("/api/coupon-batches", POST=batch),
            route("/api/coupons/{id}", GET=one),
            route("/api/coupons/{id}/block", POST=withdrawal(False)),
            route("/api/coupons/{id}/unblock", POST=withdrawal(True))]


async def _page(pool: asyncpg.Pool, tenant: str, promotion: uuid.UUID | None, batch: uuid.UUID | None,
                after: str | None, limit: int) -> list[dict[str, Any]]:
    return [issuing.code_json(row) for row in await pool.fetch(LISTED, tenant, promotion, batch, after, limit + 1)]


async def _one(pool: asyncpg.Pool, tenant: str, code: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM coupon_codes WHERE tenant = $1 AND code = $2", tenant, code)
        if row is None:
            return None
        uses = await conn.fetch(USES, tenant, code, USES_SHOWN)
    return {"coupon": issuing.code_json(row), "uses": [
        {**dict(use), **{key: use[key].isoformat() for key in ("held_until", "created_at", "updated_at")
                         if use[key] is not None}} for use in uses]}


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_CODE = {"name": "id", "in": "path", "description": "the code", "required": True, "schema": {"type": "string", "pattern": coupon_codes.CODE.pattern}}
_COUPON = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Coupon"}}}}
_WHEN = {"type": ["string", "null"], "format": "date-time", "description": "ISO 8601 with its offset, in the future"}
_REASON = {"type": "object", "required": ["reason"], "properties": {
    "reason": {"type": "string", "maxLength": validators.MAX_TEXT_LENGTH}}}
_REFUSED = {"404": {"description": "no such promotion or coupon", "content": _ERROR},
            "409": {"description": "the promotion takes no codes, or the code exists already", "content": _ERROR},
            "422": {"description": "a field is out of bounds; the error says which", "content": _ERROR}}


def _withdrawal(summary: str) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": [_CODE], "requestBody": {"required": True, "content": {
        "application/json": {"schema": _REASON}}}, "responses": {"200": {"description": "the code now", **_COUPON},
                                                                  **_REFUSED}}}


OPENAPI: dict[str, Any] = {"paths": {
    "/static/codes.js": {"get": {"summary": "The console page's Coupons and Gift cards tabs (a script of the page)",
                                 "responses": {"200": {"description": "text/javascript"}}}},
    "/api/coupons": {
        "get": {"summary": "Coupon codes, by code, a keyset page at a time", "parameters": [
            {"name": "promotion", "in": "query", "required": False, "schema": {"type": "string", "format": "uuid"}},
            {"name": "batch", "in": "query", "required": False, "schema": {"type": "string", "format": "uuid"}},
            keyset.parameter("code"),
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}}],
                "responses": {"200": {"description": "a page of codes", "content": {"application/json": {
                    "schema": keyset.schema("Coupon", MAX_PAGE)}}},
                    "400": {"description": "a bad filter, limit or cursor", "content": _ERROR}}},
        "post": {"summary": "A code of a code_only promotion usable max_uses times (named, or drawn when code is "
                            "absent); audited", "requestBody": {"required": True, "content": {"application/json": {
                                "schema": {"type": "object", "required": ["promotion", "max_uses"], "properties": {
                                    "promotion": {"type": "string", "format": "uuid"},
                                    "code": {"type": "string", "pattern": coupon_codes.CODE.pattern},
                                    "max_uses": {"type": "integer", "minimum": 1, "maximum": MAX_USES},
                                    "per_customer": {"type": ["integer", "null"], "minimum": 1},
                                    "expires_at": _WHEN}}}}},
                 "responses": {"201": {"description": "the code", **_COUPON}, **_REFUSED}}},
    "/api/coupon-batches": {"post": {
        "summary": "A batch of single-use codes of a code_only promotion (unguessable, no 0/O/1/I); audited without "
                   "the codes", "requestBody": {"required": True, "content": {"application/json": {"schema": {
                       "type": "object", "required": ["promotion", "count"], "properties": {
                           "promotion": {"type": "string", "format": "uuid"},
                           "count": {"type": "integer", "minimum": 1, "maximum": codes.MAX_BATCH},
                           "per_customer": {"type": ["integer", "null"], "minimum": 1}, "expires_at": _WHEN}}}}},
        "responses": {"201": {"description": "the batch and its codes", "content": {"application/json": {"schema": {
            "type": "object", "required": ["batch", "promotion", "codes"], "properties": {
                "batch": {"type": "string", "format": "uuid"}, "promotion": {"type": "string"},
                "codes": {"type": "array", "items": {"type": "string"}},
                "expires_at": {"type": ["string", "null"]}}}}}}, **_REFUSED}}},
    "/api/coupons/{id}": {"get": {
        "summary": "One code with its latest uses (held, used, released)", "parameters": [_CODE],
        "responses": {"200": {"description": "the code and its uses", "content": {"application/json": {"schema": {
            "type": "object", "required": ["coupon", "uses"], "properties": {
                "coupon": {"$ref": "#/components/schemas/Coupon"},
                "uses": {"type": "array", "items": {"type": "object"}}}}}}},
            "404": {"description": "no such code", "content": _ERROR}}}},
    "/api/coupons/{id}/block": _withdrawal("Withdraw a code: no new use is reserved (held ones still complete); "
                                             "audited"),
    "/api/coupons/{id}/unblock": _withdrawal("Put a withdrawn code back; audited")},
    "schemas": {"Coupon": {"type": "object", "required": ["code", "promotion", "max_uses", "uses", "active"],
                           "properties": {"code": {"type": "string"}, "promotion": {"type": "string"},
                                          "batch": {"type": ["string", "null"]}, "max_uses": {"type": "integer"},
                                          "per_customer": {"type": ["integer", "null"]},
                                          "uses": {"type": "integer"}, "expires_at": {"type": ["string", "null"]},
                                          "active": {"type": "boolean"}}}}}
