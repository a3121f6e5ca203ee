"""The demo's catalog: configs/demo-catalog.csv (the demo store's products with their barcodes, and a few
with size and colour variants) and its two tax classes, seeded into an empty catalog."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import asyncpg

from hub.catalog import service
from hub.catalog.changes import TaxClassChange
from hub.catalog.importer import Imported, import_catalog

DEMO_CATALOG = Path(str(files("configs"))) / "demo-catalog.csv"
TAX_CLASSES = (("standard", "Standard rate", 200_000), ("reduced", "Reduced rate", 55_000))
"""(class, name, rate in ppm): 20 % and 5.5 %, the same in every region of the tenant."""


async def seed_demo_catalog(pool: asyncpg.Pool, tenant: str = "demo") -> Imported | None:
    """(asyncio side) Give `tenant` (whose tenancy rows exist) the demo catalog when it has no product yet;
    None when it had one (a demo restarted keeps its catalog and what was changed in it)."""
    if await pool.fetchval("SELECT EXISTS (SELECT 1 FROM products WHERE tenant = $1)", tenant):
        return None
    regions = [row["region"] for row in await pool.fetch("SELECT region FROM regions WHERE tenant = $1", tenant)]
    for tax_class, name, rate in TAX_CLASSES:
        await service.save_tax_class(pool, tenant, TaxClassChange(tax_class, name, tuple((r, rate) for r in regions)))
    return await import_catalog(pool, tenant, DEMO_CATALOG.read_bytes())
