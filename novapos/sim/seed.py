"""The fleet's records in the hub's PostgreSQL: its tenant, region and stores (each with its shop floor, where
its stock moves), and the demo catalog (hub.catalog.demo) when the tenant has no products, which the hub then
publishes to every store. Idempotent: what exists is left as it is."""

from __future__ import annotations

import asyncpg

from novapos.sim.spec import FleetSpec


async def seed_fleet(pool: asyncpg.Pool, spec: FleetSpec) -> None:
    """(asyncio side) Call before the hub starts, on a migrated database."""
    from hub.catalog.demo import seed_demo_catalog  # here: the workers, which import this package, need no hub
    names = spec.store_names()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO tenants (tenant, name, currency) VALUES ($1, $1, 'EUR') ON CONFLICT DO NOTHING",
                           spec.tenant)
        await conn.execute("INSERT INTO regions (tenant, region, name) VALUES ($1, $2, $2) ON CONFLICT DO NOTHING",
                           spec.tenant, spec.region)
        await conn.execute("INSERT INTO stores (tenant, store, region, name) SELECT $1, s, $2, s FROM unnest($3::text[]) s"
                           " ON CONFLICT DO NOTHING", spec.tenant, spec.region, names)
        await conn.execute("INSERT INTO locations (tenant, location, kind, store, region, name)"
                           " SELECT $1, s || '-floor', 'floor', s, $2, s FROM unnest($3::text[]) s ON CONFLICT DO NOTHING",
                           spec.tenant, spec.region, names)
    await seed_demo_catalog(pool, spec.tenant)
