"""The hub's PostgreSQL: an asyncpg pool (on the asyncio seam) and forward-only SQL migrations.

Each domain keeps its migrations in hub/<domain>/migrations/NNNN_name.sql. NNNN is one numbering
across all domains, so a migration may rely on any lower-numbered one of any domain (sales' tables
refer to ingest's inbox); they are applied in that order, each in its own transaction, recorded by
domain and name, under an advisory lock so that N hub processes starting together apply each once.

Migrations run online, while the stores sell and older hub processes ingest (docs/upgrading.md):
hub.migration_lint keeps lock-heavy statements out of them, and every statement whose lock would
stop others waits at most LOCK_TIMEOUT_S for it (lock_timeout). A lock not granted by then is given
up, the migration rolled back and tried again after a pause, so a long transaction holding the table
costs ingest a moment per attempt instead of a queue behind it for as long as it lasts. A migration
whose first line is `-- migration: no-transaction` runs statement by statement outside a transaction
(CREATE INDEX CONCURRENTLY), and is recorded once all of them have run; its statements are written
to be run again (IF NOT EXISTS), and an index its failed attempt left invalid is dropped first. On a partitioned
table (hub.partitions), which PostgreSQL refuses to index concurrently, such a statement builds each partition's
index concurrently and attaches it to the table's own (ON ONLY), so migrations index sales as they always did.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from hub.domains import Domain, domains
from hub.migration_lint import NO_TRANSACTION, statements

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x6E6F7661  # "nova"
LOCK_ERRORS = (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
"""Failures that are another transaction's lock in the way: worth trying again after a moment."""
MIGRATION_POLL_S = 0.2
"""How often a hub process waiting for another's migrations asks for the migration lock again."""

LOCK_TIMEOUT_S = 1.0
"""The longest a migration's statement waits for a lock that stops others (lock_timeout): while it waits,
every later reader or writer of that table queues behind it, ingest included."""
ATTEMPTS = 10
"""Tries of one migration whose lock was not granted in time before migrate() gives up (the hub's start then
waits and calls it again, saying so in its log)."""
PAUSE_S = (0.5, 10.0)
"""The pause after a failed attempt: doubling from the first figure to the second, with jitter."""

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


