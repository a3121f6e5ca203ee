"""Loyalty accounts and their ledger: the one place a balance changes.

Every change is a ledger entry (signed points, a key unique in the tenant so a replay changes nothing twice) and
the account's balance, written in the same transaction under the account's row lock. Credits are lots with an
expiry; debits take from the oldest lots first. The invariant, kept by `post`: the open lots hold
greatest(balance, 0) points, so a negative balance (an offline redemption of points spent elsewhere meanwhile) is
paid back by the next credits before they become spendable lots.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.loyalty import program as programs
from hub.loyalty.metrics import CORRECTIONS
from hub.loyalty.program import Program
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

ENSURE = ("INSERT INTO loyalty_accounts (tenant, customer, tier, multiplier_ppm) VALUES ($1, $2, $3, $4)"
          " ON CONFLICT (tenant, customer) DO NOTHING")

CONSUME_OLDEST = """
WITH open AS (SELECT id, remaining, sum(remaining) OVER (ORDER BY order_id IS DISTINCT FROM $4, earned_at, id)
                                    - remaining AS before
              FROM loyalty_lots WHERE tenant = $1 AND customer = $2 AND remaining > 0),
     taken AS (UPDATE loyalty_lots l SET remaining = l.remaining - least(o.remaining, $3 - o.before)
               FROM open o WHERE l.tenant = $1 AND l.id = o.id AND o.before < $3
               RETURNING l.id, least(o.remaining, $3 - o.before) AS points)
INSERT INTO loyalty_lot_takes (tenant, key, lot, points) SELECT $1, $5, id, points FROM taken WHERE $5::text IS NOT NULL
"""
"""Take $3 points from the customer's open lots, the lots of order $4 first (a return's reversal comes off its own
sale's lot), then oldest first; recorded as takes of ledger key $5 (NULL: not recorded). The caller holds the
account's row lock."""

RESTORABLE = """
SELECT t.key, t.lot, t.points, l.expires_at IS NOT NULL AND l.expires_at <= now() AS expired
FROM loyalty_lot_takes t JOIN loyalty_lots l ON l.tenant = t.tenant AND l.id = t.lot
WHERE t.tenant = $1 AND t.key = ANY($2::text[]) ORDER BY l.expires_at DESC NULLS FIRST, l.earned_at DESC, l.id
"""
"""What the debits of keys $2 took and no credit restored yet, latest expiry first."""

MAX_BALANCE = 10**15
"""No posting takes a balance beyond +/- this (a bigint holds 9.2 x 10^18): an absurd amount from a store is clamped
and counted (reason `clamped`), never an overflow that would stop the ingest."""

LEDGER = ("INSERT INTO loyalty_ledger (tenant, id, customer, key, kind, points, balance, order_id, store, actor,"
          " reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12, now()))")


async def exists(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID) -> bool:
    """Whether the customer is the tenant's (an event or request naming another is ignored or refused)."""
    return bool(await conn.fetchval("SELECT 1 FROM customers WHERE tenant = $1 AND id = $2", tenant, customer))


async def ensure(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID, program: Program) -> None:
    """The customer's account, opened in the program's first tier if it had none (the customer must exist)."""
    first = program.tiers[0]
    await conn.execute(ENSURE, tenant, customer, first.name, first.multiplier_ppm)


async def post(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID, points: int, *, kind: str, key: str,
               actor: str, program: Program, order_id: uuid.UUID | None = None, store: str | None = None,
               reason: str | None = None, at: datetime | None = None, restore: Sequence[str] = (),
               own_lots_first: uuid.UUID | None = None) -> int | None:
    """Add (points > 0) or take (points < 0) points, with its ledger entry; the balance after it, or None when `key`
    was posted before, or when nothing is left to post (nothing changes).

    A credit back of debits (`restore`: their ledger keys) goes into the lots they took from, with those lots'
    expiry; what they took from lots that expired since is not given back; what they took from no lot (a debit
    below zero) is a new lot. Any other credit is a new lot expiring after the program's months. A debit takes
    from the lots of order `own_lots_first` first, then the oldest, and records what it took under `key`.
    A debit may take the balance below zero: the caller decides whether it may (redemption.redeem may not).
    A posting is clamped so that the balance stays within +/- MAX_BALANCE (counted `clamped`)."""
    await ensure(conn, tenant, customer, program)
    before = int(await conn.fetchval("SELECT balance FROM loyalty_accounts WHERE tenant = $1 AND customer = $2"
                                     " FOR UPDATE", tenant, customer))
    if await conn.fetchval("SELECT 1 FROM loyalty_ledger WHERE tenant = $1 AND key = $2", tenant, key):
        return None
    if (bounded := max(-MAX_BALANCE - before, min(MAX_BALANCE - before, points))) != points:
        CORRECTIONS.labels("clamped").inc()
        log.warning("loyalty correction clamped: %s of %d points for entry %s clamped to %d", kind, points, key,
                    bounded)
        points = bounded
    restored, new_lot = 0, points
    if points > 0 and restore:
        restored, burnt = await _restore(conn, tenant, list(restore), points)
        new_lot = points - restored - burnt
        points -= burnt
    if points == 0:
        return None
    after = before + points
    await conn.execute("UPDATE loyalty_accounts SET balance = $3, updated_at = now() WHERE tenant = $1 AND"
                       " customer = $2", tenant, customer, after)
    await conn.execute(LEDGER, tenant, uuid7(), customer, key, kind, points, after, order_id, store, actor, reason,
                       at)
    if points > 0:
        if new_lot > 0:
            await add_lot(conn, tenant, customer, new_lot, program=program, order_id=order_id, at=at)
        if before < 0:  # the credit pays the debt first: the lots keep holding greatest(balance, 0)
            await conn.execute(CONSUME_OLDEST, tenant, customer, min(-before, points), None, None)
    elif before > 0:
        await conn.execute(CONSUME_OLDEST, tenant, customer, min(-points, before), own_lots_first, key)
    return int(after)


