"""The store's payment events from the hub (hub.payments.relay), each applied once, none missed.

The hub numbers a store's payment events (positions 1, 2, 3... gap-free, in commit order) and publishes each on
novapos.<tenant>.<store>.pay.<type> with core NATS: fast, but a store that is away, reconnecting or slow misses
some. So the store keeps, in its SQLite file, the id and position of every event it applied (the inbox), and asks
the hub for the events after its last position (pay_events, answered from PostgreSQL) when it starts, when the
link has reconnected, when a live event arrives with a gap before it, and every `refresh_s` (the last event of a
burst lost in transit has no successor to show the gap). An event whose id is in the inbox is dropped: the
relay's second publish after a hub crash, the live copy of one a catch-up already brought.

Applying an event is recording it in the inbox (one SQLite transaction). After the commit, those it concerns hear
of it through their actor's `payment_event(type, body)` (when it has one), at most once: the till the intent
belongs to (a QR payment's result on its screen), and, for an intent taken offline, the cards actor
(actors.payments.cards), whose ledger settles the approval; a declined one is the store's follow-up there. One
that is down meanwhile learns the outcome by asking the hub (pay_status).

NATS or the hub away: said once, asked again; the tills sell on. A bad event from the hub is refused with its
reason, never a crash.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from prometheus_client import Counter

from actors.payments.asking import HubRefused, HubUnreachable, ask_hub
from actors.payments.cards import NAME as CARDS
from actors.storage import db as local_db
from edge_runtime import Actor, AsyncioSeam
from novapos import validators
from novapos.adapters.nats import NatsLink
from novapos.wire.payments import EVENTS, decode, payment_events_subject

log = logging.getLogger(__name__)

NAME = "payment_events"
"""Its name in the edge's actor tree."""

APPLIED = Counter("novapos_edge_payment_events_applied_total", "Payment events from the hub applied at the store")
DUPLICATES = Counter("novapos_edge_payment_events_duplicates_total",
                     "Payment events from the hub dropped as already applied (the same id again)")

TICK_S = 1.0
"""How often the actor looks at the link (a reconnect catches up at once)."""
ASK_WITHIN_S = 3.0
RETRY_S = 2.0
"""After a failed catch-up, the next one (a reconnect or a live event's gap may bring it sooner)."""
PAGE = 200
"""Events asked for per catch-up request (the hub may answer fewer: its answers stay under 64 KiB)."""
MAX_POSITION = 2**63 - 1


class Event:
    """One payment event as the hub sent it, checked like client input."""

    __slots__ = ("body", "id", "position", "type")

    def __init__(self, message: Any) -> None:
        if not isinstance(message, dict):
            raise validators.Invalid("payment event", "must be a JSON object")
        self.id = validators.uuid_text("payment event id", message.get("id"))
        self.position = validators.integer("payment event position", message.get("position"), 1, MAX_POSITION)
        self.type = validators.text("payment event type", message.get("type"), max_length=64)
        validators.token("payment event type", self.type.replace(".", "_"))
        body = message.get("body")
        if not isinstance(body, dict):
            raise validators.Invalid("payment event body", "must be a JSON object")
        self.body: dict[str, Any] = body

    def intent(self) -> dict[str, Any]:
        intent = self.body.get("intent")
        return intent if isinstance(intent, dict) else {}


@dataclass(frozen=True)
class Refused:
    """An event of a catch-up page that cannot be read but whose position can: recorded as refused, so the
    catch-up moves past it instead of asking for it forever."""
    position: int
    reason: str


def last_position(db: sqlite3.Connection) -> int:
    """The position of the last event applied (0: none yet): a catch-up asks for those after it."""
    return int(db.execute("SELECT coalesce(max(position), 0) FROM payment_inbox").fetchone()[0])


