"""Console benchmark: the pages an admin works in, at ten million sales, through real HTTP.

    python -m bench.console [--sales 10000000] [--stores 2000] [--audit 3000000] [--samples 200]

Real parts throughout: embedded PostgreSQL (a data folder under /tmp, deleted afterwards) and NATS, a
running hub, httpx clients signed in as a tenant admin (`ada`) and a regional admin (`nora`, one region of
REGIONS). The database is filled with SQL (INSERT ... SELECT generate_series, indexes dropped while
filling and rebuilt after, as a restore would): `--sales` sales over `--stores` stores (a tenth of them
another tenant's), each store four tills, received over a year; every 100th sale with two lines and a
tender, every 1000th with a replay price diff; fleet_status for every store and `--audit` audit records
when those domains are present.

Figures, each p50 and p99 in ms over `--samples` requests (the tenant admin's; `region_` the regional
admin's): orders (the first page of GET /api/orders), orders_deep (a page below a cursor anywhere in the
year), orders_store (one store's first page), orders_range (one day), order_detail (GET /api/orders/{id}
with lines, tenders and diffs), fleet (GET /api/fleet) and audit (GET /api/audit) when present. Floor:
session_floor and region_session_floor (GET /api/session as each user: the same sign-in check and HTTP round
trip with no page behind it); `..._ratio`: a figure's p50 over its user's floor's.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import trio

from bench.figures import progress, ratio, summary
from hub.app import run_hub
from hub.db import create_pool, migrate
from hub.identity.users import Grant, create_user
from hub.sales.orders import Cursor
from novapos.config import AuditSettings, HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.passwords import make_verifier
from novapos.roles import Role

PASSWORD = "bench console password"
REGIONS = 20
START = datetime(2025, 12, 1, tzinfo=UTC)
YEAR_S = 365 * 24 * 3600
CHUNK = 1_000_000
FILLED = ("sales", "sale_lines", "sale_tenders", "sale_price_diffs", "audit_records")

SALES_SQL = """
INSERT INTO sales (event_id, tenant, store, seq, till, session, cashier, currency, total_minor, tendered_minor,
                   change_minor, completed_at, received_at, v, tax_total_minor)
SELECT gen_random_uuid(), CASE WHEN n % $3 < $4 THEN 'demo' ELSE 'other' END, 'store-' || lpad((n % $3)::text, 5, '0'),
       n / $3 + 1, 'till-' || (n / $3 % 4 + 1), 's-' || (n / 5000), 'cashier-' || (n % 97), 'EUR', 100 + n % 9900,
       100 + n % 9900, 0, $5::timestamptz + make_interval(secs => n * $6) - interval '2 seconds',
       $5::timestamptz + make_interval(secs => n * $6), 2, (100 + n % 9900) / 6
FROM generate_series($1::bigint, $2::bigint - 1) AS n
"""
DETAIL_SQL = """
INSERT INTO sale_lines (event_id, line_no, sku, name, quantity, unit_price_minor, amount_minor, catalog_version,
                        tax_class, tax_rate_ppm, tax_included, tax_minor)
SELECT event_id, line_no, 'SKU-' || (seq % 500), 'Item ' || (seq % 500), 1, total_minor / 2,
       total_minor / 2 + (total_minor % 2) * (line_no - 1), 1, 'std', 200000, true, total_minor / 12
FROM sales, generate_series(1, 2) AS line_no WHERE seq % 100 = 0;
INSERT INTO sale_tenders (event_id, tender_no, method, amount_minor)
SELECT event_id, 1, 'card', total_minor FROM sales WHERE seq % 100 = 0;
INSERT INTO sale_price_diffs (event_id, line_no, tenant, store, sku, sold_at, diff, found_at)
SELECT event_id, 1, tenant, store, 'SKU-' || (seq % 500), completed_at,
       '{"differences":{"unit_price":{"catalog":100,"till":' || (total_minor / 2) || '}}}', received_at
