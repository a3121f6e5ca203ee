"""The console's reconciliation reports: the runs (nightly, from the command, from the console), one run's drift
items, and a run made now.

A run covers the whole tenant's account at the provider. Anyone who may see payments somewhere
(Permission.VIEW_PAYMENTS) sees the list and each run's figures; a run's items are narrowed to the stores the
user's reach covers (an item naming no store, a line the hub does not know, only to the tenant-wide), and
`hidden` says how many were left out. Running one now reconciles the whole tenant: MANAGE_PAYMENTS across it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console import keyset
from hub.console.context import Console
from hub.identity.access import authorize, tenant_of
from hub.payments import provider, reconciliation
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission
from novapos.validators import TOKEN_PATTERN

MAX_PAGE = 100
DEFAULT_PAGE = 30
OLDEST_DAYS = 400
"""How far back a run may be asked for (a provider keeps its settlement reports about a year)."""
_PARAMS = {"after", "limit", "tenant"}

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_AUTH = {"401": {"description": "not signed in, or the session ended: sign in (POST /api/login)", "content": _ERROR},
         "403": {"description": "the user's roles do not grant the permission (the error says who can)",
                 "content": _ERROR}}
_RUN = {"type": "object", "properties": {
    "id": {"type": "string", "format": "uuid"}, "tenant": {"type": "string"},
    "provider": {"type": "string"}, "day": {"type": "string", "format": "date", "description": "the day (UTC)"},
    "trigger": {"type": "string", "enum": ["nightly", "command", "console"]},
    "actor": {"type": "string", "description": "who ran it: hub:reconcile (nightly), cli:<user>, a console login"},
    "started_at": {"type": "string", "format": "date-time"},
    "finished_at": {"type": ["string", "null"], "format": "date-time"},
    "status": {"type": "string", "enum": ["running", "clean", "drift", "failed"]},
    "items": {"type": "integer", "description": "drift items (0: the provider agrees)"},
    "hub_movements": {"type": "integer", "description": "captures and refunds the hub counts on the day"},
    "provider_lines": {"type": "integer", "description": "lines of the provider's settlement report"},
    "error": {"type": ["string", "null"], "description": "why a failed run compared nothing"}}}
_ITEM = {"type": "object", "properties": {
    "n": {"type": "integer"}, "kind": {"type": "string", "enum": ["missing", "extra", "amount", "state"]},
    "movement": {"type": "string", "enum": ["capture", "refund"]},
    "provider_ref": {"type": "string", "description": "the payment at the provider"},
    "refund_ref": {"type": "string", "description": "the refund at the provider (a refund)"},
    "intent_id": {"type": ["string", "null"], "format": "uuid", "description": "null: the hub does not have it"},
    "store": {"type": ["string", "null"]}, "currency": {"type": ["string", "null"]},
    "hub_amount_minor": {"type": ["integer", "null"]}, "provider_amount_minor": {"type": ["integer", "null"]},
    "hub_state": {"type": ["string", "null"]}, "provider_state": {"type": ["string", "null"]},
    "message": {"type": "string"}}}
_ONE = {"allOf": [{"$ref": "#/components/schemas/ReconciliationRun"}, {"type": "object", "properties": {
    "drift": {"type": "array", "items": {"$ref": "#/components/schemas/DriftItem"}},
    "hidden": {"type": "integer", "description": "items at stores outside the user's reach, left out"}}}]}
_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]
OPENAPI: dict[str, Any] = {"paths": {
    "/api/payments/reconciliations": {
        "get": {
            "summary": "Reconciliation runs, newest first, one keyset page at a time",
            "description": "Each run compared the tenant's captures and refunds of one day (UTC) with the provider's "
                           "settlement report. Needs payments.view somewhere.",
            "parameters": [
                keyset.parameter("the run's id, newest first"),
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}},
                {"name": "tenant", "in": "query", "required": False,
                 "description": "the user's own tenant (another: 404)",
                 "schema": {"type": "string", "pattern": f"^{TOKEN_PATTERN}$"}}],
            "responses": {"200": {"description": "a page", "content": {"application/json": {
                "schema": keyset.schema("ReconciliationRun", MAX_PAGE)}}},
                "400": {"$ref": "#/components/responses/BadRequest"}, **_AUTH,
                "404": {"description": "another tenant named", "content": _ERROR}}},
        "post": {
            "summary": "Reconcile a day now (audited payment.reconciled)",
            "description": "Reads the provider's settlement report of the day and keeps the run with its drift "
                           "items. Needs payments.manage across the tenant.",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "properties": {
                    "day": {"type": "string", "format": "date",
                            "description": f"the day (UTC), today or up to {OLDEST_DAYS} days back; default: "
                                           "yesterday"}}}}}},
            "responses": {"201": {"description": "the run and its drift items", "content": {"application/json": {
                "schema": _ONE}}},
                "400": {"$ref": "#/components/responses/BadRequest"}, **_AUTH,
                "502": {"description": "the provider's settlement report could not be read (the run is kept as "
                                       "failed)", "content": _ERROR},
                "503": {"description": "no payment provider is configured, or the hub is starting",
                        "content": _ERROR}}}},
    "/api/payments/reconciliations/{id}": {"get": {
        "summary": "One reconciliation run with its drift items (those at stores in the user's reach)",
        "parameters": _ID,
        "responses": {"200": {"description": "the run", "content": {"application/json": {"schema": _ONE}}},
                      **_AUTH, "404": {"description": "the user's tenant has no such run", "content": _ERROR}}}},
}, "schemas": {"ReconciliationRun": _RUN, "DriftItem": _ITEM}}


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_PAGE))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_PAGE):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def _day(body: dict[str, Any]) -> date:
    if unknown := sorted(set(body) - {"day"}):
        raise ApiError(400, f"{validators.describe(unknown[0])} is not a field here; send {{\"day\": \"YYYY-MM-DD\"}}")
    today = datetime.now(UTC).date()
    if body.get("day") is None:
        return today - timedelta(days=1)
    value = body["day"]
    try:
        if not (isinstance(value, str) and len(value) == 10 and value.isascii()):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"day={validators.describe(value)} is not a date: use YYYY-MM-DD") from None
    if not today - timedelta(days=OLDEST_DAYS) <= day <= today:
        raise ApiError(400, f"day must be from {today - timedelta(days=OLDEST_DAYS)} to today ({today}), not {day}")
    return day


def routes(console: Console) -> Sequence[BaseRoute]:
    async def listed(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PAYMENTS)
        params = request.query_params
        if unknown := sorted(set(params) - _PARAMS):
            raise ApiError(400, f"{validators.describe(unknown[0])} is not a parameter here; use "
                                f"{', '.join(sorted(_PARAMS))}")
        tenant = tenant_of(principal, params.get("tenant"))
        limit = _limit(request)
        cursor = keyset.after(params, "token")
        if cursor is not None:
            try:
                validators.uuid_text("after", cursor[0])
            except validators.Invalid:
                raise ApiError(400, "after is not a cursor of this list: pass back the `next` of the previous "
                                    "page as it was") from None
        async def read(pool: Any) -> list[dict[str, Any]]:
            async with pool.acquire() as conn:
                return await reconciliation.runs(conn, tenant, cursor[0] if cursor else None, limit + 1)
        rows = await console.seam.run(read, console.ready_pool())
        return JSONResponse(keyset.page(rows, limit, lambda row: [row["id"]]))

    async def shown(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PAYMENTS)
        try:
            run_id = validators.uuid_text("id", request.path_params["id"])
        except validators.Invalid:
            raise ApiError(404, "there is no such reconciliation run: its id looks like "
                                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") from None

        async def read(pool: Any) -> dict[str, Any] | None:
            async with pool.acquire() as conn:
                return await reconciliation.one(conn, principal.tenant, run_id)
        found = await console.seam.run(read, console.ready_pool())
        if found is None:
            raise ApiError(404, f"there is no reconciliation run {run_id}")
        reach = principal.reach(Permission.VIEW_PAYMENTS)
        visible = [item for item in found["drift"] if reach.tenant_wide or
                   (item["store"] is not None and reach.covers_store(item["store"]))]
        return JSONResponse({**found, "drift": visible, "hidden": len(found["drift"]) - len(visible)})

    async def run_now(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_PAYMENTS, tenant_wide=True)
        day = _day(await json_body(request))
        pool = console.ready_pool()
        gateway = provider.serving(pool).gateway
        if gateway is None:
            raise ApiError(503, "no payment provider is configured ([payments] gateway_url): nothing to reconcile")
        report = await console.seam.run(reconciliation.run, pool, gateway, principal.tenant, day, "console",
                                        principal.login)
        assert report is not None  # only a nightly run can find its day already claimed
        if report.failed:
            raise ApiError(502, f"{report.run['error']}; the run is kept as failed: try again later")
        return JSONResponse({**report.run, "drift": [{"n": n, **item.to_json()} for n, item in
                                                     enumerate(report.drift, 1)], "hidden": 0}, status_code=201)

    return [route("/api/payments/reconciliations", GET=listed, POST=run_now),
            route("/api/payments/reconciliations/{id}", GET=shown)]
