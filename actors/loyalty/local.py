"""What a store keeps about customers and loyalty, so its tills work while the hub is away (edge schema version 8).

Three things, in the store's SQLite file:

- a bounded cache of the store's recent customers (`[loyalty] customer_cache_size`, the oldest seen dropped first):
  id, card number, name, tier and points as the hub last said. Phone and email are kept only as a hash of their
  normalised form, so an offline lookup by phone or email finds a customer without the store holding either;
- the tenant's loyalty settings as the hub last gave them (`loyalty_settings`): a point's value, and the offline
  budget (points the whole store may have redeemed offline that the hub has not received yet) and per-customer cap
  (the same, for one customer);
- the ledger of points redeemed offline, one row per redemption id (edge schema versions 8 and 9).

What the budget and the cap bound is the store's exposure: points taken offline that the hub cannot yet know of
(the customer may be spending the same points at another store meanwhile). A redemption counts from the moment it
is taken until the sale that carries it has reached the hub's stream, or until it is given back (a void stops it
counting at once). The sale's event id is written on the row in the transaction that commits the sale (`journal`,
an outbox Journal), and the outbox releases an event only when JetStream has acknowledged it
(actors.storage.forwarder), so "its event is no longer in the outbox" is exactly "the hub has it"; those rows are
then stamped `forwarded_at` (so the rows still counted stay few however long the store runs). Why not a budget per
day: a day's budget bounds nothing over a long outage (three days offline is three budgets at risk) and renews at
midnight while nothing has been reconciled; this one bounds the exposure whatever the outage's length, and frees
itself as soon as the link is back. Everything is in the store's SQLite file, so a restart resets nothing, and two
tills cannot both squeeze under the budget (each check and insert is one write transaction).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from actors.storage.db import immediate
from novapos import validators
from novapos.wire.envelope import Envelope


@dataclass(frozen=True)
class Settings:
    """The tenant's loyalty settings a store keeps for offline redemption."""
    point_value_minor: int
    currency: str
    offline_budget_points: int
    offline_cap_points: int


@dataclass(frozen=True)
class Profile:
    """A customer as the till shows them: no phone or email (the till never needs to show either)."""
    id: str
    card_number: str
    name: str
    tier: str
    points: int

    def to_wire(self) -> dict[str, Any]:
        """What the till's page shows: the card number masked (as on the receipt)."""
        return {"id": self.id, "card": mask(self.card_number), "name": self.name, "tier": self.tier,
                "points": self.points}

    def to_saved(self) -> dict[str, Any]:
        return {"id": self.id, "card_number": self.card_number, "name": self.name, "tier": self.tier,
                "points": self.points}


def restore_profile(raw: Any) -> Profile:
    """A profile from a till's saved state, every field checked (validators.Invalid)."""
    if not isinstance(raw, dict):
        raise validators.Invalid("saved customer", "must be an object")
    texts = {name: "" if raw.get(name) in (None, "") else validators.text(f"saved customer {name}", raw[name],
                                                                          max_length=200)
             for name in ("card_number", "name", "tier")}
    return Profile(validators.uuid_text("saved customer id", raw.get("id")), texts["card_number"], texts["name"],
                   texts["tier"], validators.integer("saved customer points", raw.get("points", 0),
                                                     -validators.MAX_BIGINT, validators.MAX_BIGINT))


def mask(number: str) -> str:
    """A card number as receipts and logs show it: the last four digits."""
    return "*" * max(0, len(number) - 4) + number[-4:] if number else ""


def _normal_phone(value: str) -> str:
    return re.sub(r"[^+0-9]", "", value)


