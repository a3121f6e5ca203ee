"""The hub's ingest loop: fetch a batch from the shared durable consumer, apply it, then ack.

The whole batch crosses the asyncio seam once (fetch, one Postgres transaction, acks). Acks come
only after the commit; if the commit fails the batch is nak'ed and comes back, and the inbox makes
the second delivery of anything that did land a no-op.

After any failure the pull subscription is dropped and rebuilt (the stream re-ensured first): a
durable consumer or a whole stream deleted or lost on the NATS side would otherwise fail every
fetch forever. A rebuilt consumer starts from the beginning of the stream; the inbox makes that
replay harmless.
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
from hub.ingest.inbox import BatchResult, Delivery, ingest
from novapos.adapters.nats import NatsLink, fetch

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


async def subscribe(link: NatsLink, batch: int) -> Any:
    """(asyncio side) Make sure the events stream exists, then bind to (or recreate) the durable consumer."""
    await link.ensure_event_stream()
    return await link.ingest_subscription(batch)


async def drop(subscription: Any) -> None:
    """(asyncio side) Unsubscribe a pull subscription being replaced; a dead connection may refuse, which is fine."""
    try:
        await subscription.unsubscribe()
    except Exception as exc:
        log.debug("dropping the old ingest subscription: %s", exc)


async def run_ingest(seam: AsyncioSeam, link: NatsLink, pool: asyncpg.Pool, tenants: frozenset[str],
                     batch: int = 256, wait: float = 0.5) -> None:
    """(trio side) Forever: ingest batches; on failure (NATS or PostgreSQL away, the consumer or stream gone)
    log what is wrong, drop the subscription and retry with backoff. Nothing here ends the hub."""
    subscription = None
    backoff = 0.0
    while True:
        started = time.perf_counter()
        try:
            if subscription is None:
                subscription = await seam.run(subscribe, link, batch)
            result = await seam.run(ingest_once, subscription, pool, tenants, batch, wait)
        except Exception as exc:
            backoff = min(MAX_BACKOFF_S, max(0.2, backoff * 2))
            log.warning("ingest batch failed (%s: %s); retrying in %.1f s. Check PostgreSQL and NATS.",
                        type(exc).__name__, exc, backoff)
            if subscription is not None:
                await seam.run(drop, subscription)
                subscription = None
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
