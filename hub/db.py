"""The hub's PostgreSQL: an asyncpg pool (on the asyncio seam) and forward-only SQL migrations.

Each domain keeps its migrations in hub/<domain>/migrations/NNNN_name.sql. NNNN is one numbering
across all domains, so a migration may rely on any lower-numbered one of any domain (sales' tables
refer to ingest's inbox); they are applied in that order, each in its own transaction, recorded by
domain and name, under an advisory lock so that N hub processes starting together apply each once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from hub.domains import Domain, domains

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x6E6F7661  # "nova"

LEGACY_MIGRATIONS = {"0001_inbox_and_sales": (("ingest", "0001_inbox"), ("sales", "0002_sales"))}
"""Migrations recorded before the hub was split by domain (by name alone), and what they are now."""


@dataclass(frozen=True, order=True)
class Migration:
    number: int
    domain: str
    name: str
    path: Path


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 5.0) -> asyncpg.Pool:
    """A pool, or an error at once if PostgreSQL cannot be reached (the caller decides when to retry)."""
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=timeout)


async def close_pool(pool: asyncpg.Pool, timeout: float = 5.0) -> None:
    """Close gracefully, or drop the connections if PostgreSQL does not answer: a stop must not hang or fail."""
    try:
        await asyncio.wait_for(pool.close(), timeout)
    except Exception as exc:
        log.debug("closing the pool gracefully failed (%s); terminating its connections", exc)
        pool.terminate()


def planned(of: Sequence[Domain]) -> list[Migration]:
    """Every domain's migrations in the order they apply: by number, then by domain."""
    found = []
    for domain in of:
        for path in sorted(domain.migrations.glob("*.sql")) if domain.migrations else ():
            number, _, _ = path.stem.partition("_")
            if not number.isdigit():
                raise RuntimeError(f"migration {path} must be named NNNN_name.sql")
            found.append(Migration(int(number), domain.name, path.stem, path))
    return sorted(found)


async def _ledger(conn: asyncpg.Connection) -> set[tuple[str, str]]:
    """The (domain, name) pairs applied; converts the older by-name-only ledger on first sight."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (domain text NOT NULL, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (domain, name))")
    by_name_only = not await conn.fetchval(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = 'schema_migrations' AND column_name = 'domain'")
    if by_name_only:
        async with conn.transaction():
            old = await conn.fetch("SELECT name, applied_at FROM schema_migrations")
            await conn.execute("DROP TABLE schema_migrations")
            await conn.execute(
                "CREATE TABLE schema_migrations (domain text NOT NULL, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (domain, name))")
            await conn.executemany(
                "INSERT INTO schema_migrations (domain, name, applied_at) VALUES ($1, $2, $3)",
                [(domain, name, row["applied_at"]) for row in old
                 for domain, name in LEGACY_MIGRATIONS.get(row["name"], ())])
            log.info("migration ledger converted to per-domain records (%d older migration(s))", len(old))
    return {(row["domain"], row["name"]) for row in await conn.fetch("SELECT domain, name FROM schema_migrations")}


async def migrate(pool: asyncpg.Pool, of: Sequence[Domain] | None = None) -> list[str]:
    """Apply the migrations this database has not seen; returns them as domain/name."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            done = await _ledger(conn)
            pending = [m for m in planned(domains() if of is None else of) if (m.domain, m.name) not in done]
            for number, migration in enumerate(pending, 1):
                log.info("applying migration %s/%s (%d of %d)", migration.domain, migration.name, number, len(pending))
                async with conn.transaction():
                    await conn.execute(migration.path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (domain, name) VALUES ($1, $2)",
                                       migration.domain, migration.name)
                applied.append(f"{migration.domain}/{migration.name}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    if applied:
        log.info("database schema up to date after %d migration(s)", len(applied))
    return applied