FROM sales WHERE seq % 1000 = 0;
"""
AUDIT_SQL = """
INSERT INTO audit_records (tenant, seq, at, actor, action, store, target, details, prev_hash, hash)
SELECT 'demo', n, $3::timestamptz + make_interval(secs => n), CASE WHEN n % 3 = 0 THEN 'ada' ELSE 'nora' END,
       (ARRAY['login', 'price.set', 'stock.adjusted', 'till.void', 'drawer.no_sale'])[n % 5 + 1],
       'store-' || lpad((n % $4)::text, 5, '0'), 'SKU-' || (n % 500), '{}', sha256(int8send(n - 1)), sha256(int8send(n))
FROM generate_series($1::bigint, $2::bigint - 1) AS n
"""


def region_of(store: int) -> str:
    return f"r{store % REGIONS:02d}"


async def _execute(conn: asyncpg.Connection, what: str, sql: str, *args: object) -> None:
    started = time.monotonic()
    await conn.execute(sql, *args)
    progress(f"  {what}: {time.monotonic() - started:.1f} s")


async def _without_indexes(conn: asyncpg.Connection, fill: Callable[[], Awaitable[None]]) -> None:
    """Fill the history tables with their keys and indexes dropped (and the foreign keys that point at them),
    then build them again (as a restore does): far faster than maintaining four indexes row by row."""
    tables = [t for t in FILLED if await conn.fetchval("SELECT to_regclass($1)", t) is not None]
    constraints = await conn.fetch(
        "SELECT conrelid::regclass::text AS tab, conname, pg_get_constraintdef(oid) AS def, contype::text FROM pg_constraint"
        " WHERE (conrelid = ANY($1::regclass[]) AND contype IN ('p', 'u', 'f'))"
        " OR (confrelid = ANY($1::regclass[]) AND contype = 'f') ORDER BY contype = 'f' DESC", tables)
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1)"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint)", tables)
    for row in constraints:
        await conn.execute(f'ALTER TABLE {row["tab"]} DROP CONSTRAINT "{row["conname"]}"')
    for row in indexes:
        await conn.execute(f'DROP INDEX "{row["indexname"]}"')
    await fill()
    await conn.execute("SET maintenance_work_mem = '1GB'")
    for row in sorted(constraints, key=lambda r: r["contype"] == "f"):
        await _execute(conn, f"{row['tab']} {row['conname']}",
                       f'ALTER TABLE {row["tab"]} ADD CONSTRAINT "{row["conname"]}" {row["def"]}')
    for row in indexes:
        await _execute(conn, row["indexname"], row["indexdef"])


async def fill(url: str, sales: int, stores: int, audit: int) -> dict[str, Any]:
    """The world, the users and the history; what was filled."""
    demo_stores = stores * 9 // 10
    pool = await create_pool(url)
    try:
        await migrate(pool)
        async with pool.acquire() as conn:
            has = {name: await conn.fetchval("SELECT to_regclass($1)", name) is not None
                   for name in ("fleet_status", "audit_records")}
            await conn.execute(
                "INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo', 'EUR'), ('other', 'Other', 'EUR');"
                "INSERT INTO regions (tenant, region, name) SELECT 'demo', 'r' || lpad(n::text, 2, '0'), 'Region ' || n"
                f" FROM generate_series(0, {REGIONS - 1}) AS n;"
                "INSERT INTO regions (tenant, region, name) VALUES ('other', 'west', 'West');")
            await conn.execute(
                "INSERT INTO stores (tenant, store, region, name) SELECT CASE WHEN n < $2 THEN 'demo' ELSE 'other' END,"
                " 'store-' || lpad(n::text, 5, '0'), CASE WHEN n < $2 THEN 'r' || lpad((n % $3)::text, 2, '0')"
                " ELSE 'west' END, 'Store ' || n FROM generate_series(0, $1 - 1) AS n", stores, demo_stores, REGIONS)
            step = YEAR_S / sales

            async def history() -> None:
                for first in range(0, sales, CHUNK):
                    last = min(sales, first + CHUNK)
                    await _execute(conn, f"sales {last:,} of {sales:,}", SALES_SQL, first, last, stores, demo_stores,
                                   START, step)
                await _execute(conn, "lines, tenders and diffs of every 100th sale", DETAIL_SQL)
                if has["audit_records"] and audit:
                    for first in range(1, audit + 1, CHUNK):
                        last = min(audit + 1, first + CHUNK)
                        await _execute(conn, f"audit records {last - 1:,} of {audit:,}", AUDIT_SQL, first, last,
                                       START, demo_stores)
                    await conn.execute("INSERT INTO audit_heads (tenant, seq, hash) VALUES ('demo', $1, sha256(int8send($1)))",
                                       audit)
            progress(f"filling: {sales:,} sales over {stores:,} stores (keys and indexes rebuilt after)")
            await _without_indexes(conn, history)
            if has["fleet_status"]:
                await _execute(conn, "fleet_status", (
                    "INSERT INTO fleet_status (tenant, store, online, rank, first_seen, last_seen, offline_since, version,"
                    " outbox_depth, devices, clock_skew_ms) SELECT tenant, store, n % 50 <> 0,"
                    " CASE WHEN n % 50 = 0 THEN 0 ELSE 1 END, now() - interval '30 days',"
                    " now() - make_interval(secs => n % 50), CASE WHEN n % 50 = 0 THEN now() - interval '1 hour' END,"
                    " '0.8.0', n % 7, '[{\"name\": \"printer\", \"kind\": \"printer\", \"state\": \"ready\","
                    " \"detail\": null, \"down\": false}]', n % 900"
                    " FROM (SELECT tenant, store, row_number() OVER () AS n FROM stores) s"))
            await _execute(conn, "VACUUM ANALYZE (as autovacuum leaves an insert-only table)", "VACUUM ANALYZE")
            for login, grant in (("ada", Grant(Role.TENANT_ADMIN)), ("nora", Grant(Role.REGIONAL_ADMIN, region="r00"))):
                verifier = await asyncio.to_thread(make_verifier, PASSWORD)
                await create_user(conn, tenant="demo", login=login, name=login.title(), actor="bench",
                                  password_hash=verifier, grants=[grant])
            samples = await conn.fetch("SELECT store, received_at, event_id FROM sales TABLESAMPLE SYSTEM (1)"
                                       " WHERE tenant = 'demo' LIMIT 50000")
            detailed = await conn.fetch("SELECT s.store, s.event_id FROM sale_tenders JOIN sales s USING (event_id)"
                                        " WHERE s.tenant = 'demo'")
        return {"samples": [dict(row) for row in samples], "detailed": [dict(row) for row in detailed],
                "fleet": has["fleet_status"],
                "audit": has["audit_records"] and audit > 0}
    finally:
        await pool.close()


class Bench:
    """Timed GETs of one signed-in client."""

    def __init__(self, client: httpx.AsyncClient, count: int) -> None:
        self.client, self.count = client, count

    async def time(self, path: Callable[[], str], check: Callable[[Any], bool] = lambda _: True) -> dict[str, float]:
        timings = []
        for number in range(self.count + 10):
            asked = path()
            started = time.perf_counter()
            answer = await self.client.get(asked)
            elapsed = time.perf_counter() - started
            assert answer.status_code == 200 and check(answer.json()), (asked, answer.status_code, answer.text[:200])
            if number >= 10:  # the first few warm the connection and the hub's statement cache
                timings.append(elapsed)
        return summary(timings)


async def measure_as(bench: Bench, mine: list[dict[str, Any]], detailed: list[dict[str, Any]],
                     pages: dict[str, bool], rng: random.Random) -> dict[str, dict[str, float]]:
    """Each page's timings for one signed-in user: `mine` are sales of their reach, `detailed` those with lines."""
    def full(page: Any) -> bool:
        return len(page["items"]) == 50

    def deep() -> str:
        sample = rng.choice(mine)
        return f"/api/orders?before={Cursor(sample['received_at'], sample['event_id']).text()}"

    def one_day() -> str:
        day = START + timedelta(days=rng.randrange(1, 360))
        return f"/api/orders?from={day.date()}&to={(day + timedelta(days=1)).date()}"

    figures = {"orders": await bench.time(lambda: "/api/orders", full),
               "orders_deep": await bench.time(deep, lambda page: "items" in page),  # the oldest: a short page
               "orders_store": await bench.time(lambda: f"/api/orders?store={rng.choice(mine)['store']}", full),
               "orders_range": await bench.time(one_day, lambda page: "items" in page),
               "order_detail": await bench.time(lambda: f"/api/orders/{rng.choice(detailed)['event_id']}",
                                                lambda order: bool(order["lines"]))}
    for name, served in pages.items():
        if served:
            figures[name] = await bench.time(lambda: f"/api/{name}", lambda page: bool(page["items"]))  # noqa: B023
    return figures


