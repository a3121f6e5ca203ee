"""Gift cards: issued, topped up and blocked from the console (audited), redeemed, reversed and refunded to by tills.

The ledger (gift_card_ledger) is the truth; gift_cards.balance_minor is its cache, written in the same transaction
as each entry (an entry carries the balance right after it). A redemption takes money by one conditional UPDATE
(`balance_minor >= amount`, active, not expired, the card's currency): PostgreSQL serialises concurrent UPDATEs of
the card's row and re-checks the condition on the committed balance, so fifty redemptions at once never take more
than the card holds.

Redemption ids (the till's, one per tender or refund) make the stores' calls idempotent: the ledger has one
redeem, one reverse and one refund entry per id at most (a unique index). The same request again answers what the
first did; the id with another card or amount is 409. A reversal gives back a redemption whose sale did not
complete; one a completed sale confirmed is 409.

Offline, a gift card is refused by the till: it is a bearer instrument with no owner to recover an overspend from.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.audit.chain import Entry, record
from hub.giftcards import metrics, numbers
from hub.refusals import Refused

log = logging.getLogger(__name__)

_BY_HASH = "SELECT * FROM gift_cards WHERE tenant = $1 AND number_hash = $2"
_ENTRY = "SELECT * FROM gift_card_ledger WHERE tenant = $1 AND redemption = $2 AND kind = $3"
_TOMBSTONE = "SELECT 1 FROM gift_card_tombstones WHERE tenant = $1 AND redemption = $2"
_REFUNDABLE = ("SELECT coalesce(sum(-amount_minor) FILTER (WHERE kind = 'redeem' AND sale_event = $2), 0)"
               " - coalesce(sum(amount_minor) FILTER (WHERE kind = 'refund' AND refund_order = $2::text), 0)"
               " FROM gift_card_ledger WHERE tenant = $1 AND (sale_event = $2 OR refund_order = $2::text)")
_APPEND = ("INSERT INTO gift_card_ledger (tenant, card, kind, amount_minor, balance_minor, redemption, store, till,"
           " actor, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id")


def card_json(card: asyncpg.Record) -> dict[str, Any]:
    """A card as the console and the tills see it (never its number)."""
    return {"id": str(card["id"]), "card": numbers.masked(card["last4"]), "last4": card["last4"],
            "currency": card["currency"], "balance_minor": card["balance_minor"], "active": card["active"],
            "blocked_reason": card["blocked_reason"],
            "expires_at": card["expires_at"].isoformat() if card["expires_at"] else None,
            "customer": str(card["customer"]) if card["customer"] else None, "issued_by": card["issued_by"],
            "issued_at": card["issued_at"].isoformat()}


def entry_json(entry: asyncpg.Record) -> dict[str, Any]:
    return {"id": entry["id"], "kind": entry["kind"], "amount_minor": entry["amount_minor"],
            "balance_minor": entry["balance_minor"], "redemption": entry["redemption"], "store": entry["store"],
            "till": entry["till"], "actor": entry["actor"], "reason": entry["reason"],
            "sale_event": str(entry["sale_event"]) if entry["sale_event"] else None, "at": entry["at"].isoformat()}


def _expired(card: asyncpg.Record) -> bool:
    return card["expires_at"] is not None and card["expires_at"] <= datetime.now(UTC)


def _unusable(card: asyncpg.Record, currency: str, operation: str) -> Refused | None:
    """Why `card` can take no redemption or refund now (None: it can, the balance aside)."""
    masked = numbers.masked(card["last4"])
    if not card["active"]:
        metrics.OPERATIONS.labels(operation, "blocked").inc()
        return Refused(409, f"gift card {masked} is blocked: it cannot be used")
    if _expired(card):
        metrics.OPERATIONS.labels(operation, "expired").inc()
        return Refused(409, f"gift card {masked} expired on {card['expires_at']:%Y-%m-%d}")
    if card["currency"] != currency:
        metrics.OPERATIONS.labels(operation, "currency").inc()
        return Refused(409, f"gift card {masked} holds {card['currency']}, not {currency}")
    return None


async def _card(conn: asyncpg.Connection, tenant: str, number: str, operation: str) -> asyncpg.Record:
    card = await conn.fetchrow(_BY_HASH, tenant, await numbers.hashed(tenant, number))
    if card is None:
        metrics.OPERATIONS.labels(operation, "unknown").inc()
        raise Refused(404, f"there is no gift card ending {number[-4:]}: check the number")
    return card


async def balance(pool: asyncpg.Pool, tenant: str, number: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        card = await _card(conn, tenant, number, "balance")
    metrics.OPERATIONS.labels("balance", "done").inc()
    return {"card": numbers.masked(card["last4"]), "balance_minor": card["balance_minor"],
            "currency": card["currency"], "active": card["active"] and not _expired(card),
            **({"expires_at": card["expires_at"].isoformat()} if card["expires_at"] else {})}


def _same(entry: asyncpg.Record, card: asyncpg.Record, store: str, amount: int, kind: str,
          operation: str) -> dict[str, Any]:
    """The answer to a redemption id seen before: the first answer when it is the same request (the same store,
    card and amount), else 409."""
    if entry["card"] != card["id"] or entry["store"] != store or abs(entry["amount_minor"]) != amount:
        metrics.OPERATIONS.labels(operation, "conflict").inc()
        raise Refused(409, f"redemption {entry['redemption']} was another {kind}: use a new redemption id")
    metrics.OPERATIONS.labels(operation, "again").inc()
    return {"redemption": entry["redemption"], "card": numbers.masked(card["last4"]), "amount_minor": amount,
            "balance_minor": entry["balance_minor"]}


async def _claim(conn: asyncpg.Connection, tenant: str, redemption: str) -> bool:
    """Serialise everything done under one redemption id (a redeem against the reversal that may overtake it) until
    the transaction ends; True when a reversal of the id came first (a tombstone: the redeem must not take money)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"gift-card:{tenant}:{redemption}")
    return bool(await conn.fetchval(_TOMBSTONE, tenant, redemption))


