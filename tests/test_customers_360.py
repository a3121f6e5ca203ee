"""The customer 360's latency budget, on real PostgreSQL and the real console: a tenant of 5,000 customers and
60,000 orders (one regular with 5,000 of them, with loyalty accounts), 300 reads of random customers' 360s.

Budget: p95 <= 50 ms for the 360 at the hub (view.three_sixty: profile, loyalty summary, 20 recent orders), and
<= 150 ms through the console's HTTP API (GET /api/customers/{id}), on this shared two-core test machine. The
figures are printed (pytest -s) for the README."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid

import httpx
import trio

from hub.app import run_hub
from hub.customers import view
from hub.db import create_pool, migrate
from novapos.config import HubConfig
from tests.console_access import sign_in_admin
from tests.stock_world import build_world

CUSTOMERS = 5_000
ORDERS = 60_000
REGULAR_ORDERS = 5_000
READS = 300
HUB_P95_S = 0.050
HTTP_P95_S = 0.150

SEED = f"""
INSERT INTO customers (tenant, id, card_number, name, phone, email, created_by)
SELECT 'demo', ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, '27' || lpad(n::text, 12, '0'),
       'Customer ' || n, '+4930' || lpad(n::text, 7, '0'), 'c' || n || '@example.org', 'seed'
FROM generate_series(1, {CUSTOMERS}) AS n;
INSERT INTO sales (event_id, tenant, store, seq, till, session, cashier, currency, total_minor, tendered_minor,
                   change_minor, completed_at, v, customer_id, received_at)
SELECT gen_random_uuid(), 'demo', (ARRAY['store-001', 'store-002', 'store-003'])[1 + n % 3], n, 'till-1', 's',
       'alice', 'EUR', 100 + n % 5000, 100 + n % 5000, 0, now() - make_interval(mins => n), 5,
       '00000000-0000-7000-8000-' || lpad(to_hex(CASE WHEN n <= {REGULAR_ORDERS} THEN 1
                                                     ELSE 1 + n % {CUSTOMERS} END), 12, '0'),
       now() - make_interval(mins => n)
FROM generate_series(1, {ORDERS}) AS n;
ANALYZE customers; ANALYZE sales;
"""


def _customer(n: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-7000-8000-{n:012x}")


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


async def test_the_360_stays_within_its_latency_budget(hub_config: HubConfig, database_url: str,
                                                      http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    picks = [1, *(random.Random(11).randint(1, CUSTOMERS) for _ in range(READS - 1))]

    async def at_hub() -> list[float]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            await pool.execute(SEED)
            async with pool.acquire() as conn:
                found = await view.three_sixty(conn, "demo", _customer(1))
                assert found is not None and len(found["orders"]) == view.RECENT_ORDERS
                taken = []
                for n in picks:
                    started = time.perf_counter()
                    assert await view.three_sixty(conn, "demo", _customer(n)) is not None
                    taken.append(time.perf_counter() - started)
                return taken
        finally:
            await pool.close()
    hub_times = await trio.to_thread.run_sync(asyncio.run, at_hub())
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await sign_in_admin(http, hub.url, database_url)
        http_times = []
        for n in picks:
            started = time.perf_counter()
            answer = await http.get(f"{hub.url}/api/customers/{_customer(n)}")
            http_times.append(time.perf_counter() - started)
            assert answer.status_code == 200
        nursery.cancel_scope.cancel()
    print(f"\n360 at the hub: p50 {statistics.median(hub_times) * 1000:.1f} ms, p95 {_p95(hub_times) * 1000:.1f} ms;"
          f" through HTTP: p50 {statistics.median(http_times) * 1000:.1f} ms, p95 {_p95(http_times) * 1000:.1f} ms"
          f" ({CUSTOMERS} customers, {ORDERS} orders, {READS} reads)")
    assert _p95(hub_times) <= HUB_P95_S
    assert _p95(http_times) <= HTTP_P95_S
