"""The console never scans a table that grows with history: with 200k sales in PostgreSQL, the store
overview reads only the per-store figures the ingest transaction keeps current, and the other pages
walk an index for their bounded page. Per-store figures stay right across batches, duplicates,
reused and missing sequence numbers, and currencies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import trio

from hub.db import create_pool, migrate
from hub.ingest.inbox import Delivery, ingest
from hub.ingest.routes import MAX_ID, STORES_DEAD_LETTERS_SQL, TENANT_DEAD_LETTERS_SQL
from hub.sales.routes import RECENT_SALES_SQL, STORES_SQL
from tests.events import SUBJECT, sale_event

HISTORY = {"inbox", "sales", "sale_lines", "sale_tenders", "dead_letters"}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(conn: asyncpg.Connection, sql: str, *args: object) -> list[dict[str, Any]]:
    [[explained]] = await conn.fetch(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    return list(_nodes(json.loads(explained)[0]["Plan"]))


async def test_console_queries_do_not_scan_history_at_200k_sales(database_url: str) -> None:
    async def run() -> dict[str, list[dict[str, Any]]]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            async with pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO inbox (event_id, tenant, store, seq, type)"
                    " SELECT gen_random_uuid(), 'demo', 'store-' || (n % 50), n, 'sale.completed'"
                    " FROM generate_series(1, 200000) AS n")
                await conn.execute(
                    "INSERT INTO sales SELECT event_id, tenant, store, seq, 'till-1', 's', 'alice', 'EUR', 499, 499, 0,"
                    " now() - make_interval(secs => seq) FROM inbox")
                await conn.execute("INSERT INTO dead_letters (subject, reason, payload)"
                                   " SELECT 'novapos.' || (ARRAY['demo', 'other'])[1 + n % 2] || '.store-' || (n % 50)"
                                   "  || '.evt.sale_completed', 'bad', '' FROM generate_series(1, 20000) AS n")
                await conn.execute("ANALYZE")
                return {"stores": await _plan(conn, STORES_SQL), "sales": await _plan(conn, RECENT_SALES_SQL, 50),
                        "dead letters": await _plan(conn, TENANT_DEAD_LETTERS_SQL, 101, "demo", MAX_ID),
                        "a region's dead letters": await _plan(conn, STORES_DEAD_LETTERS_SQL, 101, "demo",
                                                               ["store-1", "store-3"], 10_000)}
        finally:
            await pool.close()
    plans = await trio.to_thread.run_sync(asyncio.run, run())
    assert not {node.get("Relation Name") for node in plans["stores"]} & HISTORY, plans["stores"]
    for page in ("sales", "dead letters", "a region's dead letters"):
        scans = [(node["Node Type"], node.get("Relation Name")) for node in plans[page] if "Relation Name" in node]
        assert scans and all(kind != "Seq Scan" for kind, _ in scans), (page, scans)


async def test_per_store_figures_stay_right_across_batches(database_url: str) -> None:
    one, three, five = sale_event(seq=1), sale_event(seq=3), sale_event(seq=5)
    three_again = sale_event(seq=3, total=100)                # another id, same seq: a reused number
    francs = sale_event(seq=6, total=250)
    francs.body["currency"] = "CHF"
    for money in (francs.body["total"], francs.body["tenders"][0]["amount"], francs.body["change"],
                  francs.body["lines"][0]["unit_price"], francs.body["lines"][0]["amount"]):
        money["currency"] = "CHF"

    async def run() -> list[asyncpg.Record]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            tenants = frozenset({"demo"})
            await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (one, three)], tenants)
            await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (three_again, five, one, three_again)], tenants)
            await ingest(pool, [Delivery(SUBJECT, francs.encode())], tenants)
            return await pool.fetch(STORES_SQL)
        finally:
            await pool.close()
    [store] = await trio.to_thread.run_sync(asyncio.run, run())
    assert (store["store"], store["sales"], store["last_seq"], store["missing"], store["reused"]) == \
        ("store-001", 5, 6, 2, 1)  # seqs seen: 1, 3, 5, 6 (2 and 4 missing); 3 under two ids
    assert json.loads(store["totals"]) == [{"currency": "CHF", "minor": 250}, {"currency": "EUR", "minor": 499 * 3 + 100}]
