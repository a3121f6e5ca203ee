"""Points as a tender: redeemed online (points_redeem), given back on a void (points_reverse), settled when the sale
arrives (the applier of sale.completed), including redemptions a store made offline.

Online, one conditional UPDATE (balance >= points) under the account's row takes the points, so concurrent
redemptions on one account never overspend; the redemption id is the table's key and the ledger entry's, so a
repeated request answers the same and a replayed sale changes nothing. Offline, the store redeemed within its
budget and the customer's cap without asking: the hub debits the redemption once when its sale arrives, even when
that takes the balance below zero (the customer spent the same points elsewhere meanwhile); such a debit is a
correction, counted by reason, and future earnings pay it back first (hub.loyalty.accounts)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hub.loyalty import accounts
from hub.loyalty import program as programs
from hub.loyalty.metrics import CORRECTIONS, REDEMPTIONS, posted
from hub.loyalty.program import Program
from hub.refusals import Refused
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Redemption:
    redemption: str
    customer: uuid.UUID
    points: int
    till: str
    actor: str


TAKE = ("UPDATE loyalty_accounts SET balance = balance - $3, updated_at = now() WHERE tenant = $1 AND customer = $2"
        " AND balance >= $3 RETURNING balance")
"""The conditional UPDATE that never overspends: it takes the points only while the balance holds them."""
TAKE_AND_RECORD = (f"WITH taken AS ({TAKE}) INSERT INTO loyalty_ledger (tenant, id, customer, key, kind, points,"
                   " balance, store, actor) SELECT $1, $4, $2, $5, 'redeem', -$3::bigint, balance, $6, $7 FROM taken"
                   " RETURNING balance")
"""TAKE and its ledger entry in one statement: the account's row lock is held for one round trip fewer."""


def _answer(redemption: str, points: int, balance: int, program: Program) -> dict[str, Any]:
    return {"redemption": redemption, "points": points, "balance": balance,
            "value_minor": points * program.point_value_minor, "currency": program.currency}


async def redeem(conn: asyncpg.Connection, tenant: str, store: str, asked: Redemption) -> dict[str, Any]:
    """Take the points now (held until the sale arrives); the same request again answers the same."""
    async with conn.transaction():
        program = await programs.load(conn, tenant)
        added = await conn.fetchval(
            "INSERT INTO loyalty_redemptions (tenant, redemption, customer, points, state, store, till, actor)"
            " VALUES ($1, $2, $3, $4, 'held', $5, $6, $7) ON CONFLICT (tenant, redemption) DO NOTHING RETURNING 1",
            tenant, asked.redemption, asked.customer, asked.points, store, asked.till, asked.actor)
        if not added:
            return await _repeated(conn, tenant, store, asked, program)
        balance = await conn.fetchval(TAKE_AND_RECORD, tenant, asked.customer, asked.points, uuid7(),
                                      asked.redemption, store, asked.actor)
        if balance is None:  # too few points, no account yet, or no such customer (of this tenant)
            REDEMPTIONS.labels("refused", "false").inc()
            if not await accounts.exists(conn, tenant, asked.customer):
                raise Refused(404, "there is no such customer")
            have = await conn.fetchval("SELECT balance FROM loyalty_accounts WHERE tenant = $1 AND customer = $2",
                                       tenant, asked.customer) or 0
            raise Refused(409, f"the customer has {have} points, fewer than the {asked.points} asked")
        await conn.execute(accounts.CONSUME_OLDEST, tenant, asked.customer, asked.points, None, asked.redemption)
    REDEMPTIONS.labels("taken", "false").inc()
    posted("redeem", -asked.points)
    return _answer(asked.redemption, asked.points, int(balance), program)


async def _repeated(conn: asyncpg.Connection, tenant: str, store: str, asked: Redemption,
                    program: Program) -> dict[str, Any]:
    """The same request again (a lost answer) answers the same; anything else under a used id is refused."""
    row = await conn.fetchrow("SELECT customer, points, state, store FROM loyalty_redemptions WHERE tenant = $1 AND"
                              " redemption = $2", tenant, asked.redemption)
    if row["state"] == "reversed":
        raise Refused(409, f"redemption {asked.redemption} was reversed: start a new one")
    if row["state"] == "used":
        raise Refused(409, f"redemption {asked.redemption} already paid for a sale: start a new one")
    if row["store"] != store or (row["customer"], row["points"]) != (asked.customer, asked.points):
        raise Refused(409, f"redemption {asked.redemption} was made for other points: start a new one")
    REDEMPTIONS.labels("repeated", "false").inc()
    balance = await conn.fetchval("SELECT balance FROM loyalty_accounts WHERE tenant = $1 AND customer = $2",
                                  tenant, asked.customer)
    return _answer(asked.redemption, asked.points, int(balance), program)


async def reverse(conn: asyncpg.Connection, tenant: str, store: str, redemption: str, actor: str,
                  reason: str | None) -> dict[str, Any]:
    """Give back a held redemption (its sale was voided); again is the same. A redemption the hub never saw is
    recorded reversed (nothing to give back) so that a late points_redeem under its id cannot take points."""
    async with conn.transaction():
        row = await conn.fetchrow("SELECT customer, points, state, store FROM loyalty_redemptions WHERE tenant = $1"
                                  " AND redemption = $2 FOR UPDATE", tenant, redemption)
        if row is None:
            await conn.execute("INSERT INTO loyalty_redemptions (tenant, redemption, points, state, store, actor)"
                               " VALUES ($1, $2, 0, 'reversed', $3, $4) ON CONFLICT DO NOTHING",
                               tenant, redemption, store, actor)
            return {"redemption": redemption, "reversed": True}
        if row["store"] != store:
            raise Refused(404, f"there is no redemption {redemption} at this store")
        if row["state"] == "used":
            raise Refused(409, f"redemption {redemption} is part of a completed sale: refund it with a return")
        if row["state"] == "held":
            program = await programs.load(conn, tenant)
            await accounts.post(conn, tenant, row["customer"], int(row["points"]), kind="redeem_reversed",
                                key=f"reversed:{redemption}", actor=actor, program=program, store=store,
                                reason=reason, restore=[redemption])
            await conn.execute("UPDATE loyalty_redemptions SET state = 'reversed', updated_at = now() WHERE"
                               " tenant = $1 AND redemption = $2", tenant, redemption)
            posted("redeem_reversed", int(row["points"]))
    return {"redemption": redemption, "reversed": True}


