"""The store's durable outbox: every event is committed to SQLite before anyone is told it happened.

WAL with synchronous=FULL: a commit has reached the disk when append() returns, so a kill -9 or a
power cut after a cashier saw "sale complete" cannot lose the sale. Each event gets the store's next
sequence number in the same transaction, so the sequence has no gaps and the hub can see one missing.
Rows leave only when JetStream has acknowledged them (remove()). An event that must be printed (a
sale's receipt) gets its print job in the same transaction (see actors.storage.db).

An event its schema refuses is answered with a Rejected and writes nothing: a refusal is not a crash.
Nor is a file another program holds locked: the sale is refused as "busy" (nothing written, the
till keeps the cart and the cashier sends complete again), and the reads go on (see actors.storage.db).
Event times never go backwards and never predate this release (see `_stamp`): a store box whose clock
reads 1970 still sells, and the hub can still take its sales.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
from opentelemetry.trace import StatusCode

from actors.protocol import Reason, Rejected
from actors.storage.db import LockWatch, connect, is_busy
from edge_runtime import Actor
from novapos import tracing
from novapos.__about__ import BUILD_FLOOR_MS
from novapos.adapters.nats import Outgoing
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.schemas import SCHEMAS
from novapos.wire.subjects import event_subject

log = logging.getLogger(__name__)

MAX_AHEAD_MS = 86_400_000
"""How far the last event's time may lead the clock before the clock is trusted over it (the hub flags
events more than a day ahead as implausible too)."""
KEEP_KEYS_S = 30 * 86400  # how long a resend of a completed cart still finds its sale
PURGE_EVERY_S = 3600.0    # how often the running outbox forgets keys older than that
LOCKED = "the store's disk is busy (its database is locked by another program)"


Journal = Callable[[sqlite3.Connection, Envelope], None]
"""Keeps a domain's own tables in step with the events (the drawer sessions' cash, the store's own sales and
what is still returnable): called for every new event inside the transaction that commits it, so the tables
and the outbox never disagree, whatever crashes. It may refuse the event by raising JournalRefused."""


class JournalRefused(Exception):
    """A journal's refusal of an event (a line returned twice, a drawer session already closed): the event is
    not committed, and the caller is answered Rejected(reason, message)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Committed:
    """An event on disk: `new` is False when its idempotency key had already been committed."""
    id: uuid.UUID
    seq: int
    body: dict[str, Any]
    new: bool


@dataclass(frozen=True)
class Backlog:
    """What waits for the hub: how many events, and how long the oldest has waited (None: nothing)."""
    depth: int
    oldest_age_s: float | None


@dataclass(frozen=True)
class Released:
    """What `remove` answered (None: released, or nothing to release) and the backlog after it: what the
    forwarder needs after a publish, in one message to the outbox's thread rather than two."""
    refused: Rejected | None
    backlog: Backlog


BACKLOG_SQL = ("SELECT count(*), (SELECT payload FROM outbox ORDER BY seq LIMIT 1), "
               "(SELECT last_ts FROM store_sequence) FROM outbox")


def event_time(last_ts: int, stamp: int) -> int:
    """The time the next event carries, from the last committed event's and the clock's (`stamp`, raised to
    this release's date): the later one, unless the last event's leads the clock by more than MAX_AHEAD_MS
    (see Outbox._event_time)."""
    return max(stamp, last_ts) if last_ts - stamp <= MAX_AHEAD_MS else stamp


