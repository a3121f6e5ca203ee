"""The hub's ingest loop: fetch a batch from the shared durable consumer, apply it, then ack.

The loop is a pipeline: while one batch is applied in its PostgreSQL transaction, the next is fetched
(hub.ingest.pull) and decoded and validated, a few events at a time between PostgreSQL's answers, so
the hub's CPU work overlaps the database's. Each batch crosses the asyncio seam once. Acks come
only after the commit; if applying fails (for anything that is not an event's fault, see
hub.ingest.inbox) the batch is nak'ed at once, then the one fetched ahead, counted, logged, and the
worker sleeps its backoff before the next fetch (short after a lock wait gave up, see LOCK_RETRY): JetStream hands redeliveries out before newer
messages, so with one hub a store's events still land in the order they were published (nak'ing
with a delay would let the later events land first). The inbox makes the second delivery of
anything that did land a no-op. Per-store order across several hubs sharing the consumer is not
guaranteed here (nothing depends on it: see hub.ingest.store_stats).

Events the hub cannot apply yet (an event type or version it does not know, a tenant it does not
serve) are held: nak'ed with a long delay, counted and logged, while the rest of the batch lands.

After any failure the pull subscription is dropped and rebuilt (the stream re-ensured first): a
durable consumer or a whole stream deleted or lost on the NATS side would otherwise fail every
fetch forever. A rebuilt consumer starts from the beginning of the stream (bounded by the stream's
limits); the inbox makes that replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import trio
from nats.aio.msg import Msg
from prometheus_client import Counter, Histogram

from edge_runtime import AsyncioSeam, Backoff
from hub.db import LOCK_ERRORS
from hub.ingest.inbox import BatchResult, Delivery, Sorted, Sorter, apply_sorted
from hub.ingest.pull import fetch_batch
from hub.ingest.store_stats import EVENT_DELAY
from hub.ingest.traces import IngestSpans
from novapos import logs
from novapos.adapters.nats import NatsLink
from novapos.config.hub import StreamLimits
from novapos.wire.subjects import parse_event_subject

log = logging.getLogger(__name__)

EVENTS = Counter("novapos_hub_events_total", "Events taken from the stream, by outcome", ["result"])
RETRIES = Counter("novapos_hub_ingest_retries_total",
                  "Batches given back to the stream to retry, by the error that was not the events' fault", ["error"])
BATCH_SECONDS = Histogram("novapos_hub_ingest_batch_seconds", "Time to apply and ack one batch")
DEAD_LETTERS = Counter("novapos_hub_dead_letters_total", "Events dead-lettered by ingest, by the tenant their subject "
                       "names (unknown: a subject naming no tenant this hub serves)", ["tenant"])
OUTCOMES = ("applied", "duplicates", "rejected", "held")
RETRY = Backoff(initial=0.5, maximum=10.0)
"""Between attempts after a failure that may last (PostgreSQL or NATS away, a bug): a broken database is
not hammered, at the price of up to 12 s (the cap and its jitter) between the cause going and the batch landing."""
LOCK_RETRY = Backoff(initial=0.25, maximum=1.0)
"""Between attempts after a lock was not granted in time (lock timeout, deadlock, serialization failure). Its
cause is another session's transaction, which ends by itself, and a store's sales should land within a couple
of seconds of it ending: under RETRY a lock held for half a minute left the batch waiting 10 s more. The
database answered, and each attempt has already waited its lock_timeout there, so a 1 s cap does not hammer it."""
SORT_STEP = 32
"""Events decoded and validated between two turns of the event loop while a batch is being applied."""
HELD_DELAY_S = 60.0
"""How long an event the hub cannot apply yet waits before JetStream offers it again."""


@dataclass(frozen=True)
class Fetched:
    """A batch as it came, and sorted out (decoded, validated): ready to apply."""
    messages: list[Msg]
    deliveries: list[Delivery]
    sorted: Sorted


async def fetch_sorted(subscription: Any, tenants: frozenset[str], batch: int, wait: float) -> Fetched:
    """(asyncio side) Fetch a batch and sort it out (see hub.ingest.inbox.Sorter)."""
    messages = await fetch_batch(subscription, batch, wait)
    deliveries = [Delivery.of(m) for m in messages]
    sorter = Sorter(tenants)
    for number, delivery in enumerate(deliveries, 1):
        sorter.add(delivery)
        if number % SORT_STEP == 0:  # the batch being applied takes PostgreSQL's answers in between
            await asyncio.sleep(0)
    return Fetched(messages, deliveries, sorter.result())


class InFlight:
    """(asyncio side) The pipeline: the batch being applied, and the next one being fetched and sorted out
    meanwhile (so that decoding and the network overlap PostgreSQL's work). Both are what a failure or a
    stop gives back to JetStream at once, rather than leave for the consumer's 30 s ack wait."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []
        """The batch being applied."""
        self.ahead: asyncio.Task[Fetched] | None = None
        """The next batch, being fetched."""
        self.task: asyncio.Task[Any] | None = None

    async def take(self, subscription: Any, tenants: frozenset[str], batch: int, wait: float) -> Fetched:
        """The batch fetched ahead, or one fetched now; held in `ahead` until it came, for give_back."""
        if self.ahead is None:
            self.fetch_ahead(subscription, tenants, batch, wait)
        assert self.ahead is not None
        fetched = await asyncio.shield(self.ahead)
        self.ahead = None
        return fetched

    def fetch_ahead(self, subscription: Any, tenants: frozenset[str], batch: int, wait: float) -> None:
        self.ahead = asyncio.get_running_loop().create_task(fetch_sorted(subscription, tenants, batch, wait))

    async def give_back(self) -> None:
        """Nak at once, the batch being applied first and then the one fetched ahead (waited for, never cut
        off: messages a cut-off fetch had received would come back only after the ack wait, behind newer
        ones). JetStream redelivers these before anything newer, which keeps a store's order."""
        messages, self.messages = self.messages, []
        ahead, self.ahead = self.ahead, None
        if ahead is not None:
            try:
                messages += (await asyncio.shield(ahead)).messages
            except Exception as exc:  # a failed fetch holds nothing to give back
                log.debug("the batch fetched ahead failed: %s", exc)
        for message in messages:
            try:
                await message.nak()
            except Exception as exc:  # NATS away: the ack wait gives them back instead
                log.debug("nak failed: %s", exc)

    async def settle(self) -> None:
        """On stop: let a cancelled batch unwind (it naks what it holds), then nak anything left."""
        if self.task is not None and not self.task.done():
            await asyncio.wait([self.task], timeout=2.0)
        await self.give_back()


async def ingest_once(subscription: Any, pool: asyncpg.Pool, tenants: frozenset[str], batch: int, wait: float,
                      in_flight: InFlight) -> BatchResult | None:
    """(asyncio side) One batch end to end; None when the stream had nothing within `wait` seconds. The next
    batch is fetched and sorted out while this one is applied. A batch that cannot be applied is nak'ed at
    once, the batch fetched ahead after it (the caller backs off before fetching again); held events are
    nak'ed to come back after HELD_DELAY_S, everything else is acked, only after the commit."""
    in_flight.task = asyncio.current_task()
    try:
        fetched = await in_flight.take(subscription, tenants, batch, wait)
        if not fetched.messages:
            return None
        in_flight.messages = fetched.messages
        in_flight.fetch_ahead(subscription, tenants, batch, wait)
        spans = IngestSpans(fetched.messages)
        with spans.applying():
            result = await apply_sorted(pool, fetched.sorted)
    except BaseException:  # stopping, or the hub's trouble: redelivered first, to this hub or another
        await in_flight.give_back()
        raise
    in_flight.messages = []
    held = {hold.delivery for hold in result.held}
    for message, delivery in zip(fetched.messages, fetched.deliveries, strict=True):
        # publishes into the client's buffer, flushed by its own task: no round trip, no task per message
        await (message.nak(delay=HELD_DELAY_S) if delivery in held else message.ack())
    spans.settled(fetched.deliveries, fetched.sorted)
    return result


def _sender(subject: str) -> dict[str, str]:
    """The tenant and store an event's subject names, for the log lines about it."""
    try:
        tenant, store, _ = parse_event_subject(subject)
    except ValueError:
        return {}
    return {"tenant": tenant, "store": store}


async def subscribe(link: NatsLink, limits: StreamLimits, batch: int) -> Any:
    """(asyncio side) Make sure the events stream exists, then bind to (or recreate) the durable consumer."""
    await link.ensure_event_stream(limits)
    return await link.ingest_subscription(batch)


async def drop(subscription: Any) -> None:
    """(asyncio side) Unsubscribe a pull subscription being replaced; a dead connection may refuse, which is fine."""
    try:
        await subscription.unsubscribe()
    except Exception as exc:
        log.debug("dropping the old ingest subscription: %s", exc)


async def run_ingest(seam: AsyncioSeam, link: NatsLink, pool: asyncpg.Pool, tenants: frozenset[str],
                     limits: StreamLimits, in_flight: InFlight, batch: int = 256, wait: float = 0.5) -> None:
    """(trio side) Forever: ingest batches; on failure (NATS or PostgreSQL away, a lock timeout, a bug, the
    consumer or stream gone) log what is wrong, drop the subscription and retry with backoff. Nothing here
    ends the hub. `in_flight` is what the hub's stop gives back to JetStream."""
    for outcome in OUTCOMES:  # every series from the start: a first increase is then seen by rate()
        EVENTS.labels(outcome)
    for tenant in tenants:
        DEAD_LETTERS.labels(tenant)
    subscription = None
    failures = 0
    while True:
        started = time.perf_counter()
        try:
            if subscription is None:
                subscription = await seam.run(subscribe, link, limits, batch)
            result = await seam.run(ingest_once, subscription, pool, tenants, batch, wait, in_flight)
        except Exception as exc:
            failures += 1
            delay = (LOCK_RETRY if isinstance(exc, LOCK_ERRORS) else RETRY).delay(failures)
            RETRIES.labels(type(exc).__name__).inc()
            log.warning("ingest batch failed (%s: %r); its events go back to the stream, retry %d in %.1f s. "
                        "Check PostgreSQL and NATS; any other error is the hub's bug or a lock held too long.",
                        type(exc).__name__, str(exc), failures, delay)
            if subscription is not None:
                await seam.run(drop, subscription)
                subscription = None
            await trio.sleep(delay)
            continue
        failures = 0
        if result is None:
            continue
        BATCH_SECONDS.observe(time.perf_counter() - started)
        for outcome in ("applied", "duplicates", "rejected"):
            if count := getattr(result, outcome):
                EVENTS.labels(outcome).inc(count)
        for tenant, count in result.dead_lettered.items():
            DEAD_LETTERS.labels(tenant if tenant in tenants else "unknown").inc(count)
        for (tenant, store), skew in result.clock_skews.items():
            EVENT_DELAY.labels(tenant, store).set(skew)
        if result.held:
            EVENTS.labels("held").inc(len(result.held))
        for hold in result.held:
            with logs.bound(**_sender(hold.delivery.subject)):
                log.warning("event on %r held, offered again in %.0f s: %s", hold.delivery.subject, HELD_DELAY_S,
                            hold.reason)
        if result.rejected:
            log.warning("%d event(s) dead-lettered; see the console's dead letters for reasons", result.rejected)
