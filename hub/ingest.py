"""Exactly-once in effect: events from JetStream applied to PostgreSQL through an idempotent inbox.

Per batch, in ONE transaction: record each event id in `inbox` (ON CONFLICT DO NOTHING RETURNING),
apply business effects only for the ids that were new, write unusable events to `dead_letters`,
commit. Only then are the messages acked. A crash before the commit redelivers the batch; a crash
after it redelivers events the inbox already holds, which are skipped. JetStream's 2-minute dedup
window is the first guard; the inbox's primary key is the final one, however late a replay comes.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

import asyncpg

from hub.orders.sales import apply_sales
from novapos.wire.envelope import Envelope, EnvelopeError, decode
from novapos.wire.schemas import SchemaError
from novapos.wire.subjects import parse_event_subject

log = logging.getLogger(__name__)

Applier = Callable[[asyncpg.Connection, Sequence[Envelope]], Awaitable[None]]

APPLIERS: dict[str, Applier] = {
    "sale.completed": apply_sales,
}


@dataclass(frozen=True)
class Delivery:
    """One message as JetStream delivered it: the subject is who sent it, the data what they claim."""
    subject: str
    data: bytes


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0

    def __iadd__(self, other: "BatchResult") -> "BatchResult":
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        return self


@dataclass(frozen=True)
class Rejection:
    delivery: Delivery
    reason: str
    event_id: str | None = None


def _check(delivery: Delivery, tenants: frozenset[str]) -> Envelope:
    """Decode and validate; raises ValueError whose text becomes the dead letter's reason."""
    tenant, store, type_token = parse_event_subject(delivery.subject)
    envelope = decode(delivery.data)
    if (envelope.tenant, envelope.store) != (tenant, store):
        raise ValueError(f"event names {envelope.tenant}/{envelope.store} but came on the subject of {tenant}/{store}")
    if envelope.type.replace(".", "_") != type_token:
        raise ValueError(f"event type {envelope.type!r} does not match its subject's {type_token!r}")
    if tenant not in tenants:
        raise ValueError(f"tenant {tenant!r} is not served by this hub")
    if envelope.type not in APPLIERS:
        raise ValueError(f"no handler for event type {envelope.type!r}")
    return envelope


def sort_out(deliveries: Sequence[Delivery], tenants: frozenset[str]) -> tuple[list[tuple[Envelope, Delivery]], list[Rejection]]:
    """Valid envelopes (the first copy of each id) with their delivery, and rejections with reasons."""
    events: dict[uuid.UUID, tuple[Envelope, Delivery]] = {}
    rejections: list[Rejection] = []
    for delivery in deliveries:
        try:
            envelope = _check(delivery, tenants)
        except (EnvelopeError, SchemaError, ValueError) as exc:
            rejections.append(Rejection(delivery, str(exc)))
            continue
        events.setdefault(envelope.id, (envelope, delivery))
    return list(events.values()), rejections


async def _apply(conn: asyncpg.Connection, events: Sequence[Envelope], rejections: Sequence[Rejection]) -> BatchResult:
    result = BatchResult(rejected=len(rejections))
    if rejections:
        await conn.executemany(
            "INSERT INTO dead_letters (event_id, subject, reason, payload) VALUES ($1, $2, $3, $4)",
            [(r.event_id, r.delivery.subject, r.reason, r.delivery.data) for r in rejections])
    if events:
        new_ids = {row["event_id"] for row in await conn.fetch(
            "INSERT INTO inbox (event_id, tenant, store, seq, type) "
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[]) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            [e.id for e in events], [e.tenant for e in events], [e.store for e in events],
            [e.seq for e in events], [e.type for e in events])}
        fresh = [e for e in events if e.id in new_ids]
        for event_type, applier in APPLIERS.items():
            await applier(conn, [e for e in fresh if e.type == event_type])
        result.applied = len(fresh)
        result.duplicates = len(events) - len(fresh)
    return result


async def ingest(pool: asyncpg.Pool, deliveries: Sequence[Delivery], tenants: frozenset[str]) -> BatchResult:
    """Apply a batch in one transaction. If the batch as a whole breaks a database rule, fall back to
    one transaction per event so that only the offending event is dead-lettered, with the database's reason."""
    events, rejections = sort_out(deliveries, tenants)
    try:
        async with pool.acquire() as conn, conn.transaction():
            return await _apply(conn, [event for event, _ in events], rejections)
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
        log.warning("batch of %d failed (%s); applying its events one by one", len(deliveries), exc)
    result = BatchResult()
    async with pool.acquire() as conn:
        for event, delivery in events:
            try:
                async with conn.transaction():
                    result += await _apply(conn, [event], [])
            except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
                async with conn.transaction():
                    result += await _apply(conn, [], [Rejection(delivery, f"database refused it: {exc}", str(event.id))])
        if rejections:
            async with conn.transaction():
                result += await _apply(conn, [], rejections)
    return result
