"""What every console route may use: the pool (once PostgreSQL is reached), the asyncio seam, NATS."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from edge_runtime import AsyncioSeam
from novapos.adapters.http import ApiError
from novapos.adapters.nats import NatsLink
from novapos.config import HubConfig


async def _fetch(pool: asyncpg.Pool, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        return [dict(row) for row in await conn.fetch(sql, *args)]


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value if isinstance(value, (int, float, str, bool, list, dict, type(None))) else str(value)
             for key, value in row.items()} for row in rows]


@dataclass
class Console:
    """Shared by the console's routes. The console serves from the first second, so that /healthz can say
    what the hub still waits for (`waiting_for`, None once ready); `pool` is None until PostgreSQL is reached."""
    seam: AsyncioSeam
    link: NatsLink
    tenants: frozenset[str]
    pool: asyncpg.Pool | None = None
    waiting_for: str | None = "PostgreSQL"
    nats_lost_since: datetime | None = None
    """Set once the started hub has been cut off from NATS for longer than a grace (see hub.nats_watch)."""
    config: HubConfig = field(default_factory=HubConfig)
    """The hub's settings, for the domains' routes and services that read their own table ([fleet])."""

    def ready_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise ApiError(503, f"the hub is starting and still waiting for {self.waiting_for}; try again shortly")
        return self.pool

    async def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts (timestamps and ids as text), one seam crossing."""
        return _jsonable(await self.seam.run(_fetch, self.ready_pool(), sql, *args))