def quiet_event_time(last_ts: int) -> int:
    """`event_time` by the wall clock, as the outbox would stamp now, without its warnings (the outbox says
    those): for readers of the file beside the outbox."""
    return event_time(last_ts, max(time.time_ns() // 1_000_000, BUILD_FLOOR_MS))


def read_backlog(db: sqlite3.Connection, now_ms: Callable[[int], int]) -> Backlog:
    """The outbox's backlog in one query, on any connection to its file (the outbox's own, or a read-only one
    beside it: the health reporter's); `now_ms(last_ts)`: the time the next event would carry."""
    depth, oldest, last_ts = db.execute(BACKLOG_SQL).fetchone()
    if oldest is None:
        return Backlog(0, None)
    age_ms = now_ms(int(last_ts)) - int(msgpack.unpackb(oldest)["ts"])
    return Backlog(int(depth), max(0, age_ms) / 1000)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


class Outbox:
    """The SQLite file itself; used from one thread (the outbox actor's)."""

    def __init__(self, path: Path, tenant: str, store: str, journals: Sequence[Journal] = ()) -> None:
        self.tenant = tenant
        self.store = store
        self._journals = tuple(journals)
        self._db = connect(path)
        self._lock = LockWatch(path, "the outbox", "sales are refused as busy (nothing is lost: the tills keep "
                                                   "their carts) and unsent events wait")
        self._clock_behind = False  # the wall clock reads earlier than this release: said once
        self._ahead_warned = False  # the last event's time leads the clock by more than a day: said once

    def append(self, event_type: str, version: int, body: dict[str, Any], *, print_on: str | None = None,
               key: str | None = None, print_with: Mapping[str, Any] | None = None) -> Committed | Rejected:
        """`_append` in a span, the sale's local commit: its trace context is stored with the row (see novapos.tracing)."""
        if not tracing.enabled():
            return self._append(event_type, version, body, print_on=print_on, key=key, print_with=print_with)
        with tracing.tracer().start_as_current_span("outbox commit", attributes={"novapos.event.type": event_type,
                                                                                  "novapos.store": self.store}) as span:
            committed = self._append(event_type, version, body, print_on=print_on, key=key, print_with=print_with)
            if isinstance(committed, Rejected):
                span.set_status(StatusCode.ERROR, committed.reason)
            else:
                span.set_attributes({"novapos.event.id": str(committed.id), "novapos.event.seq": committed.seq,
                                     "novapos.event.new": committed.new})
            return committed

    def _append(self, event_type: str, version: int, body: dict[str, Any], *, print_on: str | None = None,
                key: str | None = None, print_with: Mapping[str, Any] | None = None) -> Committed | Rejected:
        """Validate, number and durably commit one event; with `print_on`, also the job that prints it
        on that printer (the event's id is the job's id), carrying `print_with` beside the event (what the
        receipt shows that the event does not carry, such as a customer's points balance). Every journal sees the new event in the same
        transaction; a journal's refusal writes nothing and is answered Rejected. With `key`, an idempotency key: if an event
        was already committed under it, nothing new is written and that event is returned. A body its
        schema refuses is answered with Rejected("invalid", why), and nothing is written; so is a file
        locked by another program, with Rejected("busy", why)."""
        try:
            SCHEMAS[(event_type, version)](body)
            packed_body = msgpack.packb(body)  # what msgpack cannot carry (a lone surrogate) is refused too
        except ValueError as exc:  # a refusal: the door should have caught it; say so, do not crash
            log.warning("refused a %s event: %r; nothing was written (the HTTP checks should have refused it)",
                        event_type, str(exc))
            return Rejected("invalid", str(exc))
        subject = event_subject(self.tenant, self.store, event_type)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if key is not None and (done := self._committed(key)) is not None:
                self._db.execute("COMMIT")
                return done
            (last_ts,) = self._db.execute("SELECT last_ts FROM store_sequence").fetchone()
            ts = self._event_time(int(last_ts))
            (seq,) = self._db.execute("UPDATE store_sequence SET last_seq = last_seq + 1, last_ts = ? "
                                      "RETURNING last_seq", (ts,)).fetchone()
            envelope = Envelope(id=uuid7(), type=event_type, v=version, tenant=self.tenant, store=self.store,
                                seq=seq, ts=ts, body=body)
            self._db.execute("INSERT INTO outbox (seq, id, subject, payload, traceparent) VALUES (?, ?, ?, ?, ?)",
                             (seq, str(envelope.id), subject, envelope.encode(), tracing.traceparent()))
            if print_on is not None:
                self._db.execute(
                    "INSERT INTO print_jobs (id, printer, kind, payload, seq, queued_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (str(envelope.id), print_on, event_type,
                     msgpack.packb({**(print_with or {}), "id": str(envelope.id), "seq": seq, "body": body}), seq,
                     ts / 1000))
            for journal in self._journals:
                journal(self._db, envelope)
            if key is not None:
                self._db.execute("INSERT INTO completed (key, event_id, seq, body, completed_at) VALUES (?, ?, ?, ?, ?)",
                                 (key, str(envelope.id), seq, packed_body, ts / 1000))
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:  # COMMIT itself may have failed and ended it
                self._db.execute("ROLLBACK")
            if isinstance(exc, JournalRefused):
                return Rejected(exc.reason, exc.message)
            if not is_busy(exc):
                raise
            self._lock.locked(exc)
            return Rejected("busy", f"{LOCKED}: nothing was saved; send complete again")
        self._lock.free()
        return Committed(envelope.id, seq, body, new=True)

    def _stamp(self) -> int:
        """The wall clock in ms, raised to this release's date if it reads earlier (said once per
        episode). The UPDATE that numbers the event raises it again to the last committed event's
        time: event times never go backwards, whatever the clock does."""
        wall = time.time_ns() // 1_000_000
        if wall >= BUILD_FLOOR_MS:
            self._clock_behind = False
            return wall
        if not self._clock_behind:
            self._clock_behind = True
            log.warning("the store's clock reads %s; check NTP and the RTC battery; sales carry %s (this "
                        "release's date) or the last sale's time instead", _day(wall), _day(BUILD_FLOOR_MS))
        return BUILD_FLOOR_MS

    def _event_time(self, last_ts: int) -> int:
        """The time the next event carries: `_stamp`, raised to the last committed event's time, so times
        never go backwards; unless that time is more than MAX_AHEAD_MS ahead of the clock. Then it is the
        one that was wrong (a clock that once jumped ahead, say to 2100, before NTP corrected it), and
        following it would date every later sale in the future for good: the clock wins, said once."""
        stamp = self._stamp()
        ahead = last_ts - stamp > MAX_AHEAD_MS
        if ahead and not self._ahead_warned:
            log.warning("the last sale was stamped %s, later than the store's clock (%s) by more than a day: the "
                        "clock was once wrong; sales carry the clock's time again (sequence numbers keep their "
                        "order)", _day(last_ts), _day(stamp))
        self._ahead_warned = ahead
        return event_time(last_ts, stamp)

    def now_ms(self) -> int:
        """The time the next event would carry (see `_event_time`), without committing one."""
        (last_ts,) = self._db.execute("SELECT last_ts FROM store_sequence").fetchone()
        return self._event_time(int(last_ts))

    def _committed(self, key: str) -> Committed | None:
        row = self._db.execute("SELECT event_id, seq, body FROM completed WHERE key = ?", (key,)).fetchone()
        return None if row is None else Committed(uuid.UUID(row[0]), row[1], msgpack.unpackb(row[2]), new=False)

    def committed(self, key: str) -> Committed | None:
        """The event committed under an idempotency key, if any."""
        return self._committed(key)

    def forget_keys_before(self, cutoff: float) -> int | Rejected:
        """Drop idempotency keys committed before `cutoff` (seconds, on the events' clock); how many.
        Rejected("busy") while another program holds the file."""
        try:
            return self._db.execute("DELETE FROM completed WHERE completed_at < ?", (cutoff,)).rowcount
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            self._lock.locked(exc)
            return Rejected("busy", LOCKED)

    def pending(self, limit: int) -> list[Outgoing]:
        rows = self._db.execute("SELECT id, subject, payload, traceparent FROM outbox ORDER BY seq LIMIT ?", (limit,))
        return [Outgoing(event_id, subject, payload, trace) for event_id, subject, payload, trace in rows]

    def remove(self, event_ids: list[str]) -> Rejected | None:
        """Release acknowledged events, in one transaction (one fsync, not one per row); while
        another program holds the file, Rejected("busy") and they stay (sent again later, and
        JetStream drops the duplicates)."""
        if not event_ids:
            return None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(event_id,) for event_id in event_ids])
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if not is_busy(exc):
                raise
            return Rejected("busy", LOCKED)
        return None

    def release(self, event_ids: list[str]) -> Released:
        """`remove(event_ids)`, then the backlog left."""
        return Released(self.remove(event_ids), self.backlog())

    def depth(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def backlog(self) -> Backlog:
        """The unsent events: their number and the age of the oldest, by the events' own clock."""
        return read_backlog(self._db, self._event_time)

    def close(self) -> None:
        self._db.close()


class OutboxActor(Actor):
    """Serialises every use of the outbox file through one mailbox."""

    def __init__(self, path: Path, tenant: str, store: str, journals: Sequence[Journal] = ()) -> None:
        super().__init__()
        self._path, self._tenant, self._store, self._journals = path, tenant, store, tuple(journals)
        self._outbox: Outbox | None = None

    def started(self) -> None:
        self._outbox = Outbox(self._path, self._tenant, self._store, self._journals)
        self.send_after(0.0, "purge")  # not in started(): a locked file must not hold up the start

    def purge(self) -> None:
        """Forget idempotency keys older than KEEP_KEYS_S, at start and every PURGE_EVERY_S while
        running (a locked file: at the next time), so the table holds about KEEP_KEYS_S of sales
        however long the store runs."""
        forgotten = self.outbox.forget_keys_before(self.outbox.now_ms() / 1000 - KEEP_KEYS_S)
        if not isinstance(forgotten, Rejected) and forgotten:
            log.info("forgot %d completed cart id(s) older than %.0f s (kept so that a resent completion "
                     "finds its sale instead of selling again)", forgotten, KEEP_KEYS_S)
        self.send_after(PURGE_EVERY_S, "purge")

    def stopping(self) -> None:
        if self._outbox is not None:
            self._outbox.close()

    @property
    def outbox(self) -> Outbox:
        assert self._outbox is not None, "outbox used before it started"
        return self._outbox

    def append(self, event_type: str, version: int, body: dict[str, Any], *, print_on: str | None = None,
               key: str | None = None, print_with: Mapping[str, Any] | None = None) -> Committed | Rejected:
        return self.outbox.append(event_type, version, body, print_on=print_on, key=key, print_with=print_with)

    def committed(self, key: str) -> Committed | None:
        return self.outbox.committed(key)

    def pending(self, limit: int) -> list[Outgoing]:
        return self.outbox.pending(limit)

    def remove(self, event_ids: list[str]) -> Rejected | None:
        return self.outbox.remove(event_ids)

    def release(self, event_ids: list[str]) -> Released:
        return self.outbox.release(event_ids)

    def depth(self) -> int:
        return self.outbox.depth()

    def backlog(self) -> Backlog:
        return self.outbox.backlog()