async def measure(base_url: str, world: dict[str, Any], count: int, stores: int) -> dict[str, Any]:
    rng = random.Random(8)
    demo_stores = stores * 9 // 10
    figures: dict[str, Any] = {}
    north = {f"store-{n:05d}" for n in range(demo_stores) if region_of(n) == "r00"}
    async with httpx.AsyncClient(base_url=base_url) as anonymous:
        served = set((await anonymous.get("/openapi.json")).json()["paths"])
    # HOOK: the fleet and audit pages are measured once their routes are served (helpers "fleet" and "audit").
    pages = {name: world[name] and f"/api/{name}" in served for name in ("fleet", "audit")}
    world["measured"] = [name for name, there in pages.items() if there]
    for who, prefix in (("ada", ""), ("nora", "region_")):
        mine = [s for s in world["samples"] if who == "ada" or s["store"] in north]
        detailed = [s for s in world["detailed"] if who == "ada" or s["store"] in north]
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            signed = await client.post("/api/login", json={"login": who, "password": PASSWORD})
            assert signed.status_code == 200, signed.text
            bench = Bench(client, count)
            progress(f"measuring as {who} ({'tenant admin' if who == 'ada' else 'regional admin of r00'})")
            figures[f"{prefix}session_floor"] = await bench.time(lambda: "/api/session")
            for name, timing in (await measure_as(bench, mine, detailed, pages, rng)).items():
                figures[prefix + name] = timing
    flat: dict[str, Any] = {}
    for name, timing in figures.items():
        flat[f"{name}_p50_ms"], flat[f"{name}_p99_ms"] = timing["median"], timing["p99"]
        if not name.endswith("session_floor"):
            floor = figures[("region_" if name.startswith("region_") else "") + "session_floor"]["median"]
            flat[f"{name}_to_floor_ratio"] = ratio(timing["median"], floor)
    return flat


