"""A console client signed in as a tenant admin of demo, for tests of a hub with no world seeded: the
tenant's row (users belong to a tenant) and the admin are made once per database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.conftest import query
from tests.identity import add_user, grant, signed_in

DEMO_ADMIN = ("admin", "novapos-admin")
"""The demo's tenant admin and password (novapos.demo.provision's DEMO_USERS), for tests of the demo."""


@asynccontextmanager
async def demo_admin(hub_url: str, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await query(database_url, "INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo', 'EUR')"
                              " ON CONFLICT DO NOTHING")
    if not await query(database_url, "SELECT 1 FROM users WHERE login = 'demo-admin'"):
        await add_user(database_url, "demo-admin", grant("tenant_admin"))
    async with signed_in(hub_url, "demo-admin") as client:
        yield client
