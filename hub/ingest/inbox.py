"""Exactly-once in effect: events from JetStream applied to PostgreSQL through an idempotent inbox.

Per batch, in ONE transaction: record each event id in `inbox` (ON CONFLICT DO NOTHING RETURNING),
apply business effects (each domain's applier) and the per-store figures (hub.ingest.store_stats) only
for the ids that were new, write unusable events to `dead_letters`, commit. Only then are the messages
acked. A crash before the commit redelivers the batch; a crash after it redelivers events the inbox
already holds, which are skipped. JetStream's dedup window is the first guard; the inbox's primary key
is the final one, however late a replay comes.

Several hub processes apply batches at once (they share the durable consumer), so every transaction
takes its row locks in one order: inbox rows by event id (two hubs handed the same event, after an
ack wait ran out, wait on its row; the second finds a duplicate), then each applier's shared rows in
its own fixed order (store_takings by store and currency, stock by location and SKU, appliers in
domain-name order), then the audit chain's head (audit applies last, as a console change appends its record
after its own rows), then store_stats by store, last (hub.ingest.store_stats). No cycle, no deadlock.

An event id is the sale's identity everywhere (sales, lines, tenders, the console), so it stays the
inbox's key on its own. That is also why an id already in the inbox is a duplicate only when the row
there belongs to the same tenant, store and event type: otherwise another store has (maliciously or
by a cloned box) used that id, and the later event is dead-lettered naming both stores, never acked
away as a "duplicate". Whoever comes first keeps the id; the loser is visible in dead_letters with
its payload, for a person to resolve. (Keying the inbox by tenant+store+id instead would have made
event ids ambiguous in every table that refers to a sale, for a collision only forgery produces.)

An event this hub cannot apply yet is held, not dead-lettered: a type or version it does not know (a
store upgraded before the hub) or a tenant it does not serve (hub.toml not updated yet, or another hub's
tenant). Held events are in the batch's result; the worker naks them to come back much later.

A batch whose transaction fails for an event's sake is retried one event per transaction, and exactly
the events that fail are dead-lettered with the error's text, so one poison event never holds back the
rest. Only what an event carries can be its fault: failing validation, a value a column refuses (SQLSTATE
class 22) or a rule it breaks (class 23). Everything else (a lock timeout, a lost connection, a full disk,
our own SQL, a bug in an applier) is the hub's: it propagates, the batch is nak'ed and comes back later,
and a valid sale is never dead-lettered for it.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hub.domains import appliers
from hub.ingest import fast_decode, store_stats
from novapos import logs
from novapos.logs import escape
from novapos.wire.envelope import Envelope, UnknownEvent, decode
from novapos.wire.leaf import leaf_events_stream
from novapos.wire.subjects import parse_event_subject

log = logging.getLogger(__name__)

EVENTS_FAULT_CLASSES = ("22", "23")
"""SQLSTATE classes that blame the data: data exceptions and integrity constraint violations."""


def events_fault(exc: BaseException) -> bool:
    """True when applying failed because of what the event holds (see EVENTS_FAULT_CLASSES)."""
    return isinstance(exc, asyncpg.PostgresError) and str(exc.sqlstate)[:2] in EVENTS_FAULT_CLASSES


SOURCE_HEADER = "Nats-Stream-Source"
"""The header the hub's NATS puts on a message its events stream sourced (hub.ingest.leaf_sources): the source
stream's name first (`name:hash-of-its-API-prefix` for an external one), then its sequence, filter and subject."""


FORGED = "forged:"
"""How the dead letter of an event sourced from another store's leaf begins: never re-driven (hub.ingest.dead_letters)."""


@dataclass(frozen=True)
class Delivery:
    """One message as JetStream delivered it: the subject is who sent it, the data what they claim; `source` the
    SOURCE_HEADER of a message sourced from a store's leaf node (None: published straight to the hub's NATS)."""
    subject: str
    data: bytes
    source: str | None = None

    @classmethod
    def of(cls, message: Any) -> Delivery:
        """A nats-py message as a Delivery."""
        return cls(message.subject, message.data, (message.headers or {}).get(SOURCE_HEADER))


class NotApplicableYet(ValueError):
    """A valid-looking event the hub cannot apply until it is upgraded or configured: never the event's fault."""


@dataclass(frozen=True)
class Held:
    delivery: Delivery
    reason: str


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    """Events dead-lettered, by the tenant their subject names ("" when it names none)."""
    clock_skews: dict[store_stats.Store, float] = field(default_factory=dict)
    """Per store that sent new events, its clock skew in seconds (see hub.ingest.store_stats)."""
    held: list[Held] = field(default_factory=list)
    """Events neither applied nor dead-lettered: the hub cannot apply them yet (see NotApplicableYet)."""

    def __iadd__(self, other: BatchResult) -> BatchResult:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.dead_lettered += other.dead_lettered
        self.clock_skews.update(other.clock_skews)
        self.held += other.held
        return self

    @property
    def rejected(self) -> int:
        """Events dead-lettered."""
        return sum(self.dead_lettered.values())