def apply(db: sqlite3.Connection, events: list[Event], refused: list[Refused] | None = None) -> list[Event]:
    """Record `events` in the inbox in one transaction (one fsync for a catch-up's page), with the `refused` ones
    of the same page at their positions (never told to anyone); those events that were not there already (by id or
    position), in order."""
    fresh = []
    with local_db.immediate(db):
        for event in events:
            if db.execute("INSERT INTO payment_inbox (id, position, type, applied_at) VALUES (?, ?, ?, ?)"
                          " ON CONFLICT DO NOTHING", (event.id, event.position, event.type, time.time())).rowcount:
                fresh.append(event)
        for bad in refused or []:
            db.execute("INSERT INTO payment_inbox (id, position, type, applied_at, refused) VALUES (?, ?, '', ?, ?)"
                       " ON CONFLICT DO NOTHING", (f"refused:{bad.position}", bad.position, time.time(), bad.reason))
    return fresh


class PaymentEventsActor(Actor):
    """One per store, after the tills and the cards actor in the edge's tree."""

    def __init__(self, seam: AsyncioSeam, link: NatsLink, db_path: Path, tenant: str, store: str,
                 refresh_s: float = 30.0) -> None:
        super().__init__()
        self._seam = seam
        self._link = link
        self._path = db_path
        self._tenant = tenant
        self._store = store
        self._refresh_s = refresh_s
        self._db: sqlite3.Connection | None = None
        self._last = 0
        self._subscription: Any = None
        self._next_catch_up = 0.0
        self._reconnects = 0
        self._failing: str | None = None

    def started(self) -> None:
        self._db = local_db.connect(self._path)
        self._last = last_position(self._db)
        log.info("payment events: %d applied so far; following %s", self._last,
                 payment_events_subject(self._tenant, self._store))
        self.send_after(0.0, "tick")

    def stopping(self) -> None:
        if self._subscription is not None:
            try:
                self._seam.run_blocking(self._subscription.unsubscribe, timeout=2.0)
            except Exception as exc:  # the link is gone already: nothing left to unsubscribe from
                log.debug("payment events: unsubscribing: %s", exc)
        if self._db is not None:
            self._db.close()

    def tick(self) -> None:
        """Subscribe once connected; catch up when due or just reconnected; then again in TICK_S."""
        reconnects = self._reconnects_so_far()
        if time.monotonic() >= self._next_catch_up or reconnects != self._reconnects:
            self._reconnects = reconnects  # events may have been published while it was away
            self._follow()
        self.send_after(TICK_S, "tick")

    def received(self, data: bytes) -> None:
        """A live event: applied when it is the next one, dropped when it was applied already; after a gap, the
        missing ones are asked for at once (this one comes with them)."""
        assert self._db is not None
        try:
            event = Event(decode("payment event", data))
        except validators.Invalid as exc:
            log.warning("payment events: refused a live event from the hub (%s); it is asked for again with those "
                        "after position %d", exc, self._last)
            self._follow()
            return
        if event.position > self._last + 1:
            log.info("payment events: event %d arrived after %d: asking for those in between", event.position,
                     self._last)
            self._follow()
        elif event.position <= self._last:
            if self._db.execute("SELECT 1 FROM payment_inbox WHERE id = ?", (event.id,)).fetchone() is None:
                log.warning("payment events: event %s at position %d, which the store has applied another event at: "
                            "dropped (was the hub's database replaced?)", event.id, event.position)
            else:
                DUPLICATES.inc()
        else:
            try:
                self._apply([event])
            except sqlite3.OperationalError as exc:
                if not local_db.is_busy(exc):
                    raise
                log.warning("payment events: %s is locked by another program (%s); event %d is asked for again",
                            self._path, exc, event.position)
                self._next_catch_up = 0.0

    def _follow(self) -> None:
        """Subscribe if need be, then catch up; a failure is said once and tried again at the next tick."""
        try:
            if self._subscription is None:
                self._subscription = self._seam.run_blocking(self._subscribe, timeout=ASK_WITHIN_S + 1.0)
            self._catch_up()  # after subscribing: nothing published from then on is missed
            self._next_catch_up = time.monotonic() + self._refresh_s
            if self._failing is not None:
                log.info("payment events: the hub answers again (it did not: %s); %d applied", self._failing,
                         self._last)
                self._failing = None
        except (ConnectionError, TimeoutError, OSError, nats.errors.Error, HubUnreachable, HubRefused,
                validators.Invalid, sqlite3.OperationalError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and not local_db.is_busy(exc):
                raise
            if self._failing is None:
                log.warning("payment events: cannot follow the hub's payment events (%s); the tills sell on, and "
                            "those after position %d are asked for again. Check the store's network and NATS",
                            str(exc) or type(exc).__name__, self._last)
            self._failing = str(exc) or type(exc).__name__
            self._next_catch_up = time.monotonic() + RETRY_S

    def _catch_up(self) -> None:
        """Ask for the events after the last applied one, page after page, until a page brings nothing new (none
        left, or only events applied already or refused without a position)."""
        while True:
            answer = ask_hub(self._link, self._seam, self._tenant, self._store, EVENTS,
                             {"after": self._last, "limit": PAGE}, ASK_WITHIN_S)
            events = answer.get("events")
            if not isinstance(events, list):
                raise validators.Invalid("the hub's pay_events answer", "must hold a list of events")
            before = self._last
            self._apply(*self._read(events))
            if self._last == before:
                return

    def _read(self, messages: list[Any]) -> tuple[list[Event], list[Refused]]:
        """A page's events after the last applied one, by position; one that cannot be read is refused at its
        position (logged with the reason), or dropped when even that cannot be read."""
        events: dict[int, Event] = {}
        refused: dict[int, Refused] = {}
        for message in messages:
            try:
                event = Event(message)
            except validators.Invalid as exc:
                position = message.get("position") if isinstance(message, dict) else None
                if isinstance(position, int) and not isinstance(position, bool) and self._last < position <= MAX_POSITION:
                    log.error("payment events: refused event %d from the hub, recorded as refused and passed: %s",
                              position, exc)
                    refused[position] = Refused(position, str(exc)[:500])
                else:
                    log.error("payment events: refused an event from the hub without a usable position: %s", exc)
                continue
            if event.position > self._last:
                events.setdefault(event.position, event)
        return [events[p] for p in sorted(events)], [refused[p] for p in sorted(refused) if p not in events]

    def _apply(self, events: list[Event], refused: list[Refused] | None = None) -> None:
        """Apply events in one transaction, the refused ones recorded beside them (SQLite busy: raised, for the
        caller to ask for them again), then tell those each concerns."""
        assert self._db is not None
        fresh = apply(self._db, events, refused or [])
        DUPLICATES.inc(len(events) - len(fresh))
        for event in fresh:
            if event.position != self._last + 1:
                log.warning("payment events: event %d applied after %d: the hub no longer had those in between",
                            event.position, self._last)
            self._last = max(self._last, event.position)
            APPLIED.inc()
            intent = event.intent()
            till = intent.get("till")
            if isinstance(till, str):
                self._tell(f"till.{till}", event)
            if intent.get("offline") is True:
                self._tell(CARDS, event)
        self._last = max([self._last, *(bad.position for bad in refused or [])])

    def _tell(self, name: str, event: Event) -> None:
        """Tell actor `name` of `event` if it runs and has a `payment_event` method (a till without one does not
        follow payments live)."""
        try:
            ref = self.registry.get(name)
        except LookupError:  # not an actor of this store, or restarting: it asks the hub when it needs to know
            log.debug("payment events: %s is not running; event %s not told", name, event.id)
            return
        if callable(getattr(ref.actor_class, "payment_event", None)):
            self.registry.tell(name, "payment_event", event.type, event.body)

    def _reconnects_so_far(self) -> int:
        """How often the link has reconnected (nats-py counts them): a change means it was away."""
        try:
            return int(self._link.client.stats["reconnects"])
        except ConnectionError:  # not connected the first time yet
            return 0

    async def _subscribe(self) -> Any:
        """(asyncio side) The store's payment events, each handed to this actor."""
        await self._link.connect()

        async def deliver(message: Msg) -> None:
            self.send_after(0.0, "received", message.data)
        subscription = await self._link.client.subscribe(payment_events_subject(self._tenant, self._store),
                                                         cb=deliver)
        await self._link.client.flush(timeout=int(ASK_WITHIN_S))
        return subscription