async def migrate(pool: asyncpg.Pool, of: Sequence[Domain] | None = None, *, lock_timeout_s: float = LOCK_TIMEOUT_S,
                  attempts: int = ATTEMPTS) -> list[str]:
    """Apply the migrations this database has not seen; returns them as domain/name. `lock_timeout_s` 0 waits for
    a lock as long as it takes (PostgreSQL's own default, which the online rule exists to avoid)."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _MIGRATION_LOCK):
            log.info("another hub process is applying migrations: waiting for it to finish")
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _MIGRATION_LOCK):
                # polled, not waited for in a statement: a waiting statement holds a snapshot, which the
                # other's CREATE INDEX CONCURRENTLY waits for in turn (a deadlock PostgreSQL breaks after 1 s)
                await asyncio.sleep(MIGRATION_POLL_S)
        try:
            done = await _ledger(conn)
            pending = [m for m in planned(domains() if of is None else of) if (m.domain, m.name) not in done]
            for number, migration in enumerate(pending, 1):
                log.info("applying migration %s/%s (%d of %d)", migration.domain, migration.name, number, len(pending))
                started = time.monotonic()
                await _apply(conn, migration, lock_timeout_s, attempts)
                log.info("applied migration %s/%s in %.1f s", migration.domain, migration.name,
                         time.monotonic() - started)
                applied.append(f"{migration.domain}/{migration.name}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    if applied:
        log.info("database schema up to date after %d migration(s)", len(applied))
    return applied


async def _apply(conn: asyncpg.Connection, migration: Migration, lock_timeout_s: float, attempts: int) -> None:
    """One migration, tried again while a lock it needs is not granted within lock_timeout_s."""
    sql = migration.path.read_text()
    for attempt in range(1, attempts + 1):
        try:
            if sql.lstrip().lower().startswith(NO_TRANSACTION):
                await _apply_statements(conn, migration, sql, lock_timeout_s)
            else:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL lock_timeout = {round(lock_timeout_s * 1000)}")
                    await conn.execute(sql)
                    await _record(conn, migration)
            return
        except asyncpg.LockNotAvailableError as exc:
            if attempt == attempts:
                raise RuntimeError(
                    f"migration {migration.domain}/{migration.name} did not get its lock within {lock_timeout_s} s "
                    f"in {attempts} attempts ({exc}): look for a long transaction on its tables "
                    "(SELECT pid, xact_start, query FROM pg_stat_activity WHERE state <> 'idle' ORDER BY xact_start)"
                ) from exc
            pause = min(PAUSE_S[0] * 2 ** (attempt - 1), PAUSE_S[1]) * random.uniform(0.5, 1.0)
            log.warning("migration %s/%s waited %.1f s for a lock held by another transaction (%s); ingest goes on; "
                        "attempt %d of %d failed, trying again in %.1f s", migration.domain, migration.name,
                        lock_timeout_s, exc, attempt, attempts, pause)
            await asyncio.sleep(pause)


_CONCURRENT_INDEX = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\"[^\"]+\"|\w+)",
                               re.IGNORECASE)


async def _apply_statements(conn: asyncpg.Connection, migration: Migration, sql: str, lock_timeout_s: float) -> None:
    """A no-transaction migration: each statement on its own. A concurrent index build takes no lock that stops
    others, so it waits for older transactions as long as they last; every other statement gets lock_timeout."""
    parts = statements(sql)
    for index in {match.group(1).strip('"') for part in parts if (match := _CONCURRENT_INDEX.match(part.text))}:
        await _drop_invalid(conn, index)
    try:
        for number, part in enumerate(parts, 1):
            concurrent = " CONCURRENTLY " in f" {part.text.upper()} "
            await conn.execute(f"SET lock_timeout = {0 if concurrent else round(lock_timeout_s * 1000)}")
            started = time.monotonic()
            if not await _partitioned_index(conn, part.sql, lock_timeout_s):
                await conn.execute(part.sql)
            log.info("migration %s/%s: statement %d of %d done in %.1f s (line %d)", migration.domain, migration.name,
                     number, len(parts), time.monotonic() - started, part.line)
        await _record(conn, migration)
    finally:
        await conn.execute("RESET lock_timeout")


async def _drop_invalid(conn: asyncpg.Connection, index: str) -> None:
    """Drop `index` if an interrupted concurrent build left it invalid (a partitioned table's own index is invalid
    until every partition's is attached: that one is completed instead, by _partitioned_index)."""
    if await conn.fetchval("SELECT NOT x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
                           " WHERE x.indexrelid = to_regclass($1) AND c.relkind = 'i'", index):
        log.warning("dropping index %s left invalid by an interrupted build, to build it again", index)
        await conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"')


_INDEX_ON = re.compile(r"(CREATE\s+(?:UNIQUE\s+)?INDEX)\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\"[^\"]+\"|\w+)\s+ON\s+"
                       r"(?:ONLY\s+)?(\"[^\"]+\"|[\w.]+)\s+(.*)", re.IGNORECASE | re.DOTALL)


async def _partitioned_index(conn: asyncpg.Connection, sql: str, lock_timeout_s: float) -> bool:
    """CREATE INDEX CONCURRENTLY on a partitioned table (hub.partitions), which PostgreSQL refuses, done as it allows:
    the table's own index (ON ONLY: no build, a moment's lock), each partition's built concurrently and attached;
    the table's index turns valid with the last. Returns False (nothing done) for any other statement. Every step
    can run again: a partition whose index is attached already is skipped."""
    match = _INDEX_ON.match(sql)
    if not match or not await conn.fetchval(
            "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass($1)", match.group(3)):
        return False
    create, name, table, rest = match.group(1), match.group(2).strip('"'), match.group(3), match.group(4)
    await conn.execute(f"SET lock_timeout = {round(lock_timeout_s * 1000)}")
    await conn.execute(f'{create} IF NOT EXISTS "{name}" ON ONLY {table} {rest}')
    for partition in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent ="
            " to_regclass($1) AND NOT EXISTS (SELECT FROM pg_inherits a JOIN pg_index x ON x.indexrelid = a.inhrelid"
            " WHERE a.inhparent = to_regclass($2) AND x.indrelid = c.oid) ORDER BY c.relname", table, name):
        child = f"{partition['relname']}_{name}"[:63]
        await _drop_invalid(conn, child)
        await conn.execute("SET lock_timeout = 0")
        started = time.monotonic()
        await conn.execute(f'{create} CONCURRENTLY IF NOT EXISTS "{child}" ON "{partition["relname"]}" {rest}')
        await conn.execute(f"SET lock_timeout = {round(lock_timeout_s * 1000)}")
        await conn.execute(f'ALTER INDEX "{name}" ATTACH PARTITION "{child}"')
        log.info("index %s: partition %s indexed concurrently in %.1f s", name, partition["relname"],
                 time.monotonic() - started)
    return True


async def _record(conn: asyncpg.Connection, migration: Migration) -> None:
    await conn.execute("INSERT INTO schema_migrations (domain, name) VALUES ($1, $2)", migration.domain, migration.name)