async def redeem(pool: asyncpg.Pool, tenant: str, store: str, *, number: str, redemption: str, amount_minor: int,
                 currency: str, till: str, actor: str) -> dict[str, Any]:
    """Take `amount_minor` off the card now (a tender): {redemption, card, amount_minor, balance_minor}; 402 when
    the balance is short (the sentence says what is left), 409 blocked, expired, another currency."""
    async with pool.acquire() as conn:
        card = await _card(conn, tenant, number, "redeem")
        for _ in range(2):  # a second pass only when the same id was redeemed at the same moment
            if (prior := await conn.fetchrow(_ENTRY, tenant, redemption, "redeem")) is not None:
                if await conn.fetchval(_ENTRY, tenant, redemption, "reverse"):
                    metrics.OPERATIONS.labels("redeem", "conflict").inc()
                    raise Refused(409, f"redemption {redemption} was reversed: use a new redemption id")
                return _same(prior, card, store, amount_minor, "redemption", "redeem")
            if (refused := _unusable(card, currency, "redeem")) is not None:
                raise refused
            try:
                async with conn.transaction():
                    if await _claim(conn, tenant, redemption):
                        metrics.OPERATIONS.labels("redeem", "reversed").inc()
                        raise Refused(409, f"redemption {redemption} was reversed before it arrived: nothing was "
                                           "taken, use a new redemption id")
                    left = await conn.fetchval(
                        "UPDATE gift_cards SET balance_minor = balance_minor - $3, updated_at = now() WHERE tenant = $1"
                        " AND id = $2 AND active AND (expires_at IS NULL OR expires_at > now()) AND currency = $4"
                        " AND balance_minor >= $3 RETURNING balance_minor", tenant, card["id"], amount_minor, currency)
                    if left is None:
                        if await conn.fetchval(_ENTRY.replace("*", "1"), tenant, redemption, "redeem"):
                            raise asyncpg.UniqueViolationError(f"redemption {redemption} exists")  # the same id, meanwhile
                        card = await conn.fetchrow("SELECT * FROM gift_cards WHERE tenant = $1 AND id = $2",
                                                   tenant, card["id"])
                        if (refused := _unusable(card, currency, "redeem")) is not None:
                            raise refused
                        metrics.OPERATIONS.labels("redeem", "short").inc()
                        raise Refused(402, f"gift card {numbers.masked(card['last4'])} holds only "
                                           f"{card['balance_minor']} {card['currency']} (minor units): take the rest "
                                           "another way")
                    await conn.execute(_APPEND, tenant, card["id"], "redeem", -amount_minor, left, redemption, store,
                                       till, actor, None)
            except asyncpg.UniqueViolationError:
                continue
            metrics.OPERATIONS.labels("redeem", "done").inc()
            metrics.MOVED_MINOR.labels("redeem", currency).inc(amount_minor)
            log.info("gift card redeemed tenant=%s store=%s card=%s redemption=%s amount_minor=%d", tenant, store,
                     numbers.masked(card["last4"]), redemption, amount_minor)
            return {"redemption": redemption, "card": numbers.masked(card["last4"]), "amount_minor": amount_minor,
                    "balance_minor": left}
    raise RuntimeError(f"redemption {redemption} neither found nor made")  # pragma: no cover: a unique index lies


