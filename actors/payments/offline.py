"""Offline cards: what a store may take by card while the hub is away, and the ledger of what it took.

A card approved while the hub cannot be reached is only stored by the terminal (a card token): the money is asked
for when the hub is back, and the store carries the risk meanwhile. So, per the tenant's settings (pay_settings,
cached here as the hub last gave them; the hub's defaults until it has), a card is taken offline only up to
`per_payment_minor`, and only while the store's offline approvals the hub has not confirmed yet stay within
`store_total_minor`. The ledger is in the store's SQLite file (edge schema version 7), so a restarted edge counts
what it took before: the limit cannot be reset by a restart.

A row is `reserved` from the moment the till asks the terminal (two tills cannot both squeeze under the total),
`outstanding` once the terminal stored the card, and settled when the hub says how its authorization ended:
`authorized`, `declined` (the store's follow-up: the customer owes the money) or `released` (never charged: the
terminal did not take the card, or the sale was abandoned and the hub has cancelled it; `abandoned` until then, so
the hub is told again until it has, and never asks for that money). Only reserved and outstanding rows count.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from actors.storage.db import immediate
from novapos.money import Money
from novapos.wire.envelope import Envelope

DEFAULT_PER_PAYMENT_MINOR = 5000
DEFAULT_STORE_TOTAL_MINOR = 20000
"""The hub's defaults (pay_settings answers them for a tenant that set none): used until the hub was asked once."""
COUNTED = ("reserved", "outstanding")
SETTLED = ("authorized", "declined", "abandoned", "released")
EXPIRED = "reserved and never approved at the till"
"""The message of a reservation released by age (`expire`): its till no longer holds the card (a till that gave up
waiting for the cards actor, or crashed before it saved the tender)."""
RESERVED_FOR_S = 900.0
"""How long a reservation counts without its approval: well past the longest a card waits at a terminal (600 s)."""


@dataclass(frozen=True)
class Limits:
    per_payment_minor: int
    store_total_minor: int
    currency: str
    """The currency whose minor units these are (the store's when the hub gave them)."""


def limits(db: sqlite3.Connection, currency: str) -> Limits:
    """The limits the hub last gave, or its defaults when it has not yet or gave them in another currency than the
    store's `currency` now (amounts in another currency's minor units are no limit at all)."""
    row = db.execute("SELECT per_payment_minor, store_total_minor, currency FROM offline_card_settings").fetchone()
    if row is None or row[2] != currency:
        return Limits(DEFAULT_PER_PAYMENT_MINOR, DEFAULT_STORE_TOTAL_MINOR, currency)
    return Limits(*row)


def keep_limits(db: sqlite3.Connection, given: Limits) -> None:
    with immediate(db):
        db.execute("INSERT INTO offline_card_settings (only_row, per_payment_minor, store_total_minor, currency,"
                   " fetched_at) VALUES (1, ?, ?, ?, ?) ON CONFLICT (only_row) DO UPDATE SET per_payment_minor ="
                   " excluded.per_payment_minor, store_total_minor = excluded.store_total_minor,"
                   " currency = excluded.currency, fetched_at = excluded.fetched_at",
                   (given.per_payment_minor, given.store_total_minor, given.currency, time.time()))


def counted(db: sqlite3.Connection) -> tuple[int, int]:
    """How many offline approvals count against the store's total, and their sum (minor units)."""
    count, total = db.execute(f"SELECT count(*), coalesce(sum(amount_minor), 0) FROM offline_cards WHERE state IN"
                              f" {COUNTED}").fetchone()
    return int(count), int(total)