def _hash(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def query_keys(query: str) -> tuple[str, str | None, str | None]:
    """What a typed or scanned query may match in the cache: (card number, phone hash, email hash)."""
    query = query.strip()
    if "@" in query:
        return query, None, _hash("email", query.lower())
    phone = _normal_phone(query)
    return query, _hash("phone", phone) if len(phone) >= 6 else None, None


def remember(db: sqlite3.Connection, found: dict[str, Any], size: int) -> Profile:
    """Keep (or refresh) one customer the hub answered, then drop the oldest beyond `size`."""
    profile = Profile(str(found["id"]), str(found.get("card_number") or ""), str(found.get("name") or ""),
                      str(found.get("tier") or ""), int(found.get("points") or 0))
    phone, email = found.get("phone"), found.get("email")
    with immediate(db):
        db.execute("INSERT INTO loyalty_customers (id, card_number, name, phone_hash, email_hash, tier, points, seen_at)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET card_number ="
                   " excluded.card_number, name = excluded.name, phone_hash = excluded.phone_hash, email_hash ="
                   " excluded.email_hash, tier = excluded.tier, points = excluded.points, seen_at = excluded.seen_at",
                   (profile.id, profile.card_number or None, profile.name,
                    _hash("phone", _normal_phone(phone)) if isinstance(phone, str) and phone else None,
                    _hash("email", email.lower()) if isinstance(email, str) and email else None,
                    profile.tier, profile.points, time.time()))
        db.execute("DELETE FROM loyalty_customers WHERE id NOT IN (SELECT id FROM loyalty_customers"
                   " ORDER BY seen_at DESC LIMIT ?)", (size,))
    return profile


def forget(db: sqlite3.Connection, customer: str) -> None:
    """Drop a customer the hub says is erased (a data subject request reaches the store's cache too)."""
    with immediate(db):
        db.execute("DELETE FROM loyalty_customers WHERE id = ?", (customer,))


def find(db: sqlite3.Connection, query: str, limit: int = 10) -> list[Profile]:
    """The cached customers a query matches: a card number, or a phone's or an email's hash."""
    card, phone, email = query_keys(query)
    rows = db.execute("SELECT id, coalesce(card_number, ''), name, tier, points FROM loyalty_customers WHERE"
                      " card_number = ? OR phone_hash = ? OR email_hash = ? ORDER BY seen_at DESC LIMIT ?",
                      (card, phone, email, limit))
    return [Profile(*row) for row in rows]


def cached(db: sqlite3.Connection, customer: str) -> Profile | None:
    row = db.execute("SELECT id, coalesce(card_number, ''), name, tier, points FROM loyalty_customers WHERE id = ?",
                     (customer,)).fetchone()
    return None if row is None else Profile(*row)


def set_points(db: sqlite3.Connection, customer: str, points: int) -> None:
    """The customer's balance as last seen (after a redemption the hub answered, or one taken offline)."""
    with immediate(db):
        db.execute("UPDATE loyalty_customers SET points = ? WHERE id = ?", (points, customer))


def settings(db: sqlite3.Connection, currency: str) -> Settings | None:
    """The settings the hub last gave in the store's currency; None before it has (no points are taken offline
    without knowing what a point is worth)."""
    row = db.execute("SELECT point_value_minor, currency, offline_budget_points, offline_cap_points FROM"
                     " loyalty_settings").fetchone()
    return None if row is None or row[1] != currency else Settings(*row)


def settings_age_s(db: sqlite3.Connection) -> float | None:
    row = db.execute("SELECT fetched_at FROM loyalty_settings").fetchone()
    return None if row is None else time.time() - float(row[0])


def keep_settings(db: sqlite3.Connection, given: Settings) -> None:
    with immediate(db):
        db.execute("INSERT INTO loyalty_settings (only_row, point_value_minor, currency, offline_budget_points,"
                   " offline_cap_points, fetched_at) VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (only_row) DO UPDATE SET"
                   " point_value_minor = excluded.point_value_minor, currency = excluded.currency,"
                   " offline_budget_points = excluded.offline_budget_points, offline_cap_points ="
                   " excluded.offline_cap_points, fetched_at = excluded.fetched_at",
                   (given.point_value_minor, given.currency, given.offline_budget_points, given.offline_cap_points,
                    time.time()))


def _mark_forwarded(db: sqlite3.Connection) -> None:
    """Stamp the counted redemptions whose sale has left the outbox (JetStream acknowledged it: the hub has it)."""
    db.execute("UPDATE loyalty_offline_redemptions SET forwarded_at = ? WHERE state = 'taken' AND forwarded_at IS NULL"
               " AND event IS NOT NULL AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.id ="
               " loyalty_offline_redemptions.event)", (time.time(),))


def offline_unsent(db: sqlite3.Connection, customer: str | None = None) -> int:
    """Points redeemed offline (at this store, or by one customer) that the hub has not received: taken, not given
    back, and their sale not yet acknowledged by the hub's stream (not sold yet, or still in the outbox)."""
    row = db.execute("SELECT coalesce(sum(points), 0) FROM loyalty_offline_redemptions WHERE state = 'taken' AND"
                     " forwarded_at IS NULL AND (event IS NULL OR EXISTS (SELECT 1 FROM outbox WHERE outbox.id ="
                     " loyalty_offline_redemptions.event)) AND (? IS NULL OR customer = ?)",
                     (customer, customer)).fetchone()
    return int(row[0])


def redeem_offline(db: sqlite3.Connection, given: Settings, redemption: str, till: str, customer: str,
                   points: int) -> str | None:
    """Count `points` redeemed offline now; None when they may be, else the sentence for the cashier (and nothing
    is counted). A redemption already in the ledger is not counted twice."""
    with immediate(db):
        if db.execute("SELECT 1 FROM loyalty_offline_redemptions WHERE redemption = ?",
                      (redemption,)).fetchone() is not None:
            return None
        _mark_forwarded(db)
        theirs, store = offline_unsent(db, customer), offline_unsent(db)
        if theirs + points > given.offline_cap_points:
            left = max(0, given.offline_cap_points - theirs)
            return (f"offline, a customer may redeem at most {given.offline_cap_points} points until the hub has the "
                    f"sales that took them, and this one has {left} left: take another tender, or wait for the hub")
        if store + points > given.offline_budget_points:
            left = max(0, given.offline_budget_points - store)
            return (f"offline, the store may redeem at most {given.offline_budget_points} points until the hub has "
                    f"the sales that took them, and has {left} left: take another tender, or wait for the hub")
        db.execute("INSERT INTO loyalty_offline_redemptions (redemption, till, customer, points, day, state, taken_at)"
                   " VALUES (?, ?, ?, ?, ?, 'taken', ?)",
                   (redemption, till, customer, points, time.strftime("%Y-%m-%d", time.gmtime()), time.time()))
    return None


def journal(db: sqlite3.Connection, event: Envelope) -> None:
    """The outbox's hook (actors.storage.outbox.Journal): a sale with a points tender taken offline names its event
    on the redemption's row, in the sale's own transaction, so the redemption counts until that event has left the
    outbox (acknowledged by the hub's stream). A row that is missing, or was given back, counts again: the sale
    carries it, so the hub will debit it."""
    if event.type != "sale.completed":
        return
    for tender in event.body["tenders"]:
        points = tender.get("points")
        if tender["method"] != "points" or not points or not points.get("offline"):
            continue
        db.execute("INSERT INTO loyalty_offline_redemptions (redemption, till, customer, points, day, state, taken_at,"
                   " event) VALUES (?, ?, ?, ?, ?, 'taken', ?, ?) ON CONFLICT (redemption) DO UPDATE SET state ="
                   " 'taken', event = excluded.event, forwarded_at = NULL",
                   (points["redemption"], event.body["till"], points["customer"], points["points"],
                    time.strftime("%Y-%m-%d", time.gmtime(event.ts / 1000)), time.time(), str(event.id)))


def give_back_offline(db: sqlite3.Connection, redemption: str) -> bool:
    """An offline redemption whose sale will not complete: it no longer counts (the hub never hears of it)."""
    with immediate(db):
        return db.execute("UPDATE loyalty_offline_redemptions SET state = 'reversed' WHERE redemption = ? AND state ="
                          " 'taken'", (redemption,)).rowcount > 0