async def reverse(pool: asyncpg.Pool, tenant: str, store: str, *, redemption: str, actor: str,
                  reason: str | None) -> dict[str, Any]:
    """Give back a redemption of this store whose sale did not complete. Idempotent; 409 when a completed sale
    confirmed it. A redemption id the hub has not seen (its redeem may still be queued behind others) is recorded as
    reversed, a tombstone, and answered as reversed (nothing was taken): the redeem arriving later is 409."""
    async with pool.acquire() as conn, conn.transaction():
        tombstoned = await _claim(conn, tenant, redemption)
        taken = await conn.fetchrow(_ENTRY + " FOR UPDATE", tenant, redemption, "redeem")
        if taken is None:
            if not tombstoned:
                await conn.execute("INSERT INTO gift_card_tombstones (tenant, redemption, store, actor)"
                                   " VALUES ($1, $2, $3, $4)", tenant, redemption, store, actor)
            metrics.OPERATIONS.labels("reverse", "unseen").inc()
            log.info("gift card redemption %s reversed before the hub saw it tenant=%s store=%s", redemption, tenant,
                     store)
            return {"redemption": redemption, "reversed": True, "balance_minor": None}
        if taken["store"] != store:
            metrics.OPERATIONS.labels("reverse", "unknown").inc()
            raise Refused(404, f"there is no gift card redemption {redemption} of this store: nothing was taken")
        if (done := await conn.fetchrow(_ENTRY, tenant, redemption, "reverse")) is not None:
            metrics.OPERATIONS.labels("reverse", "again").inc()
            return {"redemption": redemption, "reversed": True, "balance_minor": done["balance_minor"]}
        if taken["sale_event"] is not None:
            metrics.OPERATIONS.labels("reverse", "sold").inc()
            raise Refused(409, f"redemption {redemption} is part of a completed sale: refund it with a return")
        amount = -taken["amount_minor"]
        currency = await conn.fetchval("SELECT currency FROM gift_cards WHERE tenant = $1 AND id = $2", tenant,
                                       taken["card"])
        left = await conn.fetchval("UPDATE gift_cards SET balance_minor = balance_minor + $3, updated_at = now()"
                                   " WHERE tenant = $1 AND id = $2 RETURNING balance_minor", tenant, taken["card"],
                                   amount)
        await conn.execute(_APPEND, tenant, taken["card"], "reverse", amount, left, redemption, store, taken["till"],
                           actor, reason)
    metrics.OPERATIONS.labels("reverse", "done").inc()
    metrics.MOVED_MINOR.labels("reverse", currency).inc(amount)
    return {"redemption": redemption, "reversed": True, "balance_minor": left}


