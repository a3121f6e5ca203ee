"""The hub's PostgreSQL: an asyncpg pool (on the asyncio seam) and forward-only SQL migrations.

Migrations are files hub/migrations/NNNN_name.sql, applied in order, each in its own transaction,
under an advisory lock so that N hub processes starting together apply each one once.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x6E6F7661  # "nova"


async def create_pool(url: str, *, attempts: int = 40, min_size: int = 1, max_size: int = 8) -> asyncpg.Pool:
    """A pool, retrying while PostgreSQL is still starting (or briefly away) before giving up."""
    for attempt in range(1, attempts + 1):
        try:
            return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError) as exc:
            if attempt == attempts:
                raise ConnectionError(f"cannot reach PostgreSQL at {url}: {exc}") from exc
            await asyncio.sleep(0.25)
    raise AssertionError("unreachable")


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply the migrations this database has not seen; returns their names."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
            pending = sorted(path for path in MIGRATIONS_DIR.glob("*.sql") if path.stem not in done)
            for number, path in enumerate(pending, 1):
                log.info("applying migration %s (%d of %d)", path.stem, number, len(pending))
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.stem)
                applied.append(path.stem)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    if applied:
        log.info("database schema up to date after %d migration(s)", len(applied))
    return applied
