"""The console's audit API: GET /api/audit (search, newest first, keyset on seq) and GET /api/audit/verify.

Both ask `authorize` first and read only the principal's tenant: a store of another tenant is not found
(404), a store of the tenant outside the principal's audit reach is refused (403, saying who could).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.audit import query, verify
from hub.audit.query import Filters, Viewer
from hub.console.context import Console
from hub.identity.access import authorize, tenant_of
from novapos import validators
from novapos.adapters.http import ApiError, route
from novapos.roles import Permission
from novapos.validators import MAX_BIGINT, Invalid

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_DENIED = {"401": {"description": "not signed in", "content": _ERROR},
           "403": {"description": "the user's roles do not grant this here; the error says who could", "content": _ERROR}}
_TOKEN = {"type": "string", "pattern": f"^{validators.TOKEN_PATTERN}$", "maxLength": validators.MAX_TOKEN_LENGTH}
_TIME = {"type": "string", "format": "date-time", "maxLength": 40,
         "description": "ISO 8601; without a zone: UTC"}


def _param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


OPENAPI: dict[str, Any] = {"paths": {
    "/api/audit": {"get": {
        "summary": "The tenant's audit records, newest first, filtered in SQL; records of stores outside the user's "
                   "audit reach are left out, and records of no store unless the user is tenant-wide or did it",
        "parameters": [
            _param("tenant", _TOKEN, "left out: the user's tenant (another is not found)"),
            _param("store", _TOKEN, "only this store's records (404: not the tenant's; 403: outside the user's reach)"),
            _param("actor", {"type": "string", "minLength": 1, "maxLength": 64}, "only this actor's (a login, "
                   "cli:<user>, system)"),
            _param("action", {"type": "string", "minLength": 1, "maxLength": 64}, "only this action (login.failed, "
                   "price.set, till.void...)"),
            _param("from", _TIME, "records at or after this time"),
            _param("to", _TIME, "records before this time"),
            _param("before", {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT},
                   "the previous page's `next`: records with a lower seq"),
            _param("limit", {"type": "integer", "minimum": 1, "maximum": query.MAX_LIMIT,
                             "default": query.DEFAULT_LIMIT}, "records per page")],
        "responses": {"200": {"description": "a page of records", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/AuditPage"}}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, **_DENIED,
            "404": {"$ref": "#/components/responses/NotFound"}}}},
    "/api/audit/verify": {"get": {
        "summary": "Recompute the tenant's whole audit chain and hold it against its last signed checkpoint: the "
                   "first broken record and why (edited, relinked, removed), or that it is intact",
        "parameters": [_param("tenant", _TOKEN, "left out: the user's tenant (another is not found)")],
        "responses": {"200": {"description": "the verdict (ok false names what is broken)", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/AuditVerdict"}}}},
            **_DENIED, "404": {"$ref": "#/components/responses/NotFound"}}}},
}, "schemas": {
    "AuditRecord": {"type": "object", "properties": {
        "seq": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}, "actor": {"type": "string"},
        "action": {"type": "string"}, "store": {"type": ["string", "null"]}, "target": {"type": ["string", "null"]},
        "details": {"type": "object", "description": "personal fields hold a commitment sha256:<hex>, or (tenant "
                    "admins, while kept) the value"},
        "personal_shown": {"type": "array", "items": {"type": "string"}},
        "hash": {"type": "string", "description": "hex SHA-256 of the record in the chain"}}},
    "AuditPage": {"type": "object", "required": ["items", "next"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRecord"}},
        "next": {"type": ["integer", "null"], "description": "pass as `before` for the next page; null: no more"}}},
    "AuditVerdict": {"type": "object", "properties": {
        "tenant": {"type": "string"}, "ok": {"type": "boolean"}, "length": {"type": "integer"},
        "head": {"type": "string"}, "broken_at": {"type": ["integer", "null"]}, "why": {"type": ["string", "null"]},
        "checkpoint": {"type": ["object", "null"], "properties": {"length": {"type": "integer"},
                                                                   "head": {"type": "string"}}},
        "checkpoint_problem": {"type": ["string", "null"]}, "summary": {"type": "string"}}},
}}


def _time(name: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    text = validators.text(name, raw, max_length=40)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(name, f"must be an ISO 8601 time such as 2026-12-01T08:00:00Z, got {validators.describe(raw)}"
                      ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _whole(name: str, raw: str | None, low: int, high: int, default: int | None) -> int | None:
    if raw is None:
        return default
    return validators.integer(name, int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 20 else raw, low, high)


def _filters(request: Request) -> Filters:
    params = request.query_params
    try:
        return Filters(
            store=validators.token("store", params["store"]) if "store" in params else None,
            actor=validators.text("actor", params["actor"], max_length=64) if "actor" in params else None,
            action=validators.text("action", params["action"], max_length=64) if "action" in params else None,
            since=_time("from", params.get("from")), until=_time("to", params.get("to")),
            before=_whole("before", params.get("before"), 1, MAX_BIGINT, None),
            limit=_whole("limit", params.get("limit"), 1, query.MAX_LIMIT, query.DEFAULT_LIMIT) or query.DEFAULT_LIMIT)
    except Invalid as exc:
        raise ApiError(400, str(exc)) from None


def routes(console: Console) -> Sequence[BaseRoute]:
    async def search(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_AUDIT)
        tenant = tenant_of(principal, request.query_params.get("tenant"))
        filters = _filters(request)
        reach = principal.reach(Permission.VIEW_AUDIT)
        if filters.store is not None:
            if not await console.seam.run(query.store_exists, console.ready_pool(), tenant, filters.store):
                raise ApiError(404, f"there is no store {filters.store}")
            principal.require(Permission.VIEW_AUDIT, store=filters.store)
        viewer = Viewer(principal.login, reach.store_filter())
        return JSONResponse(await console.seam.run(query.search, console.ready_pool(), tenant, filters, viewer))

    async def check(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VERIFY_AUDIT)
        tenant = tenant_of(principal, request.query_params.get("tenant"))
        verdict = await console.seam.run(verify.verify, console.ready_pool(), tenant,
                                         console.config.audit.checkpoint_dir)
        return JSONResponse(verdict.as_json())

    return [route("/api/audit", GET=search), route("/api/audit/verify", GET=check)]
