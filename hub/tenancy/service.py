"""Tenancy records in PostgreSQL: add tenants, regions, stores (with their floor and back room) and
warehouses; issue, rotate and revoke a store's NATS identity; list them.

No HTTP here: the CLI (novapos/cli/tenancy.py) and the demo call these, and a console route may later.
Every name is checked with novapos.validators before any SQL runs, and a duplicate or an unknown parent
is refused with a sentence (TenancyError) and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg

from hub.tenancy.nats_auth import StoreUser
from novapos import validators


class TenancyError(Exception):
    """A request the records refuse (a duplicate, an unknown tenant, region or store): the sentence says why."""


@dataclass(frozen=True)
class StoreRecord:
    tenant: str
    store: str
    region: str
    name: str
    status: str
    nkey_public: str | None
    credentials_issued_at: datetime | None
    leaf: bool = False
    """The store runs its own NATS leaf node (`novapos hub store leaf`): its user logs in as one, and the hub's
    events stream sources its local stream."""


def floor_location(store: str) -> str:
    """The location name of a store's shop floor (its tills sell from it)."""
    return f"{store}-floor"


def back_room_location(store: str) -> str:
    return f"{store}-back-room"


async def _tenant(conn: asyncpg.Connection, tenant: str) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT tenant, currency FROM tenants WHERE tenant = $1", tenant)
    if row is None:
        raise TenancyError(f"there is no tenant {tenant!r}: add it first (`novapos hub tenant add {tenant} ...`)")
    return row


async def _region(conn: asyncpg.Connection, tenant: str, region: str) -> None:
    await _tenant(conn, tenant)
    if await conn.fetchval("SELECT 1 FROM regions WHERE tenant = $1 AND region = $2", tenant, region) is None:
        raise TenancyError(f"tenant {tenant!r} has no region {region!r}: add it first "
                           f"(`novapos hub region add {tenant} {region} ...`)")


async def _location_free(conn: asyncpg.Connection, tenant: str, location: str) -> None:
    if await conn.fetchval("SELECT 1 FROM locations WHERE tenant = $1 AND location = $2", tenant, location):
        raise TenancyError(f"tenant {tenant!r} already has a location {location!r}: choose another name")


async def add_tenant(conn: asyncpg.Connection, tenant: str, name: str, currency: str,
                     prices_include_tax: bool = True) -> None:
    tenant = validators.token("tenant", tenant)
    name = validators.text("tenant name", name)
    currency = validators.currency("currency", currency)
    if await conn.fetchval("SELECT 1 FROM tenants WHERE tenant = $1", tenant):
        raise TenancyError(f"tenant {tenant!r} already exists")
    await conn.execute("INSERT INTO tenants (tenant, name, currency, prices_include_tax) VALUES ($1, $2, $3, $4)",
                       tenant, name, currency, prices_include_tax)


async def add_region(conn: asyncpg.Connection, tenant: str, region: str, name: str) -> None:
    tenant, region = validators.token("tenant", tenant), validators.token("region", region)
    name = validators.text("region name", name)
    await _tenant(conn, tenant)
    if await conn.fetchval("SELECT 1 FROM regions WHERE tenant = $1 AND region = $2", tenant, region):
        raise TenancyError(f"tenant {tenant!r} already has a region {region!r}")
    await conn.execute("INSERT INTO regions (tenant, region, name) VALUES ($1, $2, $3)", tenant, region, name)


RESERVED_STORE_NAMES = frozenset({"hub"})
"""Subject tokens the hub's own messages use where a store's name goes (novapos.<tenant>.hub.stock_low)."""


async def add_store(conn: asyncpg.Connection, tenant: str, store: str, region: str, name: str,
                    nkey_public: str) -> str:
    """Record a store with its NATS public key, its shop floor and its back room; returns the tenant's
    currency (the store's config needs it). Run it in a transaction: all of it lands or none."""
    tenant, store = validators.token("tenant", tenant), validators.token("store", store)
    region, name = validators.token("region", region), validators.text("store name", name)
    if store in RESERVED_STORE_NAMES:
        raise TenancyError(f"{store!r} cannot name a store: the hub publishes under novapos.<tenant>.{store} itself; "
                           "choose another name")
    await _region(conn, tenant, region)
    if await conn.fetchval("SELECT 1 FROM stores WHERE tenant = $1 AND store = $2", tenant, store):
        raise TenancyError(f"tenant {tenant!r} already has a store {store!r} (rotate its credentials with "
                           f"`novapos hub store rotate {tenant} {store}`)")
    for location in (floor_location(store), back_room_location(store)):
        await _location_free(conn, tenant, location)
    await conn.execute(
        "INSERT INTO stores (tenant, store, region, name, nkey_public, credentials_issued_at)"
        " VALUES ($1, $2, $3, $4, $5, now())", tenant, store, region, name, nkey_public)
    await conn.executemany(
        "INSERT INTO locations (tenant, location, kind, store, region, name) VALUES ($1, $2, $3, $4, $5, $6)",
        [(tenant, floor_location(store), "floor", store, region, f"{name}: shop floor"),
         (tenant, back_room_location(store), "back_room", store, region, f"{name}: back room")])
    currency: str = (await _tenant(conn, tenant))["currency"]
    return currency