@dataclass(frozen=True)
class Rejection:
    delivery: Delivery
    reason: str
    event_id: str | None = None


Event = tuple[Envelope, Delivery]


def _subject_tenant(subject: str) -> str:
    """The tenant an event subject names, "" when it is not an event subject."""
    try:
        return parse_event_subject(subject)[0]
    except ValueError:
        return ""


def _check(delivery: Delivery, tenants: frozenset[str]) -> Envelope:
    """Decode and validate; raises NotApplicableYet for what a newer or reconfigured hub would apply, and
    ValueError whose text becomes the dead letter's reason for what is the event's own fault."""
    tenant, store, type_token = parse_event_subject(delivery.subject)
    if delivery.source is not None and (came_from := delivery.source.split(" ", 1)[0].split(":", 1)[0]) != (
            expected := leaf_events_stream(tenant, store)):
        # a leaf box widened its own stream to other subjects: the hub sourced them, but from the wrong leaf
        raise ValueError(f"{FORGED} event on the subject of {tenant}/{store} was sourced from leaf stream "
                         f"{came_from!r}, not {expected!r} (that store's own)")
    if tenant not in tenants:
        raise NotApplicableYet(f"tenant {tenant!r} is not served by this hub; add it to `tenants` in hub.toml")
    try:
        envelope = fast_decode.decode(delivery.data) or decode(delivery.data)  # the same verdict, mostly sooner
    except UnknownEvent as exc:
        raise NotApplicableYet(f"event {exc}; upgrade the hub to apply it") from None
    if (envelope.tenant, envelope.store) != (tenant, store):
        raise ValueError(f"event names {envelope.tenant}/{envelope.store} but came on the subject of {tenant}/{store}")
    if envelope.type.replace(".", "_") != type_token:
        raise ValueError(f"event type {envelope.type!r} does not match its subject's {type_token!r}")
    if envelope.type not in appliers():
        raise NotApplicableYet(f"no hub domain applies event type {envelope.type!r}; upgrade the hub to apply it")
    return envelope


def _event_fields(event: Envelope) -> dict[str, str]:
    """The log context of one event: whose it is and which (a sale's id is its sale.completed event's)."""
    fields = {"tenant": event.tenant, "store": event.store, "event": str(event.id)}
    if event.type == "sale.completed":
        fields["sale"] = str(event.id)
    return fields


def _same_origin(event: Envelope, tenant: str, store: str, event_type: str) -> bool:
    return (event.tenant, event.store, event.type) == (tenant, store, event_type)


def _collision(event: Envelope, tenant: str, store: str, event_type: str) -> str:
    return (f"event id {event.id} already used by {tenant}/{store} ({event_type}); "
            f"this {event.type} event is from {event.tenant}/{event.store}")


@dataclass
class Sorted:
    events: list[Event]
    """Valid events (the first copy of each id) with their delivery."""
    rejections: list[Rejection]
    held: list[Held]
    duplicates: int
    """How many deliveries repeated an earlier one of the batch."""


class Sorter:
    """Sorts out a batch one delivery at a time (so that a caller may let other work run in between):
    valid events, rejections with reasons, held events. Validation never raises: anything it trips on is
    a rejection, unless the hub cannot apply the event yet."""

    def __init__(self, tenants: frozenset[str]) -> None:
        self.tenants = tenants
        self.events: dict[uuid.UUID, Event] = {}
        self.rejections: list[Rejection] = []
        self.held: list[Held] = []
        self.duplicates = 0

    def add(self, delivery: Delivery) -> None:
        try:
            envelope = _check(delivery, self.tenants)
        except NotApplicableYet as exc:
            self.held.append(Held(delivery, str(exc)))
            return
        except ValueError as exc:  # EnvelopeError, SchemaError and our own checks: the text is the reason
            self.rejections.append(Rejection(delivery, str(exc)))
            return
        except Exception as exc:  # whatever else bad bytes make validation trip on is still the event's fault
            self.rejections.append(Rejection(delivery, f"could not be validated: {type(exc).__name__}: {exc}"))
            return
        first = self.events.setdefault(envelope.id, (envelope, delivery))[0]
        if first is envelope:
            return
        if _same_origin(envelope, first.tenant, first.store, first.type):
            self.duplicates += 1
        else:
            self.rejections.append(Rejection(delivery, _collision(envelope, first.tenant, first.store, first.type),
                                             str(envelope.id)))

    def result(self) -> Sorted:
        return Sorted(list(self.events.values()), self.rejections, self.held, self.duplicates)


