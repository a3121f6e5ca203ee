"""The demo tenant's customers (`make demo`): a few people a till can find by phone, email or card number, with
fixed ids and card numbers so that the other demo seeds (loyalty points, a gift card) and the README can name them.
Seeded only where missing: an admin's edits, or an erasure, stay."""

from __future__ import annotations

import json
import uuid

import asyncpg

DEMO_CUSTOMERS: tuple[tuple[str, str, str, str, str | None, dict[str, str]], ...] = (
    ("0190a3c4-7e1f-7b2a-9c3d-0000000000c1", "27000000000017", "Anna Schmidt", "+493012345678", "anna@example.org",
     {"milk": "oat"}),
    ("0190a3c4-7e1f-7b2a-9c3d-0000000000c2", "27000000000025", "Bo Lind", "+46701112233", "bo@example.se", {}),
    ("0190a3c4-7e1f-7b2a-9c3d-0000000000c3", "27000000000033", "Chloé Martin", "+33612345678", None,
     {"receipt": "email"}),
)
"""(id, card number, name, phone, email, preferences): Anna is tests/events.py's CUSTOMER (sale_v5_body)."""


async def seed_demo_customers(pool: asyncpg.Pool, tenant: str) -> int:
    """Insert the demo customers the tenant does not have yet; how many were added."""
    added = 0
    async with pool.acquire() as conn, conn.transaction():
        for customer, card, name, phone, email, preferences in DEMO_CUSTOMERS:
            done = await conn.execute(
                "INSERT INTO customers (tenant, id, card_number, name, phone, email, preferences, home_store,"
                " created_by) SELECT $1, $2, $3, $4, $5, $6, $7::jsonb, (SELECT min(store) FROM stores WHERE"
                " tenant = $1), 'demo' ON CONFLICT DO NOTHING", tenant, uuid.UUID(customer), card, name, phone, email,
                json.dumps(preferences))
            added += done.endswith(" 1")
    return added
