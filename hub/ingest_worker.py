"""The hub's ingest loop: fetch a batch from the shared durable consumer, apply it, then ack.

The whole batch crosses the asyncio seam once (fetch, one Postgres transaction, acks). Acks come
only after the commit; if the commit fails the batch is nak'ed and comes back, and the inbox makes
the second delivery of anything that did land a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
import trio
from prometheus_client import Counter, Histogram

from edge_runtime import AsyncioSeam
from hub.ingest import BatchResult, Delivery, ingest
from novapos.nats_link import NatsLink, fetch

log = logging.getLogger(__name__)

EVENTS = Counter("novapos_hub_events_total", "Events taken from the stream, by outcome", ["result"])
BATCH_SECONDS = Histogram("novapos_hub_ingest_batch_seconds", "Time to apply and ack one batch")
MAX_BACKOFF_S = 5.0


async def ingest_once(subscription: Any, pool: asyncpg.Pool, tenants: frozenset[str], batch: int,
                      wait: float) -> BatchResult | None:
    """(asyncio side) One batch end to end; None when the stream had nothing within `wait` seconds."""
    messages = await fetch(subscription, batch, wait)
    if not messages:
        return None
    try:
        result = await ingest(pool, [Delivery(m.subject, m.data) for m in messages], tenants)
    except BaseException:
        await asyncio.gather(*(m.nak(delay=1.0) for m in messages), return_exceptions=True)
        raise
    await asyncio.gather(*(m.ack() for m in messages))
    return result


async def run_ingest(seam: AsyncioSeam, link: NatsLink, pool: asyncpg.Pool, tenants: frozenset[str],
                     batch: int = 256, wait: float = 0.5) -> None:
    """(trio side) Forever: ingest batches; on failure (NATS or PostgreSQL away, even before the consumer
    exists) log what is wrong and retry with backoff. Nothing here ends the hub."""
    subscription = None
    backoff = 0.0
    while True:
        started = time.perf_counter()
        try:
            if subscription is None:
                subscription = await seam.run(link.ingest_subscription, batch)
            result = await seam.run(ingest_once, subscription, pool, tenants, batch, wait)
        except Exception as exc:
            backoff = min(MAX_BACKOFF_S, max(0.2, backoff * 2))
            log.warning("ingest batch failed (%s: %s); retrying in %.1f s. Check PostgreSQL and NATS.",
                        type(exc).__name__, exc, backoff)
            await trio.sleep(backoff)
            continue
        backoff = 0.0
        if result is None:
            continue
        BATCH_SECONDS.observe(time.perf_counter() - started)
        for outcome in ("applied", "duplicates", "rejected"):
            if count := getattr(result, outcome):
                EVENTS.labels(outcome).inc(count)
        if result.rejected:
            log.warning("%d event(s) dead-lettered; see the console's dead letters for reasons", result.rejected)