def reserve(db: sqlite3.Connection, tender_id: str, till: str, amount_minor: int, currency: str) -> str | None:
    """Count a card about to be taken offline; None when it may be, else the sentence for the cashier (and nothing
    is counted). A tender already in the ledger is not counted twice."""
    money = lambda minor: Money(minor, currency).format()  # noqa: E731
    with immediate(db):
        if db.execute("SELECT 1 FROM offline_cards WHERE tender_id = ?", (tender_id,)).fetchone() is not None:
            return None
        given = limits(db, currency)
        if amount_minor > given.per_payment_minor:
            return (f"the store is offline: cards over {money(given.per_payment_minor)} cannot be taken offline, "
                    "take cash")
        _, taken = counted(db)
        if taken + amount_minor > given.store_total_minor:
            return (f"the store is offline and {money(taken)} of card payments wait for the hub already (at most "
                    f"{money(given.store_total_minor)}): take cash")
        db.execute("INSERT INTO offline_cards (tender_id, till, amount_minor, currency, state, taken_at)"
                   " VALUES (?, ?, ?, ?, 'reserved', ?)", (tender_id, till, amount_minor, currency, time.time()))
    return None


def journal(db: sqlite3.Connection, event: Envelope) -> None:
    """The outbox's hook (actors.storage.outbox.Journal): an offline card.approved makes its row outstanding in the
    event's own transaction, so an approval on disk is always counted (inserted when its reservation is gone)."""
    if event.type != "card.approved" or not event.body["offline"]:
        return
    body, card = event.body, event.body["card"]
    db.execute("INSERT INTO offline_cards (tender_id, till, amount_minor, currency, state, scheme, masked, taken_at)"
               " VALUES (?, ?, ?, ?, 'outstanding', ?, ?, ?) ON CONFLICT (tender_id) DO UPDATE SET state ="
               " 'outstanding', scheme = excluded.scheme, masked = excluded.masked, message = '' WHERE"
               f" offline_cards.state IN {COUNTED} OR (offline_cards.state = 'released' AND offline_cards.message = ?)",
               (body["tender"], body["till"], body["amount"]["minor"], body["currency"], card["scheme"], card["masked"],
                time.time(), EXPIRED))


def expire(db: sqlite3.Connection, older_than_s: float) -> int:
    """Release the reservations older than `older_than_s` (EXPIRED): their till no longer holds the card, and they
    would count against the store's total for good. An approval that comes after all counts again (journal).
    How many were released."""
    with immediate(db):
        return db.execute("UPDATE offline_cards SET state = 'released', message = ?, settled_at = ? WHERE state ="
                          " 'reserved' AND taken_at < ?", (EXPIRED, time.time(), time.time() - older_than_s)).rowcount


def settle(db: sqlite3.Connection, tender_id: str, state: str, message: str = "",
           settling: tuple[str, ...] = COUNTED) -> bool:
    """Settle a row in one of the `settling` states (`state` one of SETTLED); True if it changed."""
    assert state in SETTLED
    with immediate(db):
        return db.execute("UPDATE offline_cards SET state = ?, message = ?, settled_at = ? WHERE tender_id = ? AND"
                          f" state IN ({', '.join('?' for _ in settling)})",
                          (state, message, time.time(), tender_id, *settling)).rowcount > 0


def waiting(db: sqlite3.Connection, state: str, limit: int) -> list[tuple[str, str]]:
    """The oldest rows in `state` ("outstanding": not confirmed by the hub yet; "abandoned": not cancelled there yet;
    reserved ones are the till's business), as (tender_id, message)."""
    return [(tender, message) for tender, message in db.execute(
        "SELECT tender_id, message FROM offline_cards WHERE state = ? ORDER BY taken_at LIMIT ?", (state, limit))]


def follow_ups(db: sqlite3.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The declined offline approvals, newest first: the customers who owe the store."""
    rows = db.execute("SELECT tender_id, till, amount_minor, currency, scheme, masked, message, taken_at, settled_at"
                      " FROM offline_cards WHERE state = 'declined' ORDER BY settled_at DESC LIMIT ?", (limit,))
    return [{"tender_id": tender, "till": till, "amount": Money(amount, currency).to_wire(), "scheme": scheme,
             "masked": masked, "message": message, "taken_at": taken_at, "declined_at": settled_at}
            for tender, till, amount, currency, scheme, masked, message, taken_at, settled_at in rows]
