"""Adjustments from the console: a person with MANAGE_CUSTOMERS adds or takes points with a reason (a goodwill
gesture, a correction), audited in the same transaction (loyalty.adjusted); and the program's changes, audited
with what it was before (loyalty.program_changed). Taking more than an account holds is refused: only an offline
redemption, never a person, takes a balance below zero."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from hub.audit.chain import Entry, record
from hub.loyalty import accounts
from hub.loyalty import program as programs
from hub.loyalty.metrics import posted
from hub.loyalty.program import Program
from hub.refusals import Refused
from novapos.wire.ids import uuid7


async def adjust(pool: asyncpg.Pool, tenant: str, customer: uuid.UUID, points: int, reason: str,
                 actor: str, entry: str | None = None) -> dict[str, Any]:
    """Post the adjustment and its audit record; the account's summary after it. `entry` names the ledger entry
    (derived from the request's Idempotency-Key: posted once whatever happens to the answer); more points than the
    program's adjust_max_points either way is refused (409)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await accounts.exists(conn, tenant, customer):
            raise Refused(404, "there is no such customer")
        program = await programs.load(conn, tenant)
        await accounts.ensure(conn, tenant, customer, program)
        have = await conn.fetchval("SELECT balance FROM loyalty_accounts WHERE tenant = $1 AND customer = $2"
                                   " FOR UPDATE", tenant, customer)
        if abs(points) > program.adjust_max_points:
            raise Refused(409, f"one adjustment adds or takes at most {program.adjust_max_points} points (the"
                               " program's adjust_max_points)")
        if points < 0 and have + points < 0:
            raise Refused(409, f"the account has {have} points: {-points} cannot be taken")
        key = f"adjust:{entry or uuid7()}"
        if await conn.fetchval("SELECT 1 FROM loyalty_ledger WHERE tenant = $1 AND key = $2", tenant, key):
            return await accounts.summary(conn, tenant, customer)  # made already (its first answer was lost)
        balance = await accounts.post(conn, tenant, customer, points, kind="adjust", key=key, actor=actor,
                                      program=program, reason=reason)
        await record(conn, Entry(tenant, actor, "loyalty.adjusted", target=str(customer),
                                 details={"points": points, "reason": reason, "balance": balance, "entry": key}))
        summary = await accounts.summary(conn, tenant, customer)
    posted("adjust", points)
    return summary


async def change_program(pool: asyncpg.Pool, tenant: str, new: Program, actor: str) -> Program:
    """Save the program, audited with what it was; new tiers make every account's tier due for recomputation
    (earning already uses the new tiers at once: hub.loyalty.sales takes the multiplier from today's program)."""
    async with pool.acquire() as conn, conn.transaction():
        before = await programs.load(conn, tenant)
        await programs.save(conn, tenant, new, actor)
        if before.tiers != new.tiers:  # every account's tier is due again (the recompute_tiers service, in batches)
            await conn.execute("UPDATE loyalty_accounts SET tier_checked_at = '-infinity' WHERE tenant = $1", tenant)
        await record(conn, Entry(tenant, actor, "loyalty.program_changed",
                                 details={"before": before.to_json(), "after": new.to_json()}))
    return new
