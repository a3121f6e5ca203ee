"""The inventory domain's periodic jobs, each run by one hub process at a time (hub.leases), safe twice at once:

- the reservation sweeper expires due reservations and restocks them; several hubs sweep side by side
  (FOR UPDATE SKIP LOCKED: each reservation expires once);
- the low-stock publisher puts each new low-stock event on NATS (novapos.<tenant>.hub.stock_low, kept by
  the NOVAPOS_HUB_STOCK stream), marking it published in the same transaction; a publish whose commit is
  lost is sent again with the same Nats-Msg-Id, which JetStream drops as a duplicate.

Both outlive PostgreSQL or NATS going away: they say so once, back off, and carry on when it is back.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg
import nats.js.errors
from nats.js.api import StorageType, StreamConfig
from prometheus_client import Counter

from hub.console.context import Console
from hub.inventory.operations import expire_due
from hub.repeating import repeat
from novapos.adapters.nats import NatsLink
from novapos.wire.stock import LOW_STOCK_STREAM, LOW_STOCK_SUBJECTS, LowStock, encode_low_stock, low_stock_subject

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 1.0
SWEEP_BATCH = 1000
PUBLISH_EVERY_S = 0.25
PUBLISH_BATCH = 100
PUBLISH_TIMEOUT_S = 2.0
LOW_STOCK_KEPT = timedelta(days=30)
LOW_STOCK_PUBLISHED = Counter("novapos_hub_stock_low_published_total", "Low-stock events put on NATS")

PENDING_SQL = (
    "SELECT e.id, e.tenant, l.location, e.sku, e.available, e.threshold, e.created_at"
    " FROM stock_low_events e JOIN locations l ON l.id = e.location_id WHERE e.published_at IS NULL"
    " ORDER BY e.id LIMIT $1 FOR UPDATE OF e SKIP LOCKED")


async def _expire(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        expired = await expire_due(conn, SWEEP_BATCH)
    if expired:
        log.info("expired %d due reservation(s) and restocked them", expired)
    return expired


async def sweep_reservations(console: Console) -> None:
    pool = console.ready_pool()
    await repeat("expiring reservations", lambda: console.seam.run(_expire, pool), SWEEP_EVERY_S, SWEEP_BATCH)


async def _ensure_stream(link: NatsLink) -> None:
    try:
        await link.js.stream_info(LOW_STOCK_STREAM)
    except nats.js.errors.NotFoundError:
        await link.js.add_stream(StreamConfig(name=LOW_STOCK_STREAM, subjects=[LOW_STOCK_SUBJECTS],
                                              storage=StorageType.FILE, max_age=LOW_STOCK_KEPT.total_seconds()))
        log.info("created stream %s for low-stock alerts (%s, kept %d days)", LOW_STOCK_STREAM, LOW_STOCK_SUBJECTS,
                 LOW_STOCK_KEPT.days)


async def _publish(pool: asyncpg.Pool, link: NatsLink) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(PENDING_SQL, PUBLISH_BATCH)
        for row in rows:
            alert = LowStock(row["id"], row["tenant"], row["location"], row["sku"], row["available"],
                             row["threshold"], row["created_at"].isoformat())
            await link.js.publish(low_stock_subject(alert.tenant), encode_low_stock(alert),
                                  timeout=PUBLISH_TIMEOUT_S, headers={"Nats-Msg-Id": f"stock-low-{alert.id}"})
        if rows:
            await conn.execute("UPDATE stock_low_events SET published_at = now() WHERE id = ANY($1::bigint[])",
                               [row["id"] for row in rows])
    LOW_STOCK_PUBLISHED.inc(len(rows))
    return len(rows)


async def publish_low_stock(console: Console) -> None:
    pool = console.ready_pool()
    stream_ready = False

    async def step() -> int:
        nonlocal stream_ready
        if not stream_ready:
            await console.seam.run(_ensure_stream, console.link)
            stream_ready = True
        try:
            return await console.seam.run(_publish, pool, console.link)
        except nats.js.errors.NoStreamResponseError:  # the stream was deleted: make it again, then publish
            stream_ready = False
            raise
    await repeat("publishing low-stock alerts", step, PUBLISH_EVERY_S, PUBLISH_BATCH)
