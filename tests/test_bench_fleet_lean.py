"""bench.fleet_lean's lean stores (bench.lean_stores) sell through a real hub (embedded NATS with a user per store
and TLS, the test's PostgreSQL, a `novapos hub` child): every sale lands exactly once, each store's sequence numbers
1..N with one row each; the hub keeps their health reports; a price change reaches every store's open catalog pull;
and the run's figures (lag, CPU by part) come out. 20 stores for 8 s (about 20 s with the servers' start)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import trio

from bench.fleet import Run
from bench.fleet_lean import arguments, failed_by, landed, lean_run
from bench.ingest import TENANT
from hub.db import close_pool, create_pool
from novapos.sim import FleetSpec, seed_fleet
from tests.conftest import query

STORES, SECONDS = 20, 8


async def _seed(database_url: str, spec: FleetSpec) -> None:
    """(asyncio side) The fleet's tenant, stores and catalog, as bench.fleet's fresh_database seeds them."""
    pool = await create_pool(database_url, max_size=2)
    try:
        await seed_fleet(pool, spec)
    finally:
        await close_pool(pool)


async def _run(folder: Path, database_url: str, spec: FleetSpec) -> tuple[Run, dict[str, Any]]:
    """(asyncio side) Seed, then run the stores as bench.fleet_lean runs one size of its ladder."""
    await _seed(database_url, spec)
    return await lean_run(folder, database_url, spec, arguments(["--duration", str(SECONDS), "--processes", "2"]))


def _rows(counts: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    return [{"store": store, "rows": rows, "ours": ours} for store, (rows, ours) in counts.items()]


def test_a_lost_or_doubled_sale_is_counted() -> None:
    sent = {"a": 3, "b": 2}
    assert landed(_rows({"a": (3, 3), "b": (2, 2)}), sent) == (0, 0)
    assert landed(_rows({"a": (2, 2), "b": (2, 2)}), sent) == (1, 0)
    assert landed(_rows({"a": (4, 3), "b": (3, 2)}), sent) == (0, 2)  # twice, never made
    assert landed(_rows({"a": (3, 3)}), sent) == (2, 0)  # a store none of whose landed


async def test_lean_stores_sell_through_a_real_hub_exactly_once(tmp_path: Path, database_url: str) -> None:
    spec = FleetSpec(stores=STORES, processes=2, tenant=TENANT)
    run, extra = await trio.to_thread.run_sync(asyncio.run, _run(tmp_path / "lean", database_url, spec))

    # Every store sold a sale a second, each exactly once in PostgreSQL, in sequence (counted here, not by the bench)
    rows = await query(database_url, "SELECT store, array_agg(seq ORDER BY seq) AS seqs, count(DISTINCT event_id) AS"
                       " ids FROM sales GROUP BY store ORDER BY store")
    assert [row["store"] for row in rows] == spec.store_names()
    assert all(row["seqs"] == list(range(1, SECONDS + 1)) and row["ids"] == SECONDS for row in rows), rows
    assert (run.lost, run.doubled, run.drained, run.refused) == (0, 0, True, 0)
    assert [reason for reason in failed_by(run) if reason not in ("ingest lag", "generator late")] == []
    assert run.events_per_s > 0 and 0 <= run.lag_p50_s <= run.lag_p99_s < SECONDS
    assert {"generator", "hub", "nats", "postgresql"} <= set(run.cores) and run.cores["generator"] > 0
    # The hub kept every store's health reports (a report at the start, then every 5 s) and answered them. (Whether
    # a store is still online depends on how long the generator took to stop: 20 s silent marks it offline.)
    seen = await query(database_url, "SELECT store FROM fleet_status WHERE last_seen IS NOT NULL ORDER BY store")
    assert [row["store"] for row in seen] == spec.store_names()
    assert extra["health_failed"] == 0 and extra["health_reports_per_s"] >= STORES / SECONDS
    # The price change made mid-run reached every store's open catalog pull
    assert len(run.price_change_s) == STORES and extra["catalog_pull_restarts"] == 0
    assert extra["publish_failures"] == 0 and extra["generator_cpu_ms_per_sale"] > 0
