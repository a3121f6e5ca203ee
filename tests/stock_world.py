"""A small world for the stock tests: two tenants, regions, stores with floors and back rooms, a warehouse,
a catalog of a few SKUs (inserted with SQL, as tenancy and catalog would), and sales in both versions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import trio

from hub.db import create_pool, migrate
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7

WORLD_SQL = """
INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo', 'EUR'), ('other', 'Other', 'EUR');
INSERT INTO regions (tenant, region, name) VALUES ('demo', 'north', 'North'), ('demo', 'south', 'South'),
    ('other', 'west', 'West');
INSERT INTO stores (tenant, store, region, name) VALUES ('demo', 'store-001', 'north', 'One'),
    ('demo', 'store-002', 'north', 'Two'), ('demo', 'store-003', 'south', 'Three'),
    ('demo', 'store-bare', 'north', 'No locations yet'), ('other', 'o-1', 'west', 'Other one');
INSERT INTO locations (tenant, location, kind, store, region, name) VALUES
    ('demo', 's1-floor', 'floor', 'store-001', 'north', 'One: shop floor'),
    ('demo', 's1-back', 'back_room', 'store-001', 'north', 'One: back room'),
    ('demo', 's2-floor', 'floor', 'store-002', 'north', 'Two: shop floor'),
    ('demo', 'wh-north', 'warehouse', NULL, 'north', 'North warehouse'),
    ('demo', 's3-floor', 'floor', 'store-003', 'south', 'Three: shop floor'),
    ('other', 'o1-floor', 'floor', 'o-1', 'west', 'Other: shop floor');
INSERT INTO catalog_versions (tenant, version) VALUES ('demo', 1), ('other', 1);
INSERT INTO tax_classes (tenant, tax_class, name, version) VALUES ('demo', 'std', 'Standard', 1),
    ('other', 'std', 'Standard', 1);
INSERT INTO products (tenant, product, name, tax_class, version) VALUES ('demo', 'coffee', 'Coffee', 'std', 1),
    ('other', 'thing', 'Thing', 'std', 1);
INSERT INTO variants (tenant, sku, product, name, version) VALUES ('demo', 'COF-250', 'coffee', 'Coffee 250 g', 1),
    ('demo', 'COF-500', 'coffee', 'Coffee 500 g', 1), ('demo', 'COF-1K', 'coffee', 'Coffee 1 kg', 1),
    ('other', 'OTH-1', 'thing', 'Thing', 1);
"""
UNIT = 499


async def on_database(database_url: str, body: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    """Run `body` with a pool of a migrated database, on an asyncio loop of its own (the tests run on trio)."""
    async def run() -> Any:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            return await body(pool)
        finally:
            await pool.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def build_world(database_url: str) -> None:
    async def seed(pool: asyncpg.Pool) -> None:
        await pool.execute(WORLD_SQL)
    await on_database(database_url, seed)


def sale(lines: list[tuple[str, int]], *, store: str = "store-001", seq: int = 1, version: int = 1,
         tenant: str = "demo") -> Envelope:
    """A completed sale of `lines` (sku, quantity) at UNIT each; version 2 adds a price lock (tax included, 0 %)."""
    body_lines = []
    for sku, quantity in lines:
        line: dict[str, Any] = {"sku": sku, "name": sku, "quantity": quantity,
                                "unit_price": {"minor": UNIT, "currency": "EUR"},
                                "amount": {"minor": UNIT * quantity, "currency": "EUR"}}
        if version == 2:
            line |= {"catalog_version": 1, "tax": {"class": "std", "rate_ppm": 0, "included": True,
                                                   "amount": {"minor": 0, "currency": "EUR"}}}
        body_lines.append(line)
    total = {"minor": UNIT * sum(quantity for _, quantity in lines), "currency": "EUR"}
    body = {"till": "till-1", "session": "s-1", "cashier": "alice", "currency": "EUR", "lines": body_lines,
            "total": total, "tenders": [{"method": "cash", "amount": dict(total)}],
            "change": {"minor": 0, "currency": "EUR"}}
    if version == 2:
        body["tax_total"] = {"minor": 0, "currency": "EUR"}
    return Envelope(id=uuid7(), type="sale.completed", v=version, tenant=tenant, store=store, seq=seq,
                    ts=1_700_000_000_000, body=body)


LEDGER_MISMATCH_SQL = """
SELECT coalesce(b.location_id, m.location_id) AS location_id, coalesce(b.sku, m.sku) AS sku,
       b.on_hand, b.reserved, m.on_hand AS ledger_on_hand, m.reserved AS ledger_reserved
FROM stock_balances b
FULL JOIN (SELECT location_id, sku, sum(on_hand_change) AS on_hand, sum(reserved_change) AS reserved
           FROM stock_movements WHERE location_id IS NOT NULL GROUP BY location_id, sku) m
  ON (m.location_id, m.sku) = (b.location_id, b.sku)
WHERE coalesce(b.on_hand, 0) <> coalesce(m.on_hand, 0) OR coalesce(b.reserved, 0) <> coalesce(m.reserved, 0)
"""
"""Every balance that the replayed ledger does not find exactly: none, ever."""
