"""The payments relay: the payments outbox (hub.payments.outbox) published to the stores, each row once.

One hub process at a time runs it (the periodic job payment_relay, hub.leases). A pass takes a batch of unpublished rows FOR UPDATE SKIP LOCKED (several hubs side
by side each take other rows), publishes each on novapos.<tenant>.<store>.pay.<type> (core NATS, the row id as
Nats-Msg-Id, `{id, position, type, body}` as JSON), waits for the server to confirm it has them (a flush), and
marks them published in the same transaction. A hub killed after the publish and before its commit leaves the
rows unpublished: the next pass sends them again, and the store's inbox drops the second copy by its id.

Core NATS, not a stream, because the live message is only the fast path: a store numbers what it applied
(positions are per store, gap-free, committed in order under the store's head row) and asks for what follows
its last position (`answer_events`, the pay_events request) when it starts, when it reconnects, when a message
arrives with a gap before it, and every little while. PostgreSQL is the store's durable log; a stream would keep
a second copy of it and need stores to create consumers on it.

It outlives PostgreSQL and NATS going away (hub.repeating): said once, backed off, resumed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from prometheus_client import Counter

from hub.console.context import Console
from hub.repeating import repeat
from novapos.adapters.nats import NatsLink
from novapos.wire.payments import encode, payment_events_subject

log = logging.getLogger(__name__)

EVERY_S = 0.2
"""How long an idle relay waits before it looks again; a full batch is followed by the next at once."""
BATCH = 200
FLUSH_TIMEOUT_S = 5
"""How long the server may take to confirm a batch (a PING's PONG): past it the pass rolls back and the batch is sent
again (the stores drop the second copy), so not so short that a briefly starved machine sends batches twice."""
PUBLISHED = Counter("novapos_hub_payment_events_published_total", "Payment events the relay put on NATS for the stores")

PENDING_SQL = ("SELECT id, tenant, store, position, type, body::text AS body FROM payment_outbox"
               " WHERE published_at IS NULL ORDER BY tenant, store, position LIMIT $1 FOR UPDATE SKIP LOCKED")


def message(row: asyncpg.Record | dict[str, Any]) -> bytes:
    """What a store receives for one outbox row, live or when it catches up (the same bytes either way): the body
    is PostgreSQL's own JSON text of it, spliced in rather than parsed and written again."""
    head = encode({"id": str(row["id"]), "position": row["position"], "type": row["type"]})
    return b"%s,\"body\":%s}" % (head[:-1], row["body"].encode())


async def publish_pending(pool: asyncpg.Pool, link: NatsLink, batch: int = BATCH) -> int:
    """(asyncio side) One pass: publish a batch of unpublished rows and mark them; how many it published. A pass
    begun is finished even when its caller is cancelled (the hub stopping, its lease handed over): cancelled
    between the publish and the commit, it would roll back and the next holder would send the batch again."""
    return await asyncio.shield(_publish_pending(pool, link, batch))


async def _publish_pending(pool: asyncpg.Pool, link: NatsLink, batch: int) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(PENDING_SQL, batch)
        if not rows:
            return 0
        await link.connect()
        for row in rows:
            await link.client.publish(payment_events_subject(row["tenant"], row["store"], row["type"]), message(row),
                                      headers={"Nats-Msg-Id": str(row["id"])})
        await link.client.flush(timeout=FLUSH_TIMEOUT_S)  # the server has them all, or this raises and rolls back
        await conn.execute("UPDATE payment_outbox SET published_at = now() WHERE id = ANY($1::uuid[])",
                           [row["id"] for row in rows])
    PUBLISHED.inc(len(rows))
    return len(rows)


async def relay_payment_events(console: Console) -> None:
    """The hub service (hub.domains.Service) that runs `publish_pending` for ever."""
    pool = console.ready_pool()
    await repeat("publishing payment events to the stores", lambda: console.seam.run(publish_pending, pool,
                                                                                     console.link), EVERY_S, BATCH)
