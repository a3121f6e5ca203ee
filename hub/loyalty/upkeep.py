"""The loyalty jobs, each run by one hub process at a time (hub.leases): expiry (each lot whose time has come loses what is left of it,
one ledger entry per lot, keyed by the lot so two hub processes expire it once) and the daily tier recomputation
(a customer's rolling 12-month spend falls as old sales leave the window, with no sale to trigger it).

The tier recomputation takes a batch with SKIP LOCKED, so N hub processes share the work; expiry takes the due lots
without it (two processes may pick the same lot: the second finds it emptied under the account's lock and its
ledger key taken, and leaves it). Both run again at once after a full batch."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from hub.console.context import Console
from hub.loyalty import accounts
from hub.loyalty import program as programs
from hub.loyalty.metrics import EXPIRED, posted
from hub.repeating import repeat
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 60.0
RETIER_EVERY_S = 300.0
BATCH = 200
SYSTEM = "hub:loyalty"


async def expire_due(pool: asyncpg.Pool, now: datetime | None = None, batch: int = BATCH) -> int:
    """Expire up to `batch` due lots; how many."""
    at = now or datetime.now(UTC)
    done = 0
    async with pool.acquire() as conn:
        due = await conn.fetch("SELECT tenant, id, customer FROM loyalty_lots WHERE remaining > 0 AND expires_at <= $1"
                               " ORDER BY expires_at LIMIT $2", at, batch)
        for lot in due:
            async with conn.transaction():
                # the account first, then its lot: the order every balance change takes (accounts.post)
                before = await conn.fetchval("SELECT balance FROM loyalty_accounts WHERE tenant = $1 AND"
                                             " customer = $2 FOR UPDATE", lot["tenant"], lot["customer"])
                left = await conn.fetchval("SELECT remaining FROM loyalty_lots WHERE tenant = $1 AND id = $2",
                                           lot["tenant"], lot["id"])
                if not left:
                    continue  # another process expired it, or a redemption took it meanwhile
                await conn.execute("UPDATE loyalty_lots SET remaining = 0 WHERE tenant = $1 AND id = $2",
                                   lot["tenant"], lot["id"])
                await conn.execute("UPDATE loyalty_accounts SET balance = balance - $3, updated_at = now() WHERE"
                                   " tenant = $1 AND customer = $2", lot["tenant"], lot["customer"], left)
                await conn.execute(accounts.LEDGER, lot["tenant"], uuid7(), lot["customer"], f"expire:{lot['id']}",
                                   "expire", -left, before - left, None, None, SYSTEM, "points expired", at)
            done += 1
            EXPIRED.inc()
            posted("expire", -left)
    if done:
        log.info("loyalty: expired %d lot(s)", done)
    return done


async def retier_due(pool: asyncpg.Pool, now: datetime | None = None, batch: int = BATCH) -> int:
    """Recompute the tier of up to `batch` accounts not checked for a day; how many."""
    at = now or datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        due = await conn.fetch("SELECT tenant, customer FROM loyalty_accounts WHERE tier_checked_at <="
                               " $1::timestamptz - interval '1 day' ORDER BY tier_checked_at LIMIT $2"
                               " FOR UPDATE SKIP LOCKED", at, batch)
        loaded: dict[str, programs.Program] = {}
        for row in due:
            if row["tenant"] not in loaded:
                loaded[row["tenant"]] = await programs.load(conn, row["tenant"])
            await accounts.retier(conn, row["tenant"], row["customer"], loaded[row["tenant"]], at)
    return len(due)


async def expire_points(console: Console) -> None:
    """Service: expire due lots every EXPIRE_EVERY_S."""
    pool = console.ready_pool()
    await repeat("expiring loyalty points", lambda: console.seam.run(expire_due, pool), EXPIRE_EVERY_S, BATCH)


async def recompute_tiers(console: Console) -> None:
    """Service: recompute the tiers of accounts not checked for a day."""
    pool = console.ready_pool()
    await repeat("recomputing loyalty tiers", lambda: console.seam.run(retier_due, pool), RETIER_EVERY_S, BATCH)
