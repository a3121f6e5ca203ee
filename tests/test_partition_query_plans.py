"""Every console query (and the store requests) that reads the partitioned tables, EXPLAINed at volume: each
partition of any size is read through an index, never scanned whole, or (the promotions simulation, which reads
every sale of its period) only the months of its period are read at all (partition pruning).

The sales of ten months are loaded by one generate_series INSERT per month, into an UNLOGGED table attached as
that month's partition afterwards: no WAL, and each index built once, sorted, by ATTACH instead of row by row (the
planner sees the same tables, sizes and statistics either way). Lines, tenders and the inbox get a row for every
tenth sale (their reads are lookups by event id: the same plan at any size), the stock ledger one for every fifth.

Size: NOVAPOS_PLAN_SALES, one million by default (make test: 26 s quiet, up to 95 s on busy cores). Ten million
(NOVAPOS_PLAN_SALES=10000000) passes too, but loading takes 4 to 11 minutes on two cores shared with other work
(218-643 s measured): run it before a release, not on every commit."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import trio

from hub.backups.holds import HOLDS_SQL, LAST_SQL
from hub.cash.routes import TAKINGS_SQL
from hub.customers import privacy, view
from hub.db import create_pool, migrate
from hub.inventory.routes import MOVEMENTS_SQL
from hub.partitions import maintain, month_start, next_month
from hub.promotions.simulation import SALES_SQL as SIMULATION_SQL
from hub.returns.orders import SALE_SQL as RETURN_SALE_SQL
from hub.sales.orders import SALE_SQL, Cursor, Window, page_sql
from hub.sales.routes import PRICE_DIFFS_SQL

log = logging.getLogger(__name__)

SALES = int(os.environ.get("NOVAPOS_PLAN_SALES", "1000000"))
MONTHS = 10
SMALL = 10_000
"""A partition of at most this many rows may be read whole (the planner rightly prefers it for a few pages): at the
default size, a month of lines, tenders or inbox rows (a drawer's takings then hash-join a month of tenders); at ten
million sales every partition is ten times larger and is read through its index."""
PARTITION = re.compile(r"^(inbox|sales|sale_lines|sale_tenders|stock_movements)_(legacy|default|p\d{6})$")
UUID7 = ("(lpad(to_hex(ms), 12, '0') || '7' || lpad(to_hex(n % 4096), 3, '0') || '8' || lpad(to_hex(n), 15, '0'))"
         "::uuid")
MONTH_OF_SALES = f"""
INSERT INTO {{table}} (event_id, tenant, store, seq, till, session, cashier, currency, total_minor, tendered_minor,
                       change_minor, completed_at, received_at, customer_id)
SELECT {UUID7}, CASE WHEN n % 10 = 0 THEN 'other' ELSE 'demo' END, 'store-' || (n % 50), n, 'till-' || (n % 4),
       's', 'alice', 'EUR', 499, 500, 1, to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0),
       CASE WHEN n % 20 = 0 THEN 'c-' || (n % 5000) END
