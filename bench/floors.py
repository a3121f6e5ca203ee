"""Floors measured in the same run as the figure they bound: raw COPY of the very rows a run wrote."""

from __future__ import annotations

import time

import asyncpg

FIGURE_TABLES = frozenset({"store_stats", "store_takings"})
"""Tables of per-store figures: rows the hub updates in place, copied whole."""


async def table_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Every table of the public schema and its row count."""
    tables = [row["tablename"] for row in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
    return {table: await conn.fetchval(f'SELECT count(*) FROM "{table}"') for table in tables}


async def copy_floor(url: str, tables: dict[str, int], batches: int, repeats: int = 3) -> float:
    """Seconds to COPY the rows `tables` gained, raw, into scratch tables of the same shapes (indexes
    included, no foreign keys), in `batches` transactions each taking its share of every table; the
    fastest of `repeats` tries (emptied in between), a second's work being at the mercy of other load."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS floor CASCADE; CREATE SCHEMA floor")
        rows = {}
        for table in tables:
            await conn.execute(f'CREATE TABLE floor."{table}" (LIKE public."{table}" INCLUDING DEFAULTS INCLUDING INDEXES)')
            rows[table] = [tuple(row) for row in await conn.fetch(f'SELECT * FROM public."{table}"')]
            if table not in FIGURE_TABLES:
                rows[table] = rows[table][-tables[table]:]
        tries = []
        for _ in range(repeats):
            await conn.execute("TRUNCATE " + ", ".join(f'floor."{table}"' for table in rows))
            started = time.perf_counter()
            for number in range(batches):
                async with conn.transaction():
                    for table, records in rows.items():
                        share = records[len(records) * number // batches:len(records) * (number + 1) // batches]
                        if share:
                            await conn.copy_records_to_table(table, schema_name="floor", records=share)
            tries.append(time.perf_counter() - started)
        return min(tries)
    finally:
        await conn.close()