async def _restore(conn: asyncpg.Connection, tenant: str, keys: list[str], points: int) -> tuple[int, int]:
    """Give up to `points` back into the lots the debits of `keys` took from; (restored, burnt: taken from lots
    that have expired since, not given back). Each take is used up as it is given back."""
    restored = burnt = 0
    for take in await conn.fetch(RESTORABLE, tenant, keys):
        if (give := min(int(take["points"]), points - restored - burnt)) <= 0:
            break
        if take["expired"]:
            burnt += give
        else:
            restored += give
            await conn.execute("UPDATE loyalty_lots SET remaining = remaining + $3 WHERE tenant = $1 AND id = $2",
                               tenant, take["lot"], give)
        await conn.execute("UPDATE loyalty_lot_takes SET points = points - $4 WHERE tenant = $1 AND key = $2 AND"
                           " lot = $3 AND points > $4", tenant, take["key"], take["lot"], give)
        await conn.execute("DELETE FROM loyalty_lot_takes WHERE tenant = $1 AND key = $2 AND lot = $3 AND"
                           " points = $4", tenant, take["key"], take["lot"], give)
    return restored, burnt


async def add_lot(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID, points: int, *, program: Program,
                  order_id: uuid.UUID | None, at: datetime | None) -> None:
    """A new lot of `points`, all open (`post` then pays a negative balance back from the oldest lots)."""
    await conn.execute(
        "INSERT INTO loyalty_lots (tenant, id, customer, points, remaining, earned_at, expires_at, order_id)"
        " VALUES ($1, $2, $3, $4, $5, coalesce($6, now()),"
        " CASE WHEN $7::int = 0 THEN NULL ELSE coalesce($6, now()) + make_interval(months => $7::int) END, $8)",
        tenant, uuid7(), customer, points, points, at, program.expiry_months, order_id)


async def retier(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID, program: Program,
                 now: datetime | None = None) -> str:
    """Recompute the customer's rolling 12-month spend and tier from loyalty_spend; the tier's name."""
    at = now or datetime.now(UTC)
    spend = int(await conn.fetchval(
        "SELECT coalesce(sum(spend_minor), 0) FROM loyalty_spend WHERE tenant = $1 AND customer = $2"
        " AND at > $3::timestamptz - interval '12 months'", tenant, customer, at))
    tier = program.tier_for(spend)
    await conn.execute("UPDATE loyalty_accounts SET spend_12m_minor = $3, tier = $4, multiplier_ppm = $5,"
                       " tier_checked_at = $6 WHERE tenant = $1 AND customer = $2",
                       tenant, customer, spend, tier.name, tier.multiplier_ppm, at)
    return tier.name


async def summary(conn: asyncpg.Connection, tenant: str, customer: str | uuid.UUID) -> dict[str, Any]:
    """What the 360 view and the till show: {points, tier, multiplier_ppm, spend_12m_minor, next_tier,
    expiring: [{points, expires_at}]} (expiring within the program's notice days, soonest first); a customer
    without an account has zeros and the first tier."""
    program = await programs.load(conn, tenant)
    customer_id = customer if isinstance(customer, uuid.UUID) else uuid.UUID(str(customer))
    row = await conn.fetchrow("SELECT balance, tier, multiplier_ppm, spend_12m_minor FROM loyalty_accounts"
                              " WHERE tenant = $1 AND customer = $2", tenant, customer_id)
    first = program.tiers[0]
    points, tier, multiplier, spend = (row["balance"], row["tier"], row["multiplier_ppm"], row["spend_12m_minor"]) \
        if row else (0, first.name, first.multiplier_ppm, 0)
    expiring = await conn.fetch(
        "SELECT sum(remaining) AS points, expires_at FROM loyalty_lots WHERE tenant = $1 AND customer = $2"
        " AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= now() + make_interval(days => $3::int)"
        " GROUP BY expires_at ORDER BY expires_at", tenant, customer_id, program.notice_days) if row else []
    upcoming = program.next_tier(int(spend))
    return {"points": int(points), "tier": tier, "multiplier_ppm": int(multiplier), "spend_12m_minor": int(spend),
            "next_tier": None if upcoming is None else {
                "name": upcoming.name, "min_spend_minor": upcoming.min_spend_minor,
                "spend_to_go_minor": upcoming.min_spend_minor - int(spend)},
            "expiring": [{"points": int(lot["points"]), "expires_at": lot["expires_at"].isoformat()}
                         for lot in expiring]}


async def ledger(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID, *, limit: int = 100,
                 before: datetime | None = None) -> list[dict[str, Any]]:
    """The account's ledger entries, newest first (a page of `limit` before `before`)."""
    rows = await conn.fetch(
        "SELECT key, kind, points, balance, order_id, store, actor, reason, at FROM loyalty_ledger"
        " WHERE tenant = $1 AND customer = $2 AND ($3::timestamptz IS NULL OR at < $3) ORDER BY at DESC, id DESC"
        " LIMIT $4", tenant, customer, before, limit)
    return [{"key": row["key"], "kind": row["kind"], "points": int(row["points"]), "balance": int(row["balance"]),
             "order": None if row["order_id"] is None else str(row["order_id"]), "store": row["store"],
             "actor": row["actor"], "reason": row["reason"], "at": row["at"].isoformat()} for row in rows]