async def refund(pool: asyncpg.Pool, tenant: str, store: str, *, number: str, redemption: str, amount_minor: int,
                 currency: str, till: str, actor: str, order: uuid.UUID) -> dict[str, Any]:
    """Put money back on a card (a return of `order` refunded to it): {redemption, card, balance_minor}.
    Idempotent. What an order's refunds put on gift cards is capped at what its gift card tenders took (the redeem
    entries its sale confirmed) less its earlier gift card refunds: more is 409, so no till mints value."""
    async with pool.acquire() as conn:
        card = await _card(conn, tenant, number, "refund")
        for _ in range(2):
            if (prior := await conn.fetchrow(_ENTRY, tenant, redemption, "refund")) is not None:
                answer = _same(prior, card, store, amount_minor, "refund", "refund")
                return {key: answer[key] for key in ("redemption", "card", "balance_minor")}
            if (refused := _unusable(card, currency, "refund")) is not None:
                raise refused
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                                       f"gift-card-order:{tenant}:{order}")  # one order's refunds, one at a time
                    room = await conn.fetchval(_REFUNDABLE, tenant, order)
                    if amount_minor > room:
                        metrics.OPERATIONS.labels("refund", "over").inc()
                        raise Refused(409, f"order {order} can take back only {room} {currency} (minor units) to gift "
                                           "cards (what its gift card tenders paid, less earlier refunds): refund the "
                                           "rest another way")
                    left = await conn.fetchval(
                        "UPDATE gift_cards SET balance_minor = balance_minor + $3, updated_at = now() WHERE tenant = $1"
                        " AND id = $2 AND active RETURNING balance_minor", tenant, card["id"], amount_minor)
                    if left is None:
                        raise Refused(409, f"gift card {numbers.masked(card['last4'])} is blocked: refund another way")
                    entry = await conn.fetchval(_APPEND, tenant, card["id"], "refund", amount_minor, left, redemption,
                                                store, till, actor, f"return of order {order}")
                    await conn.execute("UPDATE gift_card_ledger SET refund_order = $3 WHERE tenant = $1 AND id = $2",
                                       tenant, entry, str(order))
            except asyncpg.UniqueViolationError:
                continue
            metrics.OPERATIONS.labels("refund", "done").inc()
            metrics.MOVED_MINOR.labels("refund", currency).inc(amount_minor)
            return {"redemption": redemption, "card": numbers.masked(card["last4"]), "balance_minor": left}
    raise RuntimeError(f"refund {redemption} neither found nor made")  # pragma: no cover


UNCONFIRMED_AFTER = timedelta(days=1)
"""A redemption or refund no completed sale or return confirmed within this is listed for a person: a sale voided
without its reversal reaching the hub, or a return abandoned after its refund (the card keeps the credit)."""


async def unconfirmed(pool: asyncpg.Pool, tenant: str, limit: int = 200) -> dict[str, Any]:
    """The tenant's redemptions and refunds unconfirmed after UNCONFIRMED_AFTER (not reversed), oldest first, with
    their count (also the gauge novapos_hub_gift_card_unconfirmed_entries)."""
    rows = await pool.fetch(
        "SELECT l.*, c.last4, count(*) OVER () AS total FROM gift_card_ledger l JOIN gift_cards c ON c.tenant = l.tenant"
        " AND c.id = l.card WHERE l.tenant = $1 AND l.sale_event IS NULL AND l.kind IN ('redeem', 'refund')"
        " AND l.at < now() - $2::interval AND NOT EXISTS (SELECT 1 FROM gift_card_ledger r WHERE r.tenant = l.tenant"
        " AND r.redemption = l.redemption AND r.kind = 'reverse') ORDER BY l.at LIMIT $3", tenant, UNCONFIRMED_AFTER,
        limit)
    total = rows[0]["total"] if rows else 0
    metrics.UNCONFIRMED.labels(tenant).set(total)
    return {"total": total, "items": [{**entry_json(row), "card": numbers.masked(row["last4"]),
                                       "card_id": str(row["card"])} for row in rows]}


# ---- the console's changes: each audited in its own transaction ---------------------------------------------

async def issue(pool: asyncpg.Pool, tenant: str, *, amount_minor: int, currency: str, expires_at: datetime | None,
                customer: uuid.UUID | None, actor: str, number: str | None = None) -> tuple[str, dict[str, Any]]:
    """A new card holding `amount_minor`: (its number, shown this once; the card). `number`: a given one (the
    demo's, or cards printed ahead); otherwise a fresh one."""
    for _ in range(5):
        made = number or numbers.generate()
        digest = await numbers.hashed(tenant, made)
        card_id = uuid.uuid4()
        async with pool.acquire() as conn, conn.transaction():
            card = await conn.fetchrow(
                "INSERT INTO gift_cards (tenant, id, number_hash, last4, currency, balance_minor, expires_at, customer,"
                " issued_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING *",
                tenant, card_id, digest, made[-4:], currency, amount_minor, expires_at, customer, actor)
            if card is None:
                if number is not None:
                    raise Refused(409, f"gift card {numbers.masked(made[-4:])} exists already")
                continue  # one chance in 10^18: draw again
            await conn.execute(_APPEND, tenant, card_id, "issue", amount_minor, amount_minor, None, None, None, actor,
                               None)
            await record(conn, Entry(tenant, actor, "gift_card.issued", target=str(card_id), details={
                "card": numbers.masked(made[-4:]), "amount_minor": amount_minor, "currency": currency}))
        metrics.OPERATIONS.labels("issue", "done").inc()
        metrics.MOVED_MINOR.labels("issue", currency).inc(amount_minor)
        return made, card_json(card)
    raise RuntimeError("no free gift card number in 5 draws")  # pragma: no cover: 10^18 numbers


