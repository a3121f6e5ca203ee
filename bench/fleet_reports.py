"""Fleet benchmark: how many store reports one hub keeps up with, and what the fleet page costs at a day of history.

    python -m bench.fleet_reports [--stores 1000] [--reports 20000]

Real parts: embedded PostgreSQL and the hub's own code (hub.fleet). Figures:

- report_apply_per_s: health reports (4 devices each, steady state: what changes is the outbox and the clock)
  kept as the responder keeps them: 64 requests in flight at once (hub.responders.IN_FLIGHT), each submitted to
  the process's group commit (hub.fleet.reports.REPORTS), over `--stores` stores; `stores_at_5s_interval` is how
  many stores that rate serves at the default report interval. report_unbatched_per_s: the same reports each in
  its own transaction from 8 connections (how the hub kept them before group commit).
- upsert_floor_per_s: the least a batch of reports must do: one bare UPDATE of each store's row with the same
  values, 256 to a transaction (pipelined), from one connection; `apply_to_floor_ratio` compares the two.
- fleet_page_ms: GET /api/fleet's query and row shaping (hub.fleet.routes PAGE_SQL + item) for a tenant admin,
  50 stores a page from random places in the order, with `--stores` stores and a day of history (a sample per
  store per minute: stores x 1,440 rows); fleet_region_page_ms: the same for a regional admin (a quarter of
  the stores in their reach, passed as the list); history_page_ms: one store's day (HISTORY_SQL, 200 rows).
- offline_sweep_ms: one pass of the offline marker (hub.fleet.watch.mark_offline) over the whole fleet.

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
from pathlib import Path
from typing import Any

import asyncpg

from bench.figures import progress, ratio, summary
from hub.db import create_pool, migrate
from hub.fleet.reports import BATCH_MOST, REPORTS, Received, apply_reports
from hub.fleet.routes import HISTORY_SQL, PAGE_SQL, item
from hub.fleet.watch import mark_offline
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.wire.health import Device, HealthReport

WRITERS = 8
IN_FLIGHT = 64
PAGE = 50
SAMPLES_PER_DAY = 1440
DEVICES = (Device("receipt-printer", "printer", "ready", "paper ok"), Device("drawer-1", "drawer", "closed"),
           Device("scanner-1", "scanner", "ready"), Device("display-1", "display", "ready"))


def _report(depth: int) -> HealthReport:
    return HealthReport(version="0.1.0", sent_at_ms=int(time.time() * 1000), interval_s=5, reason="interval",
                        outbox_depth=depth, oldest_unsent_ms=depth * 100 or None, devices=DEVICES,
                        open_tills=("till-1",), last_sale=None)


async def _world(pool: asyncpg.Pool, stores: int) -> None:
    await pool.execute(
        "INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo', 'EUR');"
        "INSERT INTO regions (tenant, region, name) SELECT 'demo', 'r' || n, 'Region ' || n FROM generate_series(0, 3) n;"
        f"INSERT INTO stores (tenant, store, region, name) SELECT 'demo', 's-' || lpad(n::text, 6, '0'),"
        f" 'r' || (n % 4), 'Store ' || n FROM generate_series(1, {stores}) n")


async def _apply_figures(pool: asyncpg.Pool, stores: int, reports: int) -> dict[str, float]:
    names = [f"s-{n:06d}" for n in range(1, stores + 1)]
    async with pool.acquire() as conn:  # first reports: every store online, its row made, the 'online' history
        for start in range(0, stores, BATCH_MOST):
            await apply_reports(conn, [Received("demo", name, _report(0), 0) for name in names[start:start + BATCH_MOST]])
    queue = [names[n % stores] for n in range(reports)]

    async def submitter(work: list[str]) -> None:
        for number, name in enumerate(work):
            await REPORTS.submit(pool, Received("demo", name, _report(number % 7), 5))

    async def unbatched(work: list[str]) -> None:
        async with pool.acquire() as conn:
            for number, name in enumerate(work):
                await apply_reports(conn, [Received("demo", name, _report(number % 7), 5)])

    async def floor(work: list[str]) -> None:
        async with pool.acquire() as conn:
            for start in range(0, len(work), BATCH_MOST):
                async with conn.transaction():
                    await conn.executemany(
                        "UPDATE fleet_status SET last_seen = now(), outbox_depth = $3, clock_skew_ms = 5"
                        " WHERE tenant = $1 AND store = $2",
                        [("demo", name, number % 7) for number, name in enumerate(work[start:start + BATCH_MOST])])

    figures: dict[str, float] = {}
    for label, worker, lanes in (("report_apply_per_s", submitter, IN_FLIGHT),
                                 ("report_unbatched_per_s", unbatched, WRITERS), ("upsert_floor_per_s", floor, 1)):
        started = time.perf_counter()  # each lane's coroutine made only when its figure is measured
        await asyncio.gather(*(worker(queue[index::lanes]) for index in range(lanes)))
        figures[label] = round(reports / (time.perf_counter() - started))
        progress(f"{label}: {figures[label]}")
    return figures


async def _read_figures(pool: asyncpg.Pool, stores: int, pages: int) -> dict[str, Any]:
    progress(f"a day of history: {stores * SAMPLES_PER_DAY:,} rows")
    await pool.execute(
        "INSERT INTO fleet_history (tenant, store, at, kind, details) SELECT 'demo', s.store,"
        " now() - m * interval '1 minute', 'sample', '{\"outbox_depth\": 0}'"
        f" FROM stores s, generate_series(1, {SAMPLES_PER_DAY}) m")
    await pool.execute("UPDATE fleet_status SET rank = 0 WHERE store IN (SELECT store FROM fleet_status"
                       " ORDER BY random() LIMIT greatest(1, (SELECT count(*) FROM fleet_status) / 50))")
    await pool.execute("ANALYZE")
    names = sorted(row["store"] for row in await pool.fetch("SELECT store FROM fleet_status"))
    region = [name for index, name in enumerate(names, 1) if index % 4 == 0]
    timings: dict[str, list[float]] = {"fleet_page_ms": [], "fleet_region_page_ms": [], "history_page_ms": []}
    async with pool.acquire() as conn:
        for _ in range(pages):
            after = random.choice(names)
            for key, reach in (("fleet_page_ms", None), ("fleet_region_page_ms", region)):
                started = time.perf_counter()
                rows = await conn.fetch(PAGE_SQL, "demo", reach, None, None, random.choice((0, 1)), after, PAGE)
                [item(row) for row in rows]
                timings[key].append(time.perf_counter() - started)
            started = time.perf_counter()
            await conn.fetch(HISTORY_SQL, "demo", random.choice(names), None, 200)
            timings["history_page_ms"].append(time.perf_counter() - started)
    sweeps = []
    for _ in range(20):
        started = time.perf_counter()
        await mark_offline(pool, 3600)
        sweeps.append(time.perf_counter() - started)
    return {**{key: summary(samples) for key, samples in timings.items()}, "offline_sweep_ms": summary(sweeps)}


async def main(stores: int, reports: int, pages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder, EmbeddedPostgres(Path(folder) / "pg") as postgres:
        pool = await create_pool(postgres.url(), max_size=WRITERS + 2)
        try:
            await migrate(pool)
            await _world(pool, stores)
            applied = await _apply_figures(pool, stores, reports)
            read = await _read_figures(pool, stores, pages)
        finally:
            await pool.close()
    return {"stores": stores, "history_rows": stores * SAMPLES_PER_DAY, **applied,
            "stores_at_5s_interval": applied["report_apply_per_s"] * 5,
            "apply_to_floor_ratio": ratio(applied["upsert_floor_per_s"], applied["report_apply_per_s"]),
            **read, "cpu": platform.processor() or platform.machine()}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--reports", type=int, default=20000)
    parser.add_argument("--pages", type=int, default=300)
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(main(arguments.stores, arguments.reports, arguments.pages))))
