"""The fleet watch, a periodic job (one hub process at a time, hub.leases), and the fleet gauges (every process):

- marks a store offline once its reports have stopped for `[fleet] offline_after_s`, with one conditional
  UPDATE (`WHERE online AND last_seen < ...`): recorded and logged once, even by two processes at once (a lease
  holder that stalled past its deadline and one that took over);
- gives every active store a fleet row, so one that never reported shows on the fleet page, offline;
- purges history older than a day, a batch at a time;
- keeps each process's Prometheus gauges (labels tenant and store) equal to the fleet table, so every hub
  process exports the same figures whichever of them took a store's last report; only for active stores that
  have reported at least once (GAUGE_SQL).

It outlives PostgreSQL going away: says so once, backs off, carries on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import trio
from prometheus_client import Gauge

from edge_runtime import Backoff
from hub.console.context import Console

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
ENROL_EVERY_S = 10.0
PURGE_EVERY_S = 60.0
GAUGES_EVERY_S = 5.0
KEPT = timedelta(days=1)
PURGE_BATCH = 10_000
RETRY = Backoff(initial=0.5, maximum=15.0)

ONLINE = Gauge("novapos_hub_fleet_online", "1 while the store reports, 0 once it is marked offline (active stores that "
               "have reported at least once)",
               ["tenant", "store"])
OUTBOX_DEPTH = Gauge("novapos_hub_fleet_outbox_depth", "Events waiting in the store's outbox, as last reported",
                     ["tenant", "store"])
OLDEST_UNSENT = Gauge("novapos_hub_fleet_oldest_unsent_age_seconds",
                      "Age of the oldest event in the store's outbox, as last reported (0: empty)", ["tenant", "store"])
CLOCK_SKEW = Gauge("novapos_hub_fleet_clock_skew_seconds",
                   "The hub's receive time minus the store's clock at its last report", ["tenant", "store"])
DEVICES_DOWN = Gauge("novapos_hub_fleet_devices_down", "The store's devices not working, as last reported",
                     ["tenant", "store"])
GAUGES = (ONLINE, OUTBOX_DEPTH, OLDEST_UNSENT, CLOCK_SKEW, DEVICES_DOWN)

GONE_SQL = (
    "WITH gone AS (UPDATE fleet_status SET online = false, rank = 0, offline_since = last_seen"
    "  WHERE online AND last_seen < now() - make_interval(secs => $1)"
    "  RETURNING tenant, store, last_seen, outbox_depth, version)"
    " INSERT INTO fleet_history (tenant, store, kind, details)"
    " SELECT tenant, store, 'offline', jsonb_build_object('last_seen', last_seen, 'outbox_depth', outbox_depth)"
    " FROM gone RETURNING tenant, store, details->>'last_seen' AS last_seen, (details->>'outbox_depth')::bigint AS depth")
ENROL_SQL = (
    "INSERT INTO fleet_status (tenant, store) SELECT s.tenant, s.store FROM stores s"
    " WHERE s.status = 'active' AND NOT EXISTS (SELECT FROM fleet_status f WHERE f.tenant = s.tenant"
    " AND f.store = s.store) ON CONFLICT DO NOTHING")
PURGE_SQL = ("DELETE FROM fleet_history WHERE id IN (SELECT id FROM fleet_history WHERE at < now() - $1::interval"
             " ORDER BY at LIMIT $2)")
GAUGE_SQL = ("SELECT f.tenant, f.store, f.online, f.outbox_depth, coalesce(f.oldest_unsent_ms, 0) AS oldest_ms,"
             " coalesce(f.clock_skew_ms, 0) AS skew_ms, f.devices_down FROM fleet_status f"
             " JOIN stores s ON s.tenant = f.tenant AND s.store = f.store"
             " WHERE s.status = 'active' AND f.last_seen IS NOT NULL")
"""The gauges' stores: active ones that have reported at least once. A store added but not installed yet has no
figures to give (the fleet page shows it offline all the same), and a revoked one is gone for good: neither
should page as offline."""


async def mark_offline(pool: asyncpg.Pool, offline_after_s: float) -> int:
    """Mark the stores silent for longer than `offline_after_s` offline (once each, whichever process runs it)."""
    async with pool.acquire() as conn, conn.transaction():
        gone = await conn.fetch(GONE_SQL, float(offline_after_s))
    for row in gone:
        log.warning("store %s/%s went offline: no health report since %s (%d event(s) were waiting in its outbox); "
                    "check the store box is running and its network reaches the hub's NATS", row["tenant"],
                    row["store"], row["last_seen"], row["depth"])
    return len(gone)


async def enrol(pool: asyncpg.Pool) -> None:
    await pool.execute(ENROL_SQL)


async def purge(pool: asyncpg.Pool, kept: timedelta = KEPT) -> int:
    """Delete history older than `kept`, a batch per statement until none is left; returns how many."""
    total = 0
    while True:
        result = await pool.execute(PURGE_SQL, kept, PURGE_BATCH)
        deleted = int(result.split()[-1])
        total += deleted
        if deleted < PURGE_BATCH:
            break
    if total:
        log.info("purged %d fleet history row(s) older than %s", total, kept)
    return total


async def refresh_gauges(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(GAUGE_SQL)
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        labels: tuple[str, ...] = (row["tenant"], row["store"])
        seen.add(labels)
        ONLINE.labels(*labels).set(1 if row["online"] else 0)
        OUTBOX_DEPTH.labels(*labels).set(row["outbox_depth"])
        OLDEST_UNSENT.labels(*labels).set(row["oldest_ms"] / 1000)
        CLOCK_SKEW.labels(*labels).set(row["skew_ms"] / 1000)
        DEVICES_DOWN.labels(*labels).set(row["devices_down"])
    for gauge in GAUGES:  # a store no longer in the table (or revoked) leaves the metrics too
        for stale in {tuple(sample.labels.values()) for metric in gauge.collect() for sample in metric.samples}:
            if stale not in seen:
                gauge.remove(*stale)


async def _forever(what: str, every_s: float, step: Callable[[], Awaitable[object]]) -> None:
    failures = 0
    while True:
        try:
            await step()
        except Exception as exc:
            failures += 1
            if failures == 1:
                log.warning("%s failed (%s: %s); retrying with backoff: check PostgreSQL if this lasts", what,
                            type(exc).__name__, exc)
            await trio.sleep(max(every_s, RETRY.delay(failures)))
            continue
        if failures:
            log.info("%s works again after %d failed attempts", what, failures)
            failures = 0
        await trio.sleep(every_s)


async def watch_fleet(console: Console) -> None:
    """The job (one hub process at a time, hub.leases): every CHECK_EVERY_S mark silent stores offline; enrol and
    purge less often."""
    pool = console.ready_pool()
    offline_after_s = console.config.fleet_offline_after_s
    due = {"enrol": 0.0, "purge": 0.0}
    every = {"enrol": ENROL_EVERY_S, "purge": PURGE_EVERY_S}
    steps: dict[str, Callable[[asyncpg.Pool], Awaitable[object]]] = {"enrol": enrol, "purge": purge}

    async def step() -> None:
        await console.seam.run(mark_offline, pool, offline_after_s)
        now = time.monotonic()
        for name, each in steps.items():
            if now >= due[name]:
                await console.seam.run(each, pool)
                due[name] = now + every[name]
    await _forever("the fleet watch", CHECK_EVERY_S, step)


async def fleet_gauges(console: Console) -> None:
    """The service every hub process runs: its fleet gauges equal to the table every GAUGES_EVERY_S."""
    pool = console.ready_pool()
    await _forever("refreshing the fleet gauges", GAUGES_EVERY_S, lambda: console.seam.run(refresh_gauges, pool))