FROM (SELECT n, $3::bigint + (n - $1) * $4::bigint AS ms FROM generate_series($1::bigint, $2::bigint) AS n) g"""
"""Sales $1..$2 evenly over one month from $3 (ms since 1970, $4 ms apart): 50 stores, 4 tills, a tenth another
tenant's, one in twenty with a customer."""
MONTH_OF = {
    "sale_lines": "INSERT INTO {table} (event_id, line_no, sku, name, quantity, unit_price_minor, amount_minor)"
                  " SELECT event_id, 1, 'COF', 'Coffee', 1, 499, 499 FROM sales_p{month} WHERE seq % 10 = 0",
    "sale_tenders": "INSERT INTO {table} (event_id, tender_no, method, amount_minor)"
                    " SELECT event_id, 1, 'cash', 500 FROM sales_p{month} WHERE seq % 10 = 0",
    "inbox": "INSERT INTO {table} (event_id, tenant, store, seq, type, received_at)"
             " SELECT event_id, tenant, store, seq, 'sale.completed', received_at FROM sales_p{month}"
             " WHERE seq % 10 = 0",
    "stock_movements": "INSERT INTO {table} (id, tenant, sku, kind, on_hand_change, store, event_id, line_no, flags,"
                       " created_at) SELECT seq, tenant, 'COF-' || (seq % 300), 'sale', -1, store, event_id, 1,"
                       " CASE WHEN seq % 1000 = 0 THEN '{{negative}}'::text[] ELSE '{{}}' END, received_at"
                       " FROM sales_p{month} WHERE seq % 5 = 0",
}
TABLES = ("sales", "sale_lines", "sale_tenders", "inbox", "stock_movements")


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(conn: asyncpg.Connection, sql: str, *args: object) -> list[dict[str, Any]]:
    [[explained]] = await conn.fetch(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    return list(_nodes(json.loads(explained)[0]["Plan"]))


async def _load(conn: asyncpg.Connection, first: datetime) -> list[str]:
    """MONTHS months of sales from `first`, as UNLOGGED partitions; returns the months (YYYYMM)."""
    months = []
    month = month_start(first)
    per_month = SALES // MONTHS
    for index in range(MONTHS):
        start, end = (datetime(m.year, m.month, 1, tzinfo=UTC) for m in (month, next_month(month)))
        name = f"{month:%Y%m}"
        low = index * per_month + 1
        started = time.monotonic()
        for table in TABLES:
            part = f"{table}_p{name}"
            await conn.execute(f"CREATE UNLOGGED TABLE {part} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            if table == "sales":
                step = int((end - start).total_seconds() * 1000) // per_month
                await conn.execute(MONTH_OF_SALES.format(table=part), low, low + per_month - 1,
                                   int(start.timestamp() * 1000), step)
            else:
                await conn.execute(MONTH_OF[table].format(table=part, month=name))
        for table in TABLES:
            low, high = (start.isoformat(), end.isoformat()) if table == "stock_movements" else (_floor(start),
                                                                                                  _floor(end))
            await conn.execute(f"ALTER TABLE {table} ATTACH PARTITION {table}_p{name}"
                               f" FOR VALUES FROM ('{low}') TO ('{high}')")
        log.info("month %s: %d sales loaded and indexed in %.1f s", name, per_month, time.monotonic() - started)
        months.append(name)
        month = next_month(month)
    return months


def _floor(at: datetime) -> uuid.UUID:
    return uuid.UUID(int=int(at.timestamp() * 1000) << 80)


def _month_after(start: datetime, months: int) -> datetime:
    month = month_start(start)
    for _ in range(months):
        month = next_month(month)
    return datetime(month.year, month.month, 1, tzinfo=UTC)


async def test_every_console_query_reads_an_index_or_prunes_at_volume(database_url: str) -> None:
    first = _month_after(datetime.now(UTC), 3)  # past 0200's bound: months of their own
    last = _month_after(first, MONTHS)
    noon = last - timedelta(days=3, hours=12)

    async def run() -> tuple[dict[str, list[dict[str, Any]]], dict[str, float], float]:
        pool = await create_pool(database_url, max_size=2)
        try:
            await migrate(pool)
            async with pool.acquire() as conn:
                started = time.monotonic()
                await _load(conn, first)
                loaded = time.monotonic() - started
                await maintain(pool, now=last)
                sample = await conn.fetchval("SELECT event_id FROM sales_p" + f"{_month_after(first, 5):%Y%m}"
                                             " WHERE seq % 10 = 0 LIMIT 1")
                await conn.execute("INSERT INTO drawer_sales (event_id, tenant, session, kind, store, seq, total_minor,"
                                   " late, received_at) SELECT event_id, tenant, 'sess-1', 'sale', store, seq,"
                                   " total_minor, false, received_at FROM sales WHERE event_id >= $1 LIMIT 200", sample)
                await conn.execute("INSERT INTO sale_price_diffs (event_id, line_no, tenant, store, sku, sold_at, diff,"
                                   " found_at) SELECT event_id, 1, 'demo', 'store-1', 'COF', now(), '{}', now()"
                                   " FROM sale_lines WHERE event_id >= $1 LIMIT 5000", sample)
                await conn.execute("ANALYZE")
                rows = {row[0]: row[1] for row in await conn.fetch(
                    "SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'")}
                region = ["store-1", "store-2", "store-3"]
                plans = {
                    "order": await _plan(conn, SALE_SQL, "demo", sample),
                    "return's sale": await _plan(conn, RETURN_SALE_SQL, "demo", sample),
                    "price diffs": await _plan(conn, PRICE_DIFFS_SQL[0], "demo", 50),
                    "region's price diffs": await _plan(conn, PRICE_DIFFS_SQL[1], "demo", 50, region),
                    "customer's orders": await _plan(conn, view.ORDERS_SQL, "demo", "c-20", None, 20),
                    "customer's orders in a region": await _plan(conn, view.ORDERS_SQL, "demo", "c-20", region, 20),
                    "customer's orders elsewhere": await _plan(conn, view.ELSEWHERE_SQL, "demo", "c-20", region),
                    "customer's data export": await _plan(conn, privacy.ORDERS_SQL, "demo", "c-20"),
                    "drawer takings": await _plan(conn, TAKINGS_SQL, "demo", "sess-1"),
                    "store's holds": await _plan(conn, HOLDS_SQL, "demo", "store-7", 1000, 501),
                    "store's last seq": await _plan(conn, LAST_SQL, "demo", "store-7"),
                    "stock movements": await _plan(conn, MOVEMENTS_SQL, "demo", None, None, False, 51, None, None,
                                                   None),
                    "a SKU's movements": await _plan(conn, MOVEMENTS_SQL, "demo", None, "COF-10", False, 51, None,
                                                     None, None),
                    "flagged movements, next page": await _plan(conn, MOVEMENTS_SQL, "demo", None, None, True, 51,
                                                                region, ["north"], SALES // 2),
                    "simulation, 30 days": await _plan(conn, SIMULATION_SQL, "demo", noon - timedelta(days=30), noon,
                                                       "EUR", 500_001),
                }
                for mode in ("auto", "force_generic_plan"):  # the hub's prepared statements turn generic
                    await conn.execute(f"SET plan_cache_mode = {mode}")
                    cursor = Cursor(noon - timedelta(hours=5), uuid.UUID(int=0))
                    for who, stores, till in (("tenant", None, None), ("region", region, None),
                                              ("till", ["store-7"], "till-2")):
                        for since, until in ((None, None), (noon - timedelta(days=2), noon)):
                            for before in (None, cursor):
                                sql, args = page_sql(Window("demo", stores, till, since, until, before, 50))
                                plans[f"orders {who} {since} {before} {mode}"] = await _plan(conn, sql, *args)
                return plans, rows, loaded
        finally:
            await pool.close()

    plans, rows, loaded = await trio.to_thread.run_sync(asyncio.run, run())
    log.info("%d sales loaded in %.1f s", SALES, loaded)
    assert sum(count for name, count in rows.items() if name.startswith("sales_p")) >= SALES * 0.99
    for page, plan in plans.items():
        scanned = [(node["Node Type"], node["Relation Name"]) for node in plan
                   if PARTITION.match(node.get("Relation Name", ""))]
        assert scanned, page
        whole = [(kind, name) for kind, name in scanned if kind == "Seq Scan" and rows.get(name, 0) > SMALL]
        if page.startswith("simulation"):  # reads its period's sales whole: only the months it spans
            period = {f"{table}_p{month:%Y%m}" for table in ("sales", "sale_lines")
                      for month in (noon - timedelta(days=30), noon)}
            assert {name for _, name in scanned if name.startswith("sales_")} <= period, (page, scanned)
            # its lines are joined by event id: a month of them outside the period is read through its index (or
            # pruned), never whole; nothing but sales and their lines is read at all
            assert all(name.startswith(("sales_", "sale_lines_")) for _, name in scanned), (page, scanned)
            assert {name for _, name in whole} <= period, (page, whole)
            continue
        assert not whole, (page, whole)
