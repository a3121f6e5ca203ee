"""The hub console for regional admins: stores, recent sales, dead letters; plus /healthz, /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from edge_runtime import AsyncioSeam
from novapos.adapters.http import ApiError, metrics, with_api_errors
from novapos.adapters.nats import NatsLink

PAGE = Path(__file__).parent / "console.html"


async def _fetch(pool: asyncpg.Pool, query: str, *args: Any) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        return [dict(row) for row in await conn.fetch(query, *args)]


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value if isinstance(value, (int, str, type(None))) else str(value) for key, value in row.items()}
            for row in rows]


def build_console(seam: AsyncioSeam, pool: asyncpg.Pool, link: NatsLink) -> Starlette:
    async def query(sql: str, *args: Any) -> list[dict[str, Any]]:
        return _jsonable(await seam.run(_fetch, pool, sql, *args))

    async def stores(_request: Request) -> Response:
        return JSONResponse(await query(
            "SELECT s.tenant, s.store, count(*) AS sales, sum(s.total_minor)::bigint AS total_minor, min(s.currency) AS currency,"
            " max(s.seq) AS last_seq, max(s.completed_at) AS last_sale,"
            " (SELECT max(i.seq) - count(DISTINCT i.seq) FROM inbox i"
            "  WHERE i.tenant = s.tenant AND i.store = s.store) AS missing,"
            " (SELECT count(*) - count(DISTINCT i.seq) FROM inbox i"
            "  WHERE i.tenant = s.tenant AND i.store = s.store) AS reused"
            " FROM sales s GROUP BY s.tenant, s.store ORDER BY s.tenant, s.store"))

    async def sales(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            raise ApiError(400, "limit must be a whole number") from None
        if not 1 <= limit <= 500:
            raise ApiError(400, "limit must be between 1 and 500")
        return JSONResponse(await query(
            "SELECT event_id, tenant, store, seq, till, cashier, total_minor, currency, completed_at"
            " FROM sales ORDER BY completed_at DESC LIMIT $1", limit))

    async def dead_letters(_request: Request) -> Response:
        return JSONResponse(await query(
            "SELECT id, event_id, subject, reason, received_at FROM dead_letters ORDER BY id DESC LIMIT 100"))

    async def healthz(_request: Request) -> Response:
        try:
            await query("SELECT 1")
        except Exception as exc:
            return JSONResponse({"status": "failing", "database": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "nats": "connected" if link.connected else "reconnecting"})

    async def index(_request: Request) -> Response:
        return FileResponse(PAGE)

    return with_api_errors(Starlette(routes=[
        Route("/", index),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/api/stores", stores),
        Route("/api/sales", sales),
        Route("/api/dead-letters", dead_letters),
    ]))
