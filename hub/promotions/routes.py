"""The console's promotions API: list, create a draft, edit, simulate (the predicted cost), submit, approve or
reject (a second person), schedule, end, the revisions, the tenant's settings, and replay validation's diffs.

Reading needs VIEW_PROMOTIONS and shows the promotions that apply somewhere the person's reach covers (a
tenant-wide one applies everywhere); changing needs MANAGE_PROMOTIONS covering the promotion's whole scope, as it
is and as the change would make it: a regional admin works only on promotions scoped within their regions (a
tenant-wide promotion, or settings, need a tenant-wide manager). Another tenant's promotion is not found (404).
A change the promotion's state does not allow is 409 {"error", "code": "invalid_state_transition", "state"}.
Every change is audited (hub.promotions.workflow).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.catalog.changes import timestamp
from hub.console import keyset
from hub.console.context import Console
from hub.identity.access import authorize, tenant_of
from hub.identity.principal import Principal
from hub.promotions import records, settings, simulation, workflow
from hub.promotions.records import NotFound
from hub.promotions.workflow import Check, Conflict
from novapos import promotions as engine
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission

MAX_PAGE = 200
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATES = ("draft", "pending", "live", "ended")
VISIBLE = (
    "($2::boolean OR (p.regions = '{}' AND p.stores = '{}') OR p.regions && $3::text[] OR p.stores && $4::text[]"
    " OR EXISTS (SELECT 1 FROM stores s WHERE s.tenant = p.tenant AND s.store = ANY($4::text[])"
    " AND s.region = ANY(p.regions)))")
LISTED = (
    "SELECT p.* FROM promotions p WHERE p.tenant = $1 AND " + VISIBLE + " AND ($5::text IS NULL OR p.state = $5)"
    " AND ($6::timestamptz IS NULL OR (p.created_at, p.id) < ($6, $7::uuid)) ORDER BY p.created_at DESC, p.id DESC"
    " LIMIT $8")
DIFFS = (
    "SELECT event_id, store, sold_at, diff FROM promotion_diffs WHERE tenant = $1 AND ($2::text[] IS NULL OR"
    " store = ANY($2)) AND ($3::timestamptz IS NULL OR (sold_at, event_id) < ($3, $4::uuid))"
    " ORDER BY sold_at DESC, event_id DESC LIMIT $5")


def _id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(validators.uuid_text("id", raw))
    except validators.Invalid:
        raise ApiError(404, f"there is no promotion {validators.describe(raw)}") from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_PAGE):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def _after(request: Request) -> tuple[datetime | None, uuid.UUID | None]:
    """The keyset cursor (microseconds since the epoch / id) of lists ordered newest first."""
    after = keyset.after(request.query_params, "int", "token")
    if after is None:
        return None, None
    try:
        return EPOCH + timedelta(microseconds=after[0]), uuid.UUID(validators.uuid_text("after", after[1]))
    except (validators.Invalid, ValueError, OverflowError):
        raise ApiError(400, "after is not a cursor of this list: pass back the `next` of the previous page as it "
                            "was") from None


def _cursor(stamp: str, item_id: str) -> tuple[int, str]:
    return (datetime.fromisoformat(stamp) - EPOCH) // timedelta(microseconds=1), item_id


def _reason(body: dict[str, Any]) -> str | None:
    return None if body.get("reason") in (None, "") else validators.text("reason", body["reason"])


def _moment(where: str, value: Any) -> int | None:
    return None if value is None else int(timestamp(where, value).timestamp() * 1000)


def checker(principal: Principal) -> Check:
    """MANAGE_PROMOTIONS over a whole scope: every region and store named, the tenant when none is."""
    def check(regions: tuple[str, ...], stores: tuple[str, ...]) -> None:
        if not regions and not stores:
            principal.require(Permission.MANAGE_PROMOTIONS, tenant_wide=True)
        for region in regions:
            principal.require(Permission.MANAGE_PROMOTIONS, region=region)
        for store in stores:
            principal.require(Permission.MANAGE_PROMOTIONS, store=store)
    return check


def _refused(exc: Exception) -> JSONResponse:
    if isinstance(exc, Conflict):
        return JSONResponse({"error": str(exc), "code": "invalid_state_transition", "state": exc.state},
                            status_code=409)
    return JSONResponse({"error": str(exc)}, status_code=404)


async def _visible(pool: asyncpg.Pool, principal: Principal, promotion: uuid.UUID) -> bool:
    reach = principal.reach(Permission.VIEW_PROMOTIONS)
    return bool(await pool.fetchval(
        "SELECT 1 FROM promotions p WHERE p.tenant = $1 AND " + VISIBLE + " AND p.id = $5", principal.tenant,
        reach.tenant_wide, sorted(reach.regions), sorted(reach.stores), promotion))


def routes(console: Console) -> Sequence[BaseRoute]:
    async def visible(principal: Principal, promotion: uuid.UUID) -> None:
        """404 for a promotion the person may not see (as for one that does not exist)."""
        if not await console.seam.run(_visible, console.ready_pool(), principal, promotion):
            raise ApiError(404, f"there is no promotion {promotion}")

    async def changing(request: Request, act: Callable[[Principal, uuid.UUID | None, dict[str, Any]],
                                                         Awaitable[dict[str, Any]]], *, done: int = 200) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_PROMOTIONS)
        promotion = _id(request.path_params["id"]) if "id" in request.path_params else None
        body = await json_body(request)
        if promotion is not None:
            await visible(principal, promotion)
        try:
            return JSONResponse(await act(principal, promotion, body), status_code=done)
        except (Conflict, NotFound) as exc:
            return _refused(exc)

    async def listed(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PROMOTIONS)
        tenant_of(principal, request.query_params.get("tenant"))
        state = request.query_params.get("state")
        if state is not None and state not in STATES:
            raise ApiError(400, f"state must be one of {', '.join(STATES)}, not {validators.describe(state)}")
        limit = _limit(request)
        stamp, after = _after(request)
        reach = principal.reach(Permission.VIEW_PROMOTIONS)
        rows = await console.seam.run(console.ready_pool().fetch, LISTED, principal.tenant, reach.tenant_wide,
                                      sorted(reach.regions), sorted(reach.stores), state, stamp, after, limit + 1)
        items = [records.head_json(row) for row in rows]
        return JSONResponse(keyset.page(items, limit, lambda item: _cursor(item["created_at"], item["id"])))

    async def create(request: Request) -> Response:
        async def act(principal: Principal, _: uuid.UUID | None, body: dict[str, Any]) -> dict[str, Any]:
            return dict(await console.seam.run(workflow.create, console.ready_pool(), principal.tenant, body,
                                               principal.login, checker(principal)))
        return await changing(request, act, done=201)

    async def one(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PROMOTIONS)
        promotion = _id(request.path_params["id"])
        await visible(principal, promotion)

        async def read(pool: asyncpg.Pool) -> dict[str, Any]:
            async with pool.acquire() as conn:
                return await records.detail(conn, principal.tenant, promotion)
        return JSONResponse(await console.seam.run(read, console.ready_pool()))

    async def edit(request: Request) -> Response:
        async def act(principal: Principal, promotion: uuid.UUID | None, body: dict[str, Any]) -> dict[str, Any]:
            return dict(await console.seam.run(workflow.edit, console.ready_pool(), principal.tenant, promotion, body,
                                               principal.login, checker(principal)))
        return await changing(request, act)

    async def revisions(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PROMOTIONS)
        promotion = _id(request.path_params["id"])
        await visible(principal, promotion)

        async def read(pool: asyncpg.Pool) -> list[dict[str, Any]]:
            async with pool.acquire() as conn:
                return await records.revisions(conn, principal.tenant, promotion)
        return JSONResponse({"items": await console.seam.run(read, console.ready_pool())})

    async def simulated(principal: Principal, promotion: uuid.UUID) -> dict[str, Any]:
        """Simulate the latest revision: read on the seam, replay in a worker thread, save on the seam."""
        async def read(pool: asyncpg.Pool) -> tuple[engine.Promotion, simulation.History]:
            async with pool.acquire() as conn:
                head = await records.head(conn, principal.tenant, promotion)
                checker(principal)(head.regions, head.stores)
                proposal = records.promotion_of(await records.revision_body(conn, principal.tenant, promotion,
                                                                            head.revision))
                return proposal, await simulation.history(conn, principal.tenant, proposal)
        proposal, past = await console.seam.run(read, console.ready_pool())
        prediction = await trio.to_thread.run_sync(simulation.predict, proposal, past)

        async def save(pool: asyncpg.Pool) -> dict[str, Any]:
            async with pool.acquire() as conn:
                return await simulation.save(conn, principal.tenant, proposal, past, prediction, principal.login)
        return await console.seam.run(save, console.ready_pool())

    async def simulate(request: Request) -> Response:
        async def act(principal: Principal, promotion: uuid.UUID | None, _: dict[str, Any]) -> dict[str, Any]:
            assert promotion is not None
            return await simulated(principal, promotion)
        return await changing(request, act)

    async def submit(request: Request) -> Response:
        async def act(principal: Principal, promotion: uuid.UUID | None, _: dict[str, Any]) -> dict[str, Any]:
            assert promotion is not None
            made = await simulated(principal, promotion)
            return dict(await console.seam.run(workflow.submit, console.ready_pool(), principal.tenant, promotion,
                                               made["id"], principal.login, checker(principal)))
        return await changing(request, act)

    def decision(approve: bool) -> Callable[[Request], Awaitable[Response]]:
        async def decide(request: Request) -> Response:
            async def act(principal: Principal, promotion: uuid.UUID | None, body: dict[str, Any]) -> dict[str, Any]:
                # Approval names the revision the approver saw (hub.promotions.workflow.decide).
                seen = validators.integer("revision", body.get("revision"), 1, validators.MAX_BIGINT) if approve \
                    else None
                return dict(await console.seam.run(workflow.decide, console.ready_pool(), principal.tenant, promotion,
                                                   approve, _reason(body), principal.login, checker(principal), seen))
            return await changing(request, act)
        return decide

    async def schedule(request: Request) -> Response:
        async def act(principal: Principal, promotion: uuid.UUID | None, body: dict[str, Any]) -> dict[str, Any]:
            starts, ends = _moment("starts_at", body.get("starts_at")), _moment("ends_at", body.get("ends_at"))
            if starts is not None and ends is not None and ends <= starts:
                raise validators.Invalid("ends_at", "must be after starts_at")
            return dict(await console.seam.run(workflow.schedule, console.ready_pool(), principal.tenant, promotion,
                                               starts, ends, principal.login, checker(principal)))
        return await changing(request, act)

    async def end(request: Request) -> Response:
        async def act(principal: Principal, promotion: uuid.UUID | None, body: dict[str, Any]) -> dict[str, Any]:
            return dict(await console.seam.run(workflow.end, console.ready_pool(), principal.tenant, promotion,
                                               _reason(body), principal.login, checker(principal)))
        return await changing(request, act)

    async def chosen(request: Request) -> Response:
        if request.method == "GET":
            principal = await authorize(console, request, Permission.VIEW_PROMOTIONS)

            async def read(pool: asyncpg.Pool) -> settings.Settings:
                async with pool.acquire() as conn:
                    return await settings.settings(conn, principal.tenant)
            return JSONResponse((await console.seam.run(read, console.ready_pool())).to_json())
        principal = await authorize(console, request, Permission.MANAGE_PROMOTIONS, tenant_wide=True)
        new = settings.from_json(await json_body(request))
        saved = await console.seam.run(settings.set_settings, console.ready_pool(), principal.tenant, new,
                                       principal.login)
        return JSONResponse(saved.to_json())

    async def diffs(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PROMOTIONS)
        limit = _limit(request)
        stamp, after = _after(request)
        stores = principal.reach(Permission.VIEW_PROMOTIONS).store_filter()
        rows = [] if stores == [] else await console.seam.run(
            console.ready_pool().fetch, DIFFS, principal.tenant, stores, stamp, after, limit + 1)
        items = [{"event_id": str(row["event_id"]), "store": row["store"], "sold_at": row["sold_at"].isoformat(),
                  "diff": json.loads(row["diff"])} for row in rows]
        return JSONResponse(keyset.page(items, limit, lambda item: _cursor(item["sold_at"], item["event_id"])))

    return [route("/api/promotions", GET=listed, POST=create),
            route("/api/promotions/settings", GET=chosen, PUT=chosen),
            route("/api/promotion-diffs", GET=diffs),  # beside /api/price-diffs; not under /api/promotions/{id}
            route("/api/promotions/{id}", GET=one, PUT=edit),
            route("/api/promotions/{id}/revisions", GET=revisions),
            route("/api/promotions/{id}/simulate", POST=simulate),
            route("/api/promotions/{id}/submit", POST=submit),
            route("/api/promotions/{id}/approve", POST=decision(True)),
            route("/api/promotions/{id}/reject", POST=decision(False)),
            route("/api/promotions/{id}/schedule", POST=schedule),
            route("/api/promotions/{id}/end", POST=end)]


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_DETAIL = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Promotion"}}}}
_REFUSALS = {
    "403": {"description": "the person's promotions.manage does not cover the promotion's whole scope",
            "content": _ERROR},
    "404": {"description": "no such promotion (or not one the person may see)", "content": _ERROR},
    "409": {"description": "the promotion's state does not allow this (code invalid_state_transition, with its "
                           "state), or the approver wrote or submitted it", "content": _ERROR},
    "422": {"description": "a field is out of bounds; the error says which", "content": _ERROR}}
_REASON = {"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {
    "reason": {"type": "string", "maxLength": validators.MAX_TEXT_LENGTH}}}}}}
_APPROVAL = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["revision"], "properties": {
        "revision": {"type": "integer", "minimum": 1, "description": "the pending revision the approver saw"},
        "reason": {"type": "string", "maxLength": validators.MAX_TEXT_LENGTH}}}}}}
_BODY = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PromotionBody"}}}}


def _action(summary: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": [_ID], **({"requestBody": body} if body else {}),
                     "responses": {"200": {"description": "the promotion as it is now", **_DETAIL}, **_REFUSALS}}}


def _paged(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next"], "properties": {
        "items": {"type": "array", "maxItems": MAX_PAGE, "items": {"$ref": f"#/components/schemas/{item}"}},
        "next": {"type": ["string", "null"]}}}


_LIMIT = {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}}
_SETTINGS = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PromotionSettings"}}}}
OPENAPI: dict[str, Any] = {"paths": {
    "/static/promotions.js": {"get": {"summary": "The console page's Promotions tab (hub/console/static)",
                                      "responses": {"200": {"description": "text/javascript"}}}},
    "/api/promotions": {
        "get": {"summary": "Promotions that apply where the person's reach covers, newest first",
                "parameters": [{"name": "state", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": list(STATES)}},
                               keyset.parameter("creation time and id, newest first"), _LIMIT],
                "responses": {"200": {"description": "a page of promotions", "content": {"application/json": {
                    "schema": _paged("PromotionHead")}}},
                    "400": {"description": "a bad filter, limit or cursor", "content": _ERROR}}},
        "post": {"summary": "Create a draft (revision 1); audited", "requestBody": _BODY,
                 "responses": {"201": {"description": "the draft", **_DETAIL}, **_REFUSALS}}},
    "/api/promotions/settings": {
        "get": {"summary": "The tenant's approval threshold, time zone and simulation days",
                "responses": {"200": {"description": "the settings", **_SETTINGS}}},
        "put": {"summary": "Set them (tenant-wide promotions managers); audited",
                "requestBody": {"required": True, **_SETTINGS},
                "responses": {"200": {"description": "the settings now", **_SETTINGS},
                              "422": {"description": "a value out of bounds", "content": _ERROR}}}},
    "/api/promotion-diffs": {"get": {
        "summary": "Replay validation: sales whose promotions the hub computed differently, newest first",
        "parameters": [keyset.parameter("sale time and event id, newest first"), _LIMIT],
        "responses": {"200": {"description": "a page of diffs (each canonical JSON at rest)", "content": {
            "application/json": {"schema": _paged("PromotionDiff")}}},
            "400": {"description": "a bad limit or cursor", "content": _ERROR}}}},
    "/api/promotions/{id}": {
        "get": {"summary": "A promotion: its latest revision, the live one, its last simulation and decisions",
                "parameters": [_ID], "responses": {"200": {"description": "the promotion", **_DETAIL},
                                                   "404": _REFUSALS["404"]}},
        "put": {"summary": "Edit: a new revision, a draft to simulate and submit again (a live revision stays "
                           "what the stores hold meanwhile); audited", "parameters": [_ID], "requestBody": _BODY,
                "responses": {"200": {"description": "the promotion as it is now", **_DETAIL}, **_REFUSALS}}},
    "/api/promotions/{id}/revisions": {"get": {
        "summary": "Every revision (immutable), with when and at which catalog versions each was live",
        "parameters": [_ID], "responses": {"200": {"description": "the revisions, oldest first", "content": {
            "application/json": {"schema": {"type": "object", "properties": {"items": {"type": "array"}}}}}},
            "404": _REFUSALS["404"]}}},
    "/api/promotions/{id}/simulate": {"post": {
        "summary": "Replay the latest revision over the last simulation_days of sales: its predicted cost, the sales "
                   "it touches, per store", "parameters": [_ID],
        "responses": {"200": {"description": "the simulation", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/PromotionSimulation"}}}}, **_REFUSALS}}},
    "/api/promotions/{id}/submit": _action(
        "Simulate and submit the draft: live at once within the threshold, else pending a second person's approval; "
        "audited"),
    "/api/promotions/{id}/approve": _action(
        "Approve the pending revision the approver saw (someone else than its author and submitter): it goes live; "
        "another revision pending now is 409; audited", _APPROVAL),
    "/api/promotions/{id}/reject": _action("Reject a pending promotion back to draft; audited", _REASON),
    "/api/promotions/{id}/schedule": _action(
        "Set when it starts and ends (ISO 8601 with offset, null: open) as a new revision; a live promotion only "
        "narrows at once; audited", {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"starts_at": {"type": ["string", "null"], "format": "date-time"},
                                             "ends_at": {"type": ["string", "null"], "format": "date-time"}}}}}}),
    "/api/promotions/{id}/end": _action("End it: the stores receive it inactive; audited", _REASON)},
    "schemas": {
        "PromotionBody": {"type": "object", "required": ["name", "kind"], "description": "novapos.promotions' wire "
                          "form (id, version, currency and timezone are the hub's)", "properties": {
                              "name": {"type": "string"}, "kind": {"type": "string", "enum": list(engine.KINDS)},
                              "applies_to": {"type": "string", "enum": ["items", "order"]},
                              "value": {"type": "integer"}, "target": {"type": "object"},
                              "stacking": {"type": "string", "enum": list(engine.STACKINGS)},
                              "priority": {"type": "integer"}, "regions": {"type": "array"},
                              "stores": {"type": "array"}}},
        "PromotionHead": {"type": "object", "required": ["id", "name", "state", "revision"], "properties": {
            "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
            "state": {"type": "string", "enum": list(STATES)}, "revision": {"type": "integer"},
            "live_revision": {"type": ["integer", "null"]}}},
        "Promotion": {"allOf": [{"$ref": "#/components/schemas/PromotionHead"}, {"type": "object", "properties": {
            "promotion": {"$ref": "#/components/schemas/PromotionBody"},
            "simulation": {"oneOf": [{"$ref": "#/components/schemas/PromotionSimulation"}, {"type": "null"}]},
            "decisions": {"type": "array"}}}]},
        "PromotionSimulation": {"type": "object", "required": ["cost_minor", "sales", "sales_touched",
                                                               "needs_approval"], "properties": {
            "cost_minor": {"type": "integer"}, "sales": {"type": "integer"}, "sales_touched": {"type": "integer"},
            "per_store": {"type": "object"}, "threshold_minor": {"type": "integer"},
            "needs_approval": {"type": "boolean"}, "days": {"type": "integer"}}},
        "PromotionSettings": {"type": "object", "required": ["approval_threshold_minor", "timezone",
                                                             "simulation_days"], "properties": {
            "approval_threshold_minor": {"type": "integer", "minimum": 0, "maximum": validators.MAX_MINOR},
            "timezone": {"type": "string"}, "simulation_days": {"type": "integer", "minimum": 1, "maximum": 366}}},
        "PromotionDiff": {"type": "object", "properties": {
            "event_id": {"type": "string", "format": "uuid"}, "store": {"type": "string"},
            "sold_at": {"type": "string", "format": "date-time"}, "diff": {"type": "object"}}}}}