async def top_up(pool: asyncpg.Pool, tenant: str, card_id: uuid.UUID, *, amount_minor: int, reason: str | None,
                 actor: str) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        card = await conn.fetchrow("UPDATE gift_cards SET balance_minor = balance_minor + $3, updated_at = now()"
                                   " WHERE tenant = $1 AND id = $2 AND active AND (expires_at IS NULL OR expires_at >"
                                   " now()) RETURNING *", tenant, card_id, amount_minor)
        if card is None:
            await _exists(conn, tenant, card_id)
            metrics.OPERATIONS.labels("top_up", "blocked").inc()
            raise Refused(409, "this gift card is blocked or expired: money put on it could not be spent")
        await conn.execute(_APPEND, tenant, card_id, "top_up", amount_minor, card["balance_minor"], None, None, None,
                           actor, reason)
        await record(conn, Entry(tenant, actor, "gift_card.topped_up", target=str(card_id), details={
            "card": numbers.masked(card["last4"]), "amount_minor": amount_minor, "currency": card["currency"],
            "balance_minor": card["balance_minor"], "reason": reason}))
    metrics.OPERATIONS.labels("top_up", "done").inc()
    metrics.MOVED_MINOR.labels("top_up", card["currency"]).inc(amount_minor)
    return card_json(card)


async def _exists(conn: asyncpg.Connection, tenant: str, card_id: uuid.UUID) -> None:
    if not await conn.fetchval("SELECT 1 FROM gift_cards WHERE tenant = $1 AND id = $2", tenant, card_id):
        raise Refused(404, f"there is no gift card {card_id}")


async def set_active(pool: asyncpg.Pool, tenant: str, card_id: uuid.UUID, *, active: bool, reason: str,
                     actor: str) -> dict[str, Any]:
    """Block (a lost or stolen card: nothing can be taken from it) or unblock a card."""
    operation = "unblock" if active else "block"
    async with pool.acquire() as conn, conn.transaction():
        card = await conn.fetchrow("UPDATE gift_cards SET active = $3, blocked_reason = $4, updated_at = now()"
                                   " WHERE tenant = $1 AND id = $2 RETURNING *", tenant, card_id, active,
                                   None if active else reason)
        if card is None:
            raise Refused(404, f"there is no gift card {card_id}")
        await record(conn, Entry(tenant, actor, f"gift_card.{operation}ed", target=str(card_id), details={
            "card": numbers.masked(card["last4"]), "reason": reason}))
    metrics.OPERATIONS.labels(operation, "done").inc()
    return card_json(card)


# ---- what completed sales and returns confirm (inside the ingest's transaction) -----------------------------

async def confirm(conn: asyncpg.Connection, tenant: str, store: str, event_id: uuid.UUID, kind: str,
                  redemption: str, amount_minor: int) -> str:
    """Mark the redeem (a sale's gift_card tender) or refund (a return's) entry as its event's; the result label.
    An entry an event confirmed already, named again (by another sale or return, or a second tender of one), is
    marked reused: the money was taken once, so the store may be short."""
    entry = await conn.fetchrow("UPDATE gift_card_ledger SET sale_event = $4 WHERE tenant = $1 AND redemption = $2"
                                " AND kind = $3 AND sale_event IS NULL RETURNING amount_minor, store", tenant, redemption,
                                kind, event_id)
    if entry is None:
        reused = await conn.fetchval("UPDATE gift_card_ledger SET reused = true WHERE tenant = $1 AND redemption = $2"
                                     " AND kind = $3 RETURNING true", tenant, redemption, kind)
        result = "reused" if reused else "unknown"
    elif kind == "redeem" and await conn.fetchval(_ENTRY.replace("*", "1"), tenant, redemption, "reverse"):
        result = "reversed"
    elif abs(entry["amount_minor"]) != amount_minor or entry["store"] != store:
        result = "mismatch"
    else:
        result = "confirmed"
    metrics.CONFIRMATIONS.labels(kind, result).inc()
    if result != "confirmed":
        log.warning("a %s of gift card redemption %s is %s at the hub (tenant=%s store=%s event=%s): look at the "
                    "card's ledger", kind, redemption, result, tenant, store, event_id)
    return result
