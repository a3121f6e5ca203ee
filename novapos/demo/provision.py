"""The demo's tenancy, provisioned through the hub's records as an operator would: tenant demo, region
north, store store-001 with its NKEY, and the NATS authorization generated from them; and the tenant's
catalog (configs/demo-catalog.csv), which the hub publishes and the store syncs and sells from.

Its people (demo-only secrets, printed in the README and the demo's banner; DEMO_USERS): `admin`, the
tenant admin; `north`, the regional admin of region north; `manager`, the store manager of store-001 (a console
password, and till PIN 1357 for logins and overrides); `cashier`, a cashier of store-001 with till PIN 2580 and
no console password.

Idempotent: a second `novapos demo` on the same state folder keeps the records and the store's seed when
they still match (a seed whose public key is not the store's, or a revoked store, gets new credentials).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from hub.catalog.demo import seed_demo_catalog
from hub.coupons.demo import seed_demo_coupons
from hub.customers.demo import seed_demo_customers
from hub.db import close_pool, create_pool, migrate
from hub.giftcards import numbers
from hub.giftcards.demo import seed_demo_gift_cards
from hub.identity.users import Grant, create_user
from hub.loyalty.demo import seed_demo_loyalty
from hub.promotions.demo import seed_demo_promotions
from hub.tenancy import service
from hub.tenancy.credentials import new_seed, public_key, read_seed, write_seed
from hub.tenancy.nats_auth import authorization, write_atomically
from novapos.passwords import make_verifier
from novapos.roles import Role

log = logging.getLogger(__name__)

TENANT, REGION, STORE = "demo", "north", "store-001"


@dataclass(frozen=True)
class DemoUser:
    login: str
    name: str
    grant: Grant
    password: str | None
    pin: str | None = None


DEMO_USERS = (
    DemoUser("admin", "Ada Admin", Grant(Role.TENANT_ADMIN), "novapos-admin"),
    DemoUser("north", "Nora North", Grant(Role.REGIONAL_ADMIN, region=REGION), "novapos-north"),
    DemoUser("manager", "Max Manager", Grant(Role.STORE_MANAGER, store=STORE), "novapos-manager", pin="1357"),
    DemoUser("cashier", "Cleo Cashier", Grant(Role.CASHIER, store=STORE), None, pin="2580"),
)
"""The demo's people and their demo-only secrets (never use them anywhere else)."""


@dataclass(frozen=True)
class DemoCredentials:
    hub: Path
    store: Path
    authorization: Path


def _seed(path: Path) -> str:
    """The seed in `path`, made if missing or unreadable."""
    try:
        return read_seed(path)
    except (OSError, ValueError):
        seed = new_seed()
        write_seed(path, seed)
        return seed


async def _provision(pool: asyncpg.Pool, folder: Path, leaf: bool) -> DemoCredentials:
    hub_seed = _seed(folder / "hub.seed")
    store_file = folder / f"{STORE}.seed"
    store_seed = _seed(store_file)
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT 1 FROM tenants WHERE tenant = $1", TENANT):
            await service.add_tenant(conn, TENANT, "Demo chain", "EUR")
        if not await conn.fetchval("SELECT 1 FROM regions WHERE tenant = $1 AND region = $2", TENANT, REGION):
            await service.add_region(conn, TENANT, REGION, "North")
        known = {(r.tenant, r.store): r for r in await service.stores(conn, TENANT)}.get((TENANT, STORE))
        if known is None:
            await service.add_store(conn, TENANT, STORE, REGION, "Demo store 1", public_key(store_seed))
            log.info("provisioned store %s/%s with new NATS credentials", TENANT, STORE)
        elif known.status != "active" or known.nkey_public != public_key(store_seed):
            await service.rotate(conn, TENANT, STORE, public_key(store_seed))
            log.info("store %s/%s was given the demo's credentials again (they did not match its record)",
                     TENANT, STORE)
        await service.set_leaf(conn, TENANT, STORE, leaf)  # `novapos hub store leaf`, without its audit record
        users = await service.active_users(conn)
    write_atomically(folder / "authorization.conf", authorization(public_key(hub_seed), users))
    await _people(pool)
    return DemoCredentials(folder / "hub.seed", store_file, folder / "authorization.conf")


async def _people(pool: asyncpg.Pool) -> None:
    """DEMO_USERS who are missing (a login already taken is left as it is: an admin's changes stay)."""
    taken = {row["login"] for row in await pool.fetch("SELECT login FROM users WHERE login = ANY($1)",
                                                      [user.login for user in DEMO_USERS])}
    for user in DEMO_USERS:
        if user.login in taken:
            continue
        password = None if user.password is None else await asyncio.to_thread(make_verifier, user.password)
        pin = None if user.pin is None else await asyncio.to_thread(make_verifier, user.pin)
        async with pool.acquire() as conn:
            await create_user(conn, tenant=TENANT, login=user.login, name=user.name, actor="system",
                              password_hash=password, pin_verifier=pin, grants=[user.grant])
        log.info("demo user %s added (%s)", user.login, user.grant.role.value)


def provision_demo(database_url: str, folder: Path, gift_card_key: Path | None = None, *,
                   leaf: bool = False) -> DemoCredentials:
    """Records, seeds (under `folder`, mode 0600) and the authorization file, before NATS starts (with `leaf`, the
    demo store's user logs in as its leaf node: `novapos demo --leaf`). `gift_card_key`:
    the hub's [gift_cards] key_file, which the demo card's number is hashed with (the hub process reads the same
    file); without it the process's key is used as it is (tests set one)."""
    if gift_card_key is not None:
        numbers.use_key(numbers.read_key(gift_card_key))

    async def run() -> DemoCredentials:
        pool = await create_pool(database_url, max_size=2)
        try:
            await migrate(pool)
            credentials = await _provision(pool, folder, leaf)
            await seed_demo_catalog(pool, TENANT)  # only while the tenant has no products: an admin's edits stay
            await seed_demo_customers(pool, TENANT)
            await seed_demo_promotions(pool, TENANT)  # categories and promotions, while it has none
            await seed_demo_loyalty(pool, TENANT)  # after the demo customers: their starting points, once
            await seed_demo_coupons(pool, TENANT)  # the welcome promotion's codes, while it has none
            await seed_demo_gift_cards(pool, TENANT)  # the README's gift card, while it has none
            return credentials
        finally:
            await close_pool(pool)
    return asyncio.run(run())
