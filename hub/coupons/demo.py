"""The demo tenant's coupon codes (`make demo`), for hub.promotions' demo coupon promotion "Welcome 5.00 off"
(5.00 off an order of 20.00 or more; its public code WELCOME5 works offline too): three single-use codes and one
multi-use code, once per customer, with fixed names so the README can print them. Seeded only while the tenant
has no code: an admin's changes stay."""

from __future__ import annotations

import asyncpg

from hub.coupons import issuing
from hub.promotions.demo import WELCOME

SINGLE_USE = ("DEMO-AAAA-2222", "DEMO-BBBB-3333", "DEMO-CCCC-4444")
MULTI_USE = "FRIENDS5"
"""100 uses, one per customer (a customer must be attached to the sale)."""


async def seed_demo_coupons(pool: asyncpg.Pool, tenant: str) -> int:
    """(asyncio side) The codes above, when the tenant has none and has the welcome promotion; how many."""
    if await pool.fetchval("SELECT EXISTS (SELECT 1 FROM coupon_codes WHERE tenant = $1)", tenant) or \
            not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM promotions WHERE tenant = $1 AND id = $2)",
                                    tenant, WELCOME):
        return 0
    await issuing.create_batch(pool, tenant, promotion=WELCOME, count=len(SINGLE_USE), expires_at=None,
                               per_customer=None, actor="demo", given=SINGLE_USE)
    await issuing.create_code(pool, tenant, promotion=WELCOME, code=MULTI_USE, max_uses=100, per_customer=1,
                              expires_at=None, actor="demo")
    return len(SINGLE_USE) + 1
