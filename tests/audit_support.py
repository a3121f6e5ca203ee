"""Helpers for the audit tests: a migrated pool on a fresh database, and chains of records to tamper with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg

from hub.audit.chain import Entry, record
from hub.db import close_pool, create_pool, migrate

T = TypeVar("T")


@asynccontextmanager
async def migrated(database_url: str, max_size: int = 4) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=max_size)
    try:
        await migrate(pool)
        yield pool
    finally:
        await close_pool(pool)


def run(database_url: str, scenario: Callable[[asyncpg.Pool], Awaitable[T]], max_size: int = 4) -> T:
    """Run an asyncio scenario against a migrated pool (the tests themselves are plain functions)."""
    async def main() -> T:
        async with migrated(database_url, max_size) as pool:
            return await scenario(pool)
    return asyncio.run(main())


async def fill(pool: asyncpg.Pool, tenant: str, count: int, *, store: str | None = "store-001") -> None:
    async with pool.acquire() as conn:
        for number in range(count):
            await record(conn, Entry(tenant, "ada", "price.set", store=store, target=f"SKU-{number}",
                                     details={"price": 100 + number}))


async def tampering(pool: asyncpg.Pool, sql: str, *args: object) -> None:
    """Run `sql` as a superuser who first switches the audit triggers off (session_replication_role)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)
