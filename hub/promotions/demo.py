"""The demo tenant's promotions (`make demo`): its products put in categories, and three promotions live through
the real workflow (created, simulated, submitted by `demo`; each under the approval threshold): buy 2 get 1 free
on coffee, 10 % off clothing, and a coupon promotion (5.00 off an order of 20.00 or more, public code WELCOME5;
the coupon helper makes hub codes for it too). A fourth, half price on chocolate in region north, stays a draft
for a person to simulate, submit and have approved in the console: once the live ones are in, the demo tenant's
approval threshold is set to 0, so every promotion submitted in the demo waits for a second person (`admin`
submits, `north`, the region's admin, approves). Seeded only while the tenant has no promotion: an admin's
changes stay."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import asyncpg

from hub.catalog.service import bump
from hub.promotions import records, settings, simulation, workflow

CATEGORIES = {"COF": "food/coffee", "MLK": "food/dairy/milk", "BRD": "food/bakery", "APL": "food/fruit",
              "CHO": "food/sweets", "OJ": "drinks/juice", "OIL": "food/pantry", "H2O": "drinks/water",
              "TEE": "clothing/tops", "SOCK": "clothing/socks", "TOTE": "home/bags", "NOTE": "home/stationery",
              "BAT": "home/electrical", "CUP": "home/kitchen"}
"""The demo catalog's products (configs/demo-catalog.csv) by category path."""

COFFEE, CLOTHING, WELCOME, CHOCOLATE = (uuid.UUID(f"0190a3c4-7e1f-7b2a-9c3d-0000000000f{n}") for n in (1, 3, 4, 5))
"""Fixed ids: WELCOME is the coupons' demo promotion (tests/events.py's sale_v5_body names COFFEE)."""
DEMO_PROMOTIONS: tuple[tuple[uuid.UUID, dict[str, Any], bool], ...] = (
    (COFFEE, {"name": "Coffee 3 for 2", "kind": "buy_x_get_y", "buy": 2, "get": 1, "reward_bp": 10_000, "value": 0,
              "target": {"skus": ["COF-250"]}}, True),
    (CLOTHING, {"name": "Clothing 10 % off", "kind": "percent", "value": 1000,
                "target": {"categories": ["clothing"]}, "priority": 10}, True),
    (WELCOME, {"name": "Welcome 5.00 off", "kind": "amount", "applies_to": "order", "value": 500,
               "min_spend_minor": 2000, "code_only": True, "public_codes": ["WELCOME5"], "stacking": "best"}, True),
    (CHOCOLATE, {"name": "Chocolate half price", "kind": "percent", "value": 5000,
                 "target": {"categories": ["food/sweets"]}, "regions": ["north"]}, False),
)


def _anyone(_regions: tuple[str, ...], _stores: tuple[str, ...]) -> None:
    """The demo's seed acts as the system, over the whole tenant."""


async def _categorise(pool: asyncpg.Pool, tenant: str) -> None:
    """Put the demo products without a category in theirs, as one catalog change the stores receive."""
    async with pool.acquire() as conn, conn.transaction():
        version = await bump(conn, tenant)
        products = [product for product, in await conn.fetch(
            "UPDATE products p SET category = c.category, version = $2 FROM unnest($3::text[], $4::text[])"
            " AS c(product, category) WHERE p.tenant = $1 AND p.product = c.product AND p.category IS NULL"
            " RETURNING p.product", tenant, version, list(CATEGORIES), list(CATEGORIES.values()))]
        await conn.execute("UPDATE variants SET version = $2 WHERE tenant = $1 AND product = ANY($3::text[])",
                           tenant, version, products)


async def seed_demo_promotions(pool: asyncpg.Pool, tenant: str) -> int:
    """(asyncio side) The categories and promotions above, when the tenant has no promotion yet; how many."""
    if await pool.fetchval("SELECT EXISTS (SELECT 1 FROM promotions WHERE tenant = $1)", tenant):
        return 0
    await _categorise(pool, tenant)
    for promotion_id, body, live in DEMO_PROMOTIONS:
        await workflow.create(pool, tenant, body, "demo", _anyone, promotion_id)
        if live:
            async with pool.acquire() as conn:
                proposal = records.promotion_of(await records.revision_body(conn, tenant, promotion_id, 1))
                past = await simulation.history(conn, tenant, proposal)
                saved = await simulation.save(conn, tenant, proposal, past, simulation.predict(proposal, past), "demo")
            await workflow.submit(pool, tenant, promotion_id, saved["id"], "demo", _anyone)
    async with pool.acquire() as conn:
        chosen = await settings.settings(conn, tenant)
    await settings.set_settings(pool, tenant, replace(chosen, approval_threshold_minor=0), "demo")
    return len(DEMO_PROMOTIONS)
