"""The demo's loyalty: the demo tenant's customers (hub.customers' demo seed) start with points, each as an
earning lot of its own so that the console shows a ledger, the till a balance to redeem and the 360 a notice of
what expires soon. Only while the tenant has no loyalty account: a second `novapos demo` changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from hub.loyalty import accounts
from hub.loyalty import program as programs

STARTING_POINTS = ((1_200, 340), (800, 20), (2_500, 0))
"""Per customer in creation order, cycled: (points earned a year less three weeks ago, soon to expire; points
earned a month ago)."""


async def seed_demo_loyalty(pool: asyncpg.Pool, tenant: str) -> int:
    """Give the tenant's customers their starting points; how many accounts were opened."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT 1 FROM loyalty_accounts WHERE tenant = $1 LIMIT 1", tenant):
            return 0
        program = await programs.load(conn, tenant)
        customers = await conn.fetch("SELECT id FROM customers WHERE tenant = $1 AND erased_at IS NULL"
                                     " ORDER BY created_at, id LIMIT 20", tenant)
        now = datetime.now(UTC)
        for number, row in enumerate(customers):
            old, recent = STARTING_POINTS[number % len(STARTING_POINTS)]
            for points, at, key in ((old, now - timedelta(days=344), "old"), (recent, now - timedelta(days=30),
                                                                              "recent")):
                if points:
                    await accounts.post(conn, tenant, row["id"], points, kind="adjust", key=f"demo:{row['id']}:{key}",
                                        actor="hub:demo", program=program, reason="demo starting points", at=at)
        return len(customers)