def sort_out(deliveries: Sequence[Delivery], tenants: frozenset[str]) -> Sorted:
    """A whole batch sorted out at once (see Sorter)."""
    sorter = Sorter(tenants)
    for delivery in deliveries:
        sorter.add(delivery)
    return sorter.result()


async def _apply(conn: asyncpg.Connection, events: Sequence[Event], rejections: Sequence[Rejection]) -> BatchResult:
    """Inbox, business effects for new ids, dead letters: all inside the caller's transaction."""
    dead = list(rejections)
    result = BatchResult()
    if events:
        envelopes = sorted((event for event, _ in events), key=lambda e: e.id)  # one lock order: see store_stats
        new_ids = {row["event_id"] for row in await conn.fetch(
            "INSERT INTO inbox (event_id, tenant, store, seq, type) "
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[]) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            [e.id for e in envelopes], [e.tenant for e in envelopes], [e.store for e in envelopes],
            [e.seq for e in envelopes], [e.type for e in envelopes])}
        seen = [(e, delivery) for e, delivery in events if e.id not in new_ids]
        if seen:
            owners = {row["event_id"]: row for row in await conn.fetch(
                "SELECT event_id, tenant, store, type FROM inbox WHERE event_id = ANY($1::uuid[])",
                [e.id for e, _ in seen])}
            for event, delivery in seen:
                owner = owners[event.id]
                if _same_origin(event, owner["tenant"], owner["store"], owner["type"]):
                    result.duplicates += 1
                else:
                    dead.append(Rejection(
                        delivery, _collision(event, owner["tenant"], owner["store"], owner["type"]), str(event.id)))
        fresh = [event for event, _ in events if event.id in new_ids]  # in the order they came
        for event_type, of_type in appliers().items():
            if events_of_type := [e for e in fresh if e.type == event_type]:
                for applier in of_type:
                    await applier(conn, events_of_type)
        result.clock_skews = await store_stats.record(conn, fresh)  # last: its store locks are held to the commit
        result.applied = len(fresh)
        if log.isEnabledFor(logging.DEBUG):
            for event in fresh:
                with logs.bound(**_event_fields(event)):
                    log.debug("event %s (%s v%d, seq %d) is new: applied in its batch's transaction, acked once that "
                              "commits", event.id, event.type, event.v, event.seq)
    if dead:
        await conn.executemany(
            "INSERT INTO dead_letters (event_id, subject, reason, payload) VALUES ($1, $2, $3, $4)",
            # Subject and reason may quote what a store sent: escaped once, here, they are safe in PostgreSQL
            # text (no NUL), the console, the CLI and logs alike; a valid subject is tokens and stays as it is.
            [(r.event_id, escape(r.delivery.subject), escape(r.reason), r.delivery.data) for r in dead])
        result.dead_lettered = Counter(_subject_tenant(r.delivery.subject) for r in dead)
    return result


async def _one_by_one(pool: asyncpg.Pool, events: Sequence[Event], rejections: Sequence[Rejection]) -> BatchResult:
    """One transaction per event, so that exactly the events that fail are dead-lettered, each with its error."""
    result = BatchResult()
    async with pool.acquire() as conn:
        for event, delivery in events:
            try:
                async with conn.transaction():
                    result += await _apply(conn, [(event, delivery)], [])
            except Exception as exc:
                if not events_fault(exc):
                    raise
                with logs.bound(**_event_fields(event)):
                    log.warning("event %s from %s/%s dead-lettered: the database refused it, %s (its full "
                                "text is the dead letter's reason)", event.id, event.tenant, event.store,
                                logs.error_text(exc))
                async with conn.transaction():
                    result += await _apply(conn, [], [Rejection(delivery, f"database refused it: {exc}", str(event.id))])
        if rejections:
            async with conn.transaction():
                result += await _apply(conn, [], rejections)
    return result


async def apply_sorted(pool: asyncpg.Pool, batch: Sorted) -> BatchResult:
    """Apply a sorted-out batch in one transaction; if that fails for an event's sake, fall back to one
    transaction per event. Raises (so the batch is nak'ed and retried later) for anything that is not an
    event's fault."""
    events, rejections = batch.events, batch.rejections
    try:
        async with pool.acquire() as conn, conn.transaction():
            result = await _apply(conn, events, rejections)
    except Exception as exc:
        if not events_fault(exc):
            raise
        log.warning("batch of %d failed (%s); applying its events one by one",
                    len(events) + len(rejections), logs.error_text(exc))
        result = await _one_by_one(pool, events, rejections)
    result.duplicates += batch.duplicates
    result.held = batch.held
    return result


async def ingest(pool: asyncpg.Pool, deliveries: Sequence[Delivery], tenants: frozenset[str]) -> BatchResult:
    """Sort out and apply a batch (see apply_sorted)."""
    return await apply_sorted(pool, sort_out(deliveries, tenants))