async def add_warehouse(conn: asyncpg.Connection, tenant: str, location: str, region: str, name: str) -> None:
    """A stock location with no store and no tills."""
    tenant, location = validators.token("tenant", tenant), validators.token("location", location)
    region, name = validators.token("region", region), validators.text("warehouse name", name)
    await _region(conn, tenant, region)
    await _location_free(conn, tenant, location)
    await conn.execute("INSERT INTO locations (tenant, location, kind, store, region, name)"
                       " VALUES ($1, $2, 'warehouse', NULL, $3, $4)", tenant, location, region, name)


async def store(conn: asyncpg.Connection, tenant: str, store: str) -> StoreRecord:
    tenant, store = validators.token("tenant", tenant), validators.token("store", store)
    row = await conn.fetchrow("SELECT tenant, store, region, name, status, nkey_public, credentials_issued_at, leaf"
                              " FROM stores WHERE tenant = $1 AND store = $2", tenant, store)
    if row is None:
        raise TenancyError(f"tenant {tenant!r} has no store {store!r} (see `novapos hub store list {tenant}`)")
    return StoreRecord(**dict(row))


async def rotate(conn: asyncpg.Connection, tenant: str, store_name: str, nkey_public: str) -> StoreRecord:
    """Give a store a new public key: the old seed stops working at the next authorization reload. A revoked
    store is reinstated by this (new credentials are how a store comes back)."""
    record = await store(conn, tenant, store_name)
    await conn.execute("UPDATE stores SET nkey_public = $3, status = 'active', credentials_issued_at = now()"
                       " WHERE tenant = $1 AND store = $2", record.tenant, record.store, nkey_public)
    return await store(conn, tenant, store_name)


async def revoke(conn: asyncpg.Connection, tenant: str, store_name: str) -> StoreRecord:
    """The store keeps its record (its sales stay attributable) but loses its NATS user."""
    record = await store(conn, tenant, store_name)
    if record.status == "revoked":
        raise TenancyError(f"store {tenant}/{store_name} is already revoked")
    await conn.execute("UPDATE stores SET status = 'revoked', nkey_public = NULL WHERE tenant = $1 AND store = $2",
                       record.tenant, record.store)
    return await store(conn, tenant, store_name)


async def set_leaf(conn: asyncpg.Connection, tenant: str, store_name: str, leaf: bool) -> StoreRecord | None:
    """Flag the store as running its own NATS leaf node, or not: its record after, None if it already was so (two
    commands at once change it once)."""
    record = await store(conn, tenant, store_name)
    changed = await conn.execute("UPDATE stores SET leaf = $3 WHERE tenant = $1 AND store = $2 AND leaf <> $3",
                                 record.tenant, record.store, leaf)
    return replace(record, leaf=leaf) if changed == "UPDATE 1" else None


async def leaf_stores(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(tenant, store) of every store flagged as running a leaf node, revoked or not (a revoked store's leaf may
    still hold sales the hub has not sourced)."""
    rows = await conn.fetch("SELECT tenant, store FROM stores WHERE leaf ORDER BY tenant, store")
    return [(row["tenant"], row["store"]) for row in rows]


async def stores(conn: asyncpg.Connection, tenant: str | None = None) -> list[StoreRecord]:
    if tenant is not None:
        validators.token("tenant", tenant)
    rows = await conn.fetch(
        "SELECT tenant, store, region, name, status, nkey_public, credentials_issued_at, leaf FROM stores"
        " WHERE $1::text IS NULL OR tenant = $1 ORDER BY tenant, store", tenant)
    return [StoreRecord(**dict(row)) for row in rows]


async def active_users(conn: asyncpg.Connection) -> list[StoreUser]:
    """Every store that may connect: the users of the generated NATS authorization."""
    rows = await conn.fetch("SELECT tenant, store, nkey_public, leaf FROM stores"
                            " WHERE status = 'active' AND nkey_public IS NOT NULL ORDER BY tenant, store")
    return [StoreUser(row["tenant"], row["store"], row["nkey_public"], row["leaf"]) for row in rows]
