"""What the catalog tests share: a migrated database with tenant demo (EUR, regions north and south, stores
store-001 and store-002, tax classes standard and reduced), made with SQL as the tenancy commands would."""

from __future__ import annotations

import asyncpg

from hub.db import create_pool, migrate

TENANCY = """
INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo Retail', 'EUR');
INSERT INTO regions (tenant, region, name) VALUES ('demo', 'north', 'North'), ('demo', 'south', 'South');
INSERT INTO stores (tenant, store, region, name) VALUES ('demo', 'store-001', 'north', 'Harbour Street'),
    ('demo', 'store-002', 'south', 'Market Square');
"""


async def catalog_pool(database_url: str, *, tax_classes: bool = True) -> asyncpg.Pool:
    """(asyncio side) A pool on a migrated database holding tenant demo, and its two tax classes."""
    from hub.catalog import service
    from hub.catalog.changes import TaxClassChange
    pool = await create_pool(database_url)
    await migrate(pool)
    await pool.execute(TENANCY)
    if tax_classes:
        await service.save_tax_class(pool, "demo", TaxClassChange("standard", "Standard rate",
                                                                  (("north", 200_000), ("south", 190_000))))
        await service.save_tax_class(pool, "demo", TaxClassChange("reduced", "Reduced rate",
                                                                  (("north", 55_000), ("south", 70_000))))
    return pool


async def add_tenancy(database_url: str) -> None:
    """(asyncio side) Tenant demo's rows in a database the hub has migrated."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TENANCY)
    finally:
        await conn.close()
