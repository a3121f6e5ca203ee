"""The console's fleet API: every store of the signed-in user's reach with its health, alerts first, and one
store's latest state with its day of history.

GET /api/fleet is keyset-paginated in the page's own order (rank, then store: `rank` 0 is a store with an
alert), read from fleet_status through its (tenant, rank, store) index: the page never reads the history.
Reach: Permission.VIEW_FLEET. A store of another tenant is not found (404); one of the same tenant outside
the user's reach is refused (403, saying who could).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.fleet.reports import BACKLOG_ALERT_MS, SKEW_ALERT_MS
from hub.identity.access import authorize, tenant_of
from novapos import validators
from novapos.adapters.http import ApiError, route
from novapos.roles import Permission
from novapos.validators import MAX_BIGINT, Invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_HISTORY = 1000
STATUSES = ("online", "offline")

_COLUMNS = (
    "SELECT f.store, s.name, s.region, f.online, f.rank, f.first_seen, f.last_seen, f.offline_since, f.version,"
    " f.outbox_depth, f.oldest_unsent_ms, f.devices::text AS devices, f.devices_down, f.clock_skew_ms, f.open_tills,"
    " f.last_sale_seq, f.last_sale_at"
    " FROM fleet_status f JOIN stores s ON s.tenant = f.tenant AND s.store = f.store"
    " WHERE f.tenant = $1 AND s.status = 'active'")
PAGE_SQL = (
    f"{_COLUMNS} AND ($2::text[] IS NULL OR f.store = ANY($2::text[]))"
    " AND ($3::text IS NULL OR s.region = $3) AND ($4::boolean IS NULL OR f.online = $4)"
    " AND (f.rank, f.store) > ($5::smallint, $6::text)"
    " ORDER BY f.rank, f.store LIMIT $7")
ONE_SQL = (
    "SELECT s.store, s.name, s.region, coalesce(f.online, false) AS online, f.first_seen, f.last_seen,"
    " f.offline_since, f.version, coalesce(f.outbox_depth, 0) AS outbox_depth, f.oldest_unsent_ms,"
    " coalesce(f.devices, '[]')::text AS devices, coalesce(f.devices_down, 0) AS devices_down, f.clock_skew_ms,"
    " coalesce(f.open_tills, '{}') AS open_tills, f.last_sale_seq, f.last_sale_at"
    " FROM stores s LEFT JOIN fleet_status f ON f.tenant = s.tenant AND f.store = s.store"
    " WHERE s.tenant = $1 AND s.store = $2 AND s.status = 'active'")
"""One store, also before the fleet watch has enrolled it (then: never reported)."""
STORE_SQL = "SELECT region FROM stores WHERE tenant = $1 AND store = $2"
REGION_SQL = ("SELECT EXISTS (SELECT FROM regions WHERE tenant = $1 AND region = $2) AS known,"
              " EXISTS (SELECT FROM stores WHERE tenant = $1 AND region = $2 AND store = ANY($3::text[])) AS some")
HISTORY_SQL = (
    "SELECT id, at, kind, details::text AS details FROM fleet_history"
    " WHERE tenant = $1 AND store = $2 AND at > now() - interval '1 day' AND ($3::bigint IS NULL OR id < $3)"
    " ORDER BY id DESC LIMIT $4")

_TOKEN = {"type": "string", "minLength": 1, "maxLength": validators.MAX_TOKEN_LENGTH,
          "pattern": f"^{validators.TOKEN_PATTERN}$"}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_REFUSALS = {"400": {"$ref": "#/components/responses/BadRequest"},
             "401": {"description": "not signed in", "content": _ERROR},
             "403": {"description": "the store or region is outside the user's reach (fleet.view): says who could",
                     "content": _ERROR},
             "404": {"description": "no such store or region in the user's tenant", "content": _ERROR},
             "422": {"$ref": "#/components/responses/BadRequest"}}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            **({"description": description} if description else {})}


OPENAPI: dict[str, Any] = {"paths": {
    "/api/fleet": {"get": {
        "summary": "Every store of the user's reach with its health, alerts first, then by store (keyset pages)",
        "parameters": [
            _query("tenant", _TOKEN, "the user's own tenant (another is a 404)"),
            _query("region", _TOKEN, "only this region's stores"),
            _query("status", {"type": "string", "enum": list(STATUSES)}),
            _query("after", {"type": "string", "maxLength": validators.MAX_TOKEN_LENGTH + 2},
                   "the `next` of the previous page"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT})],
        "responses": {"200": {"description": "a page of stores", "content": {"application/json": {"schema": {
            "type": "object", "properties": {
                "items": {"type": "array", "maxItems": MAX_LIMIT, "items": {"$ref": "#/components/schemas/FleetStore"}},
                "next": {"type": ["string", "null"], "description": "pass as `after` for the next page"}}}}}},
            **_REFUSALS}}},
    "/api/fleet/{store}": {"get": {
        "summary": "One store's latest health, with what changed in the last day (`history`, newest first, keyset pages)",
        "parameters": [{"name": "store", "in": "path", "required": True, "schema": _TOKEN},
                       _query("tenant", _TOKEN, "the user's own tenant (another is a 404)"),
                       _query("before", {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT},
                              "the `next` of the previous page of history"),
                       _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY, "default": 200})],
        "responses": {"200": {"description": "the store and its history", "content": {"application/json": {
            "schema": {"allOf": [{"$ref": "#/components/schemas/FleetStore"}, {"type": "object", "properties": {
                "history": {"type": "array", "maxItems": MAX_HISTORY, "items": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
                    "kind": {"type": "string", "enum": ["online", "offline", "device", "version", "sample"]},
                    "details": {"type": "object"}}}},
                "next": {"type": ["integer", "null"], "description": "pass as `before` for older history"}}}]}}}},
            **_REFUSALS}}},
}, "schemas": {
    "FleetStore": {"type": "object", "properties": {
        "store": _TOKEN, "name": {"type": "string"}, "region": _TOKEN, "online": {"type": "boolean"},
        "last_seen": _TIME, "offline_since": _TIME, "version": {"type": ["string", "null"]},
        "outbox": {"type": "object", "properties": {
            "depth": {"type": "integer", "minimum": 0, "description": "events waiting in the store's outbox"},
            "oldest_age_s": {"type": ["number", "null"], "description": "age of the oldest unsent event"}}},
        "devices": {"type": "array", "items": {"type": "object", "properties": {
            "name": _TOKEN, "kind": _TOKEN, "state": {"type": "string"}, "detail": {"type": "string"},
            "down": {"type": "boolean"}}}},
        "devices_down": {"type": "integer", "minimum": 0},
        "clock_skew_s": {"type": ["number", "null"], "description": "the hub's clock minus the store's"},
        "open_tills": {"type": "array", "items": _TOKEN},
        "last_sale": {"type": ["object", "null"], "properties": {"seq": {"type": "integer"}, "at": _TIME}},
        "alerts": {"type": "array", "items": {"type": "string"}, "description": "sentences for a person"}}},
}}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def alerts(row: asyncpg.Record | dict[str, Any]) -> list[str]:
    """What needs a person at this store, as sentences (empty: all well)."""
    said = []
    if row["last_seen"] is None:
        said.append("has never reported: check the store box runs and its NATS credentials are installed")
    elif not row["online"]:
        said.append(f"offline since {_iso(row['offline_since'])}: no report since then; check the store box and "
                    "its network")
    oldest = row["oldest_unsent_ms"] or 0
    if oldest > BACKLOG_ALERT_MS:
        said.append(f"backlog older than {BACKLOG_ALERT_MS // 60000} min: the oldest unsent event is "
                    f"{oldest // 60000} min old ({row['outbox_depth']} waiting); its sales are not reaching the hub")
    for device in json.loads(row["devices"]):
        if device["down"]:
            said.append(f"device {device['name']} ({device['kind']}) is {device['state'].replace('_', ' ')}"
                        + (f": {device['detail']}" if device["detail"] else ""))
    skew = row["clock_skew_ms"]
    if skew is not None and abs(skew) > SKEW_ALERT_MS:
        said.append(f"clock skew {skew / 1000:+.0f} s (over {SKEW_ALERT_MS // 1000} s): check NTP on the store box")
    return said


def item(row: asyncpg.Record) -> dict[str, Any]:
    last_sale = None if row["last_sale_seq"] is None else {"seq": row["last_sale_seq"], "at": _iso(row["last_sale_at"])}
    return {"store": row["store"], "name": row["name"], "region": row["region"], "online": row["online"],
            "last_seen": _iso(row["last_seen"]), "offline_since": _iso(row["offline_since"]),
            "version": row["version"], "outbox": {
                "depth": row["outbox_depth"],
                "oldest_age_s": None if row["oldest_unsent_ms"] is None else row["oldest_unsent_ms"] / 1000},
            "devices": [{key: device[key] for key in ("name", "kind", "state", "detail", "down")}
                        for device in json.loads(row["devices"])], "devices_down": row["devices_down"],
            "clock_skew_s": None if row["clock_skew_ms"] is None else row["clock_skew_ms"] / 1000,
            "open_tills": list(row["open_tills"]), "last_sale": last_sale, "alerts": alerts(row)}


def _cursor(value: str | None) -> tuple[int, str]:
    """`after` -> (rank, store); the start when absent."""
    if value is None:
        return -1, ""
    rank, _, store = value.partition("~")
    if rank not in ("0", "1"):
        raise ApiError(400, "after must be the `next` of a previous page")
    return int(rank), validators.token("after's store", store)


def _whole(request: Request, name: str, default: int | None, maximum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise ApiError(400, f"{name} must be a whole number from 1 to {maximum}")
    return validators.integer(name, int(raw), 1, maximum)


def routes(console: Console) -> Sequence[BaseRoute]:
    async def fetch(sql: str, *args: Any) -> list[asyncpg.Record]:
        async def run(pool: asyncpg.Pool) -> list[asyncpg.Record]:
            async with pool.acquire() as conn:
                return list(await conn.fetch(sql, *args))
        return await console.seam.run(run, console.ready_pool())

    async def page(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_FLEET)
        params = request.query_params
        tenant = tenant_of(principal, params.get("tenant"))
        status = params.get("status")
        if status is not None and status not in STATUSES:
            raise ApiError(400, f"status must be one of {', '.join(STATUSES)}")
        region = params.get("region")
        reach = principal.reach(Permission.VIEW_FLEET)
        stores = reach.store_filter()
        if region is not None:
            region = validators.token("region", region)
            known = (await fetch(REGION_SQL, tenant, region, stores or []))[0]
            if not known["known"]:
                raise ApiError(404, f"there is no region {region!r}")
            if not reach.covers_region(region) and not known["some"]:
                principal.require(Permission.VIEW_FLEET, region=region)
        rank, after = _cursor(params.get("after"))
        limit = _whole(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        rows = await fetch(PAGE_SQL, tenant, stores, region, None if status is None else status == "online",
                           rank, after, limit)
        last = rows[-1] if rows and len(rows) == limit else None
        return JSONResponse({"items": [item(row) for row in rows],
                             "next": None if last is None else f"{last['rank']}~{last['store']}"})

    async def one(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_FLEET)
        tenant = tenant_of(principal, request.query_params.get("tenant"))
        try:
            store = validators.token("store", request.path_params["store"])
        except Invalid:
            raise ApiError(404, "there is no such store") from None
        if not await fetch(STORE_SQL, tenant, store):
            raise ApiError(404, f"there is no store {store!r}")
        principal.require(Permission.VIEW_FLEET, store=store)
        before = _whole(request, "before", None, MAX_BIGINT)
        limit = _whole(request, "limit", 200, MAX_HISTORY)
        rows = await fetch(ONE_SQL, tenant, store)
        if not rows:
            raise ApiError(404, f"store {store!r} is revoked")
        history = await fetch(HISTORY_SQL, tenant, store, before, limit)
        return JSONResponse({**item(rows[0]), "history": [
            {"id": row["id"], "at": _iso(row["at"]), "kind": row["kind"], "details": json.loads(row["details"])}
            for row in history], "next": history[-1]["id"] if history and len(history) == limit else None})

    return [route("/api/fleet", GET=page), route("/api/fleet/{store}", GET=one)]
