"""Signing an existing console test's client in (the console answers nobody without a session): a tenant
admin made in PostgreSQL, signed in on the test's own httpx client, which then carries the session cookie
and the CSRF header on every request."""

from __future__ import annotations

import httpx

from tests.conftest import query
from tests.identity import PASSWORD, add_user, grant


async def sign_in_admin(http: httpx.AsyncClient, hub_url: str, database_url: str, *, tenant: str = "demo",
                        login: str | None = None) -> str:
    """Make a tenant admin of `tenant` (login `admin-<tenant>` unless given; the tenant too, in EUR, when the
    test has none) and sign `http` in as them. Returns the login."""
    login = login or f"admin-{tenant}"
    await query(database_url, "INSERT INTO tenants (tenant, name, currency) VALUES ($1, $1, 'EUR')"
                              " ON CONFLICT DO NOTHING", tenant)
    await add_user(database_url, login, grant("tenant_admin"), tenant=tenant)
    answer = await http.post(f"{hub_url}/api/login", json={"login": login, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    http.headers["x-csrf-token"] = answer.json()["csrf"]
    return login
