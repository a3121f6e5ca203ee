"""The demo tenant's gift card (`make demo`): a known number with 50.00 on it, printed in the README so a person
can pay with it at the demo till. Only a demo number is ever known: a real card's is shown once, when issued.
Seeded only while the tenant has no gift card."""

from __future__ import annotations

import asyncpg

from hub.giftcards import cards

NUMBER = "6280000000000000010"
"""19 digits, Luhn-valid: 6280 0000 0000 0000 010."""
BALANCE_MINOR = 5000


async def seed_demo_gift_cards(pool: asyncpg.Pool, tenant: str) -> int:
    """(asyncio side) The demo card, when the tenant has no gift card; how many."""
    if await pool.fetchval("SELECT EXISTS (SELECT 1 FROM gift_cards WHERE tenant = $1)", tenant):
        return 0
    currency = await pool.fetchval("SELECT currency FROM tenants WHERE tenant = $1", tenant)
    await cards.issue(pool, tenant, amount_minor=BALANCE_MINOR, currency=currency.strip(), expires_at=None,
                      customer=None, actor="demo", number=NUMBER)
    return 1
