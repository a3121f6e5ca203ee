"""`novapos hub replay --since TIME`: apply the events stream's kept history again, from a point in time.

After PostgreSQL was restored to an earlier point (a point-in-time recovery, a standby promoted before
it had caught up), the events the hub had applied and acked since then are no longer waiting for the
hub's durable consumer, but the stream still holds them (`[stream] max_age_days`). This walks them with
an ephemeral consumer of its own, starting at `since`, through the same ingest path as the hub (the
inbox makes every event the database already has a no-op, so a `since` taken too early costs time, never
a double), and stops once it has caught up with the stream's end as it was when it started. The hubs
may keep running meanwhile: both paths go through the inbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hub.ingest.inbox import Delivery, ingest
from hub.ingest.pull import fetch_batch
from novapos.adapters.nats import NatsLink
from novapos.config import HubConfig
from novapos.tls import Certificates
from novapos.wire.subjects import EVENTS_FILTER, EVENTS_STREAM

log = logging.getLogger(__name__)

BATCH = 500
FETCH_WAIT_S = 2.0
IDLE_CONSUMER_S = 300.0
"""An ephemeral consumer left behind by a killed replay is removed by the server after this long."""


@dataclass
class Replayed:
    """What a replay did: `seen` events read from the stream, of which `applied` were new to the database."""
    seen: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    held: int = 0
    to_go: int = 0
    """Events left when the replay stopped: 0 once it caught up."""


Progress = Callable[[Replayed, int], None]
"""Called after each batch with the figures so far and the number of events the replay expects in all."""


async def replay(link: NatsLink, pool: asyncpg.Pool, tenants: frozenset[str], since: datetime,
                 progress: Progress | None = None) -> Replayed:
    """(asyncio side) Apply every event the stream holds from `since` on; see the module docstring."""
    js = link.js
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME,
                            opt_start_time=since.astimezone(UTC),
                            ack_policy=AckPolicy.EXPLICIT, ack_wait=60.0, max_ack_pending=BATCH * 2,
                            inactive_threshold=IDLE_CONSUMER_S)
    subscription = await js.pull_subscribe(EVENTS_FILTER, stream=EVENTS_STREAM, config=config)
    done = Replayed()
    try:
        info = await subscription.consumer_info()
        expected = done.to_go = info.num_pending or 0
        while done.to_go > 0:
            messages = await fetch_batch(subscription, min(BATCH, done.to_go), FETCH_WAIT_S)
            if not messages:
                break  # the stream was cut under us (limits): what is left is gone
            result = await ingest(pool, [Delivery.of(m) for m in messages], tenants)
            for message in messages:
                await message.ack()
            done.seen += len(messages)
            done.applied += result.applied
            done.duplicates += result.duplicates
            done.rejected += result.rejected
            done.held += len(result.held)
            done.to_go = min(done.to_go - len(messages), messages[-1].metadata.num_pending or 0)
            if progress is not None:
                progress(done, expected)
    finally:
        try:
            await subscription.unsubscribe()
            await js.delete_consumer(EVENTS_STREAM, subscription._consumer)
        except Exception as exc:  # NATS away: the server drops the idle consumer on its own
            log.debug("replay consumer not removed: %s", exc)
    log.info("replay since %s done: %d events read, %d applied, %d already there, %d dead-lettered, %d held, %d left",
             since.isoformat(), done.seen, done.applied, done.duplicates, done.rejected, done.held, done.to_go)
    return done


class ProgressLine:
    """Progress on the terminal, at most once a second: the long work shows how far it is."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._last = 0.0

    def __call__(self, done: Replayed, expected: int) -> None:
        now = time.monotonic()
        if now - self._last < 1.0 and done.to_go:
            return
        self._last = now
        share = 100 * done.seen // expected if expected else 100
        self._write(f"replayed {done.seen} of {expected} events ({share}%): {done.applied} applied, "
                    f"{done.duplicates} already there, {done.rejected} dead-lettered")


def parse_since(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC (what the hub's logs and the console show)."""
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def _asyncio_main(config: HubConfig, since: datetime, write: Callable[[str], None]) -> Replayed:
    from hub.db import close_pool, create_pool, migrate
    pool = await create_pool(config.database_url, max_size=2)
    certificates = Certificates(config.tls)
    link = NatsLink(config.nats_url, "novapos-hub-replay", credentials=config.nats_credentials,
                    tls=certificates.client, require_tls=certificates.verifies_servers)
    try:
        await migrate(pool)
        await link.connect(timeout=5.0)
        return await replay(link, pool, frozenset(config.tenants), since, ProgressLine(write))
    finally:
        await link.close()
        await close_pool(pool)


def run_replay(config: HubConfig, since: datetime, write: Callable[[str], None]) -> Replayed:
    """The command's body, on a fresh asyncio loop."""
    return asyncio.run(_asyncio_main(config, since, write))
