"""Loyalty accounts and their ledger: the one place a balance changes.

Every change is a ledger entry (signed points, a key unique in the tenant so a replay changes nothing twice) and
the account's balance, written in the same transaction under the account's row lock. Credits are lots with an
expiry; debits take from the oldest lots first. The invariant, kept by `post`: the open lots hold
greatest(balance, 0) points, so a negative balance (an offline redemption of points spent elsewhere meanwhile) is
paid back by the next credits before they become spendable lots.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.loyalty import program as programs
from hub.loyalty.program import Program
from novapos.wire.ids import uuid7

ENSURE = ("INSERT INTO loyalty_accounts (tenant, customer, tier, multiplier_ppm) VALUES ($1, $2, $3, $4)"
          " ON CONFLICT (tenant, customer) DO NOTHING")

CONSUME_OLDEST = """
WITH open AS (SELECT id, remaining, sum(remaining) OVER (ORDER BY earned_at, id) - remaining AS before
              FROM loyalty_lots WHERE tenant = $1 AND customer = $2 AND remaining > 0)
UPDATE loyalty_lots l SET remaining = l.remaining - least(o.remaining, $3 - o.before)
FROM open o WHERE l.tenant = $1 AND l.id = o.id AND o.before < $3
"""
"""Take $3 points from the customer's open lots, oldest first (the caller holds the account's row lock)."""

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
               reason: str | None = None, at: datetime | None = None) -> int | None:
    """Add (points > 0: a lot expiring after the program's months) or take (points < 0: from the oldest lots)
    points, with its ledger entry; the balance after it, or None when `key` was posted before (nothing changes).
    A debit may take the balance below zero: the caller decides whether it may (redemption.redeem may not)."""
    await ensure(conn, tenant, customer, program)
    before = await conn.fetchval("SELECT balance FROM loyalty_accounts WHERE tenant = $1 AND customer = $2"
                                 " FOR UPDATE", tenant, customer)
    if await conn.fetchval("SELECT 1 FROM loyalty_ledger WHERE tenant = $1 AND key = $2", tenant, key):
        return None
    after = before + points
    await conn.execute("UPDATE loyalty_accounts SET balance = $3, updated_at = now() WHERE tenant = $1 AND"
                       " customer = $2", tenant, customer, after)
    await conn.execute(LEDGER, tenant, uuid7(), customer, key, kind, points, after, order_id, store, actor, reason,
                       at)
    if points > 0:
        await add_lot(conn, tenant, customer, points, spendable=max(0, min(points, after)), program=program,
                      order_id=order_id, at=at)
    elif before > 0:
        await conn.execute(CONSUME_OLDEST, tenant, customer, min(-points, before))
    return int(after)


async def add_lot(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID, points: int, *, spendable: int,
                  program: Program, order_id: uuid.UUID | None, at: datetime | None) -> None:
    """A lot of `points` of which `spendable` are open (the rest paid back a negative balance)."""
    await conn.execute(
        "INSERT INTO loyalty_lots (tenant, id, customer, points, remaining, earned_at, expires_at, order_id)"
        " VALUES ($1, $2, $3, $4, $5, coalesce($6, now()),"
        " CASE WHEN $7::int = 0 THEN NULL ELSE coalesce($6, now()) + make_interval(months => $7::int) END, $8)",
        tenant, uuid7(), customer, points, spendable, at, program.expiry_months, order_id)


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