async def main(sales: int, stores: int, audit: int, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-console-", dir="/tmp") as folder:
        state = Path(folder)
        state.chmod(0o755)
        with EmbeddedNats(state / "nats") as nats_server, EmbeddedPostgres(state / "pg") as postgres:
            url = postgres.url()
            started = time.monotonic()
            world = await trio.to_thread.run_sync(asyncio.run, fill(url, sales, stores, audit))
            filled_s = time.monotonic() - started
            size = await trio.to_thread.run_sync(asyncio.run, _database_size(url))
            progress(f"filled in {filled_s:.0f} s ({size / 2**30:.1f} GiB); starting the hub")
            config = HubConfig(tenants=("demo", "other"), http_port=0, nats_url=nats_server.url,
                               tls=nats_server.tls_settings(), database_url=url,
                               audit=AuditSettings(checkpoint_dir=state / "audit-checkpoints"))
            async with trio.open_nursery() as nursery:
                hub = await nursery.start(run_hub, config)
                figures = await measure(hub.url, world, count, stores)
                nursery.cancel_scope.cancel()
    missing = [name for name in ("fleet", "audit") if name not in world["measured"]]
    return {**figures, "sales": sales, "stores": stores, "audit_records": audit if world["audit"] else 0,
            "samples": count, "fill_s": round(filled_s), "database_gib": round(size / 2**30, 2),
            "not_measured": missing, "python": platform.python_version()}


async def _database_size(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=10_000_000)
    parser.add_argument("--stores", type=int, default=2000)
    parser.add_argument("--audit", type=int, default=3_000_000)
    parser.add_argument("--samples", type=int, default=200)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.sales, arguments.stores, arguments.audit, arguments.samples)))
