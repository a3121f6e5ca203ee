"""Floors measured in the same run as the figure they bound: raw COPY of the very rows a run wrote, alone
or fed by a raw read of the stream the run ingested."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

FIGURE_TABLES = frozenset({"store_stats", "store_takings"})
"""Tables of per-store figures: rows the hub updates in place, copied whole."""


async def table_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Every table of the public schema and its row count."""
    tables = [row["tablename"] for row in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
    return {table: await conn.fetchval(f'SELECT count(*) FROM "{table}"') for table in tables}


async def _scratch(conn: asyncpg.Connection, tables: dict[str, int]) -> dict[str, list[tuple[Any, ...]]]:
    """Scratch tables of the same shapes as `tables` (indexes included, no foreign keys) in schema `floor`,
    and the rows each gained (a figure table's rows whole)."""
    await conn.execute("DROP SCHEMA IF EXISTS floor CASCADE; CREATE SCHEMA floor")
    rows = {}
    for table in tables:
        await conn.execute(f'CREATE TABLE floor."{table}" (LIKE public."{table}" INCLUDING DEFAULTS INCLUDING INDEXES)')
        rows[table] = [tuple(row) for row in await conn.fetch(f'SELECT * FROM public."{table}"')]
        if table not in FIGURE_TABLES:
            rows[table] = rows[table][-tables[table]:]
    return rows


async def _copy_share(conn: asyncpg.Connection, rows: dict[str, list[tuple[Any, ...]]], start: int, end: int,
                      whole: int) -> None:
    """COPY the share [start, end) of `whole` of every table's rows, in one transaction."""
    async with conn.transaction():
        for table, records in rows.items():
            share = records[len(records) * start // whole:len(records) * end // whole]
            if share:
                await conn.copy_records_to_table(table, schema_name="floor", records=share)


async def copy_floor(url: str, tables: dict[str, int], batches: int, repeats: int = 3) -> float:
    """Seconds to COPY the rows `tables` gained, raw, into scratch tables of the same shapes (indexes
    included, no foreign keys), in `batches` transactions each taking its share of every table; the
    fastest of `repeats` tries (emptied in between), a second's work being at the mercy of other load."""
    conn = await asyncpg.connect(url)
    try:
        rows = await _scratch(conn, tables)
        tries = []
        for _ in range(repeats):
            await conn.execute("TRUNCATE " + ", ".join(f'floor."{table}"' for table in rows))
            started = time.perf_counter()
            for number in range(batches):
                await _copy_share(conn, rows, number, number + 1, batches)
            tries.append(time.perf_counter() - started)
        return min(tries)
    finally:
        await conn.close()


async def stream_copy_floor(url: str, tables: dict[str, int], nats_url: str, options: dict[str, Any], stream: str,
                            messages: int, batch: int, repeats: int = 3) -> float:
    """Seconds to move `messages` events from JetStream into PostgreSQL with nothing in between: one pull
    consumer reads `stream` from its start, `batch` messages a fetch, each batch's share of the rows `tables`
    gained is COPYed raw (as copy_floor) in one transaction, then the batch is acknowledged by one ack of its
    last message (AckAll). No decoding, no checks: the machine's floor for ingest, JetStream and PostgreSQL
    both paid. The fastest of `repeats` tries (a new consumer and emptied tables each)."""
    conn = await asyncpg.connect(url)
    client = await nats.connect(nats_url.split(","), **options)
    try:
        rows = await _scratch(conn, tables)
        js = client.jetstream()
        tries = []
        for attempt in range(repeats):
            await conn.execute("TRUNCATE " + ", ".join(f'floor."{table}"' for table in rows))
            name = f"bench-floor-{attempt}"
            subscription = await js.pull_subscribe(
                "", durable=name, stream=stream,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.ALL, max_ack_pending=-1,
                                      max_waiting=1))
            started = time.perf_counter()
            read = 0
            while read < messages:
                fetched = await subscription.fetch(min(batch, messages - read), timeout=10)
                await _copy_share(conn, rows, read, read + len(fetched), messages)
                read += len(fetched)
                await fetched[-1].ack_sync()
            tries.append(time.perf_counter() - started)
            await subscription.unsubscribe()
            await js.delete_consumer(stream, name)
        return min(tries)
    finally:
        await client.close()
        await conn.close()