async def settle(conn: asyncpg.Connection, tenant: str, store: str, order_id: uuid.UUID, customer: uuid.UUID,
                 tender: dict[str, Any], program: Program, actor: str, *, amount_minor: int,
                 sold_at: datetime) -> None:
    """A sale's points tender: an online redemption becomes used; an offline one (or one the hub had reversed or
    never saw, or one another sale used already) is debited once, by its redemption id (and the sale, for a reused
    one), whatever the balance. The hub checks what the till enforced and counts, never refuses (the store has
    sold): a debit below zero, an amount that is not points x the point value, an offline redemption over the
    customer's cap or the store's budget. Each is a correction, counted by reason and logged (ids only)."""
    redemption, points, offline = tender["redemption"], int(tender["points"]), bool(tender["offline"])
    reasons = []
    if amount_minor != points * program.point_value_minor:
        reasons.append("value_differs")
    row = await conn.fetchrow("SELECT customer, points, state, order_id FROM loyalty_redemptions WHERE tenant = $1"
                              " AND redemption = $2 FOR UPDATE", tenant, redemption)
    if row is not None and row["state"] == "used" and row["order_id"] == order_id:
        return  # settled by this sale already: a replay, counted once
    if row is not None and row["state"] == "held" and (row["customer"], row["points"]) == (customer, points):
        await conn.execute("UPDATE loyalty_redemptions SET state = 'used', order_id = $3, sold_at = $4,"
                           " updated_at = now() WHERE tenant = $1 AND redemption = $2",
                           tenant, redemption, order_id, sold_at)
        _count(reasons, redemption, points, None)
        return
    key = redemption
    if row is None:
        await conn.execute(
            "INSERT INTO loyalty_redemptions (tenant, redemption, customer, points, state, offline, store, order_id,"
            " actor, sold_at) VALUES ($1, $2, $3, $4, 'used', $5, $6, $7, $8, $9)",
            tenant, redemption, customer, points, offline, store, order_id, actor, sold_at)
        if offline:
            reasons += await _over_offline_limits(conn, tenant, store, customer, sold_at, program)
        else:
            reasons.append("unknown_redemption")
    elif row["state"] == "used":  # another sale paid with it already: this one is debited too
        key = f"sold:{redemption}:{order_id}"
        reasons.append("reused_redemption")
    else:  # reversed by a void (or held for other points) yet sold: the sale is the truth
        if row["state"] == "held":
            await accounts.post(conn, tenant, row["customer"], int(row["points"]), kind="redeem_reversed",
                                key=f"reversed:{redemption}", actor=actor, program=program, store=store,
                                reason="the sale used other points than were held", restore=[redemption])
        await conn.execute("UPDATE loyalty_redemptions SET state = 'used', customer = $3, points = $4, order_id = $5,"
                           " sold_at = $6, updated_at = now() WHERE tenant = $1 AND redemption = $2",
                           tenant, redemption, customer, points, order_id, sold_at)
        key = f"sold:{redemption}"
        reasons.append("reversed_then_sold" if row["state"] == "reversed" else "held_differs")
    balance = await accounts.post(conn, tenant, customer, -points, kind="redeem", key=key, actor=actor,
                                  program=program, order_id=order_id, store=store,
                                  reason="redeemed offline" if offline else (reasons[-1] if reasons else None))
    if balance is None:
        return
    posted("redeem", -points)
    REDEMPTIONS.labels("taken", str(offline).lower()).inc()
    _count(reasons, redemption, points, balance)


def _count(reasons: list[str], redemption: str, points: int, balance: int | None) -> None:
    if balance is not None and balance < 0 and not set(reasons) & {"unknown_redemption", "reused_redemption",
                                                                   "reversed_then_sold", "held_differs"}:
        reasons.append("offline_overspend")
    for reason in reasons:
        CORRECTIONS.labels(reason).inc()
        log.info("loyalty correction %s: redemption %s of %d points, balance now %s", reason, redemption, points,
                 balance)


async def _over_offline_limits(conn: asyncpg.Connection, tenant: str, store: str, customer: uuid.UUID,
                               sold_at: datetime, program: Program) -> list[str]:
    """Whether the store, when it made this sale, had redeemed offline more than its budget, or more than the cap
    for this customer: the points redeemed offline at the store by then that the hub had not yet received (each
    redemption's row is written when its sale arrives), this one included. The till enforces both; the hub
    counts a breach (reasons over_budget, over_cap)."""
    row = await conn.fetchrow(
        "SELECT coalesce(sum(points), 0) AS store, coalesce(sum(points) FILTER (WHERE customer = $3), 0) AS customer"
        " FROM loyalty_redemptions WHERE tenant = $1 AND store = $2 AND offline AND created_at >= $4"
        " AND sold_at <= $4", tenant, store, customer, sold_at)
    return [reason for reason, used, limit in (
        ("over_budget", row["store"], program.offline_store_budget_points),
        ("over_cap", row["customer"], program.offline_customer_cap_points)) if used > limit]
