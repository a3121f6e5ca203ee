"""Users for tests: made straight in PostgreSQL (`add_user`), and console clients signed in as them
(`signed_in`), which send the session's CSRF token on every change as the console page does."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import trio

from hub.identity.users import Grant, create_user
from novapos.passwords import make_verifier
from novapos.roles import Role

PASSWORD = "correct horse battery"
PIN = "4711"
_VERIFIERS: dict[str, str] = {}


def _verifier(secret: str) -> str:
    """Verifiers are slow on purpose; tests reuse one per secret (each still has its own salt once)."""
    if secret not in _VERIFIERS:
        _VERIFIERS[secret] = make_verifier(secret)
    return _VERIFIERS[secret]


def grant(role: str, where: str | None = None) -> Grant:
    """("tenant_admin"), ("regional_admin", "north"), ("cashier", "store-001")..."""
    kind = Role(role)
    if kind is Role.TENANT_ADMIN:
        return Grant(kind)
    return Grant(kind, region=where) if kind is Role.REGIONAL_ADMIN else Grant(kind, store=where)


async def add_user(database_url: str, login: str, *grants: Grant, tenant: str = "demo", password: str | None = PASSWORD,
                   pin: str | None = None, name: str | None = None) -> int:
    password_hash = await trio.to_thread.run_sync(_verifier, password) if password else None
    pin_verifier = await trio.to_thread.run_sync(_verifier, pin) if pin else None

    async def run() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return await create_user(conn, tenant=tenant, login=login, name=name or login.title(), actor="test",
                                     password_hash=password_hash, pin_verifier=pin_verifier, grants=grants)
        finally:
            await conn.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


@asynccontextmanager
async def signed_in(base_url: str, login: str, password: str = PASSWORD,
                    verify: ssl.SSLContext | bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """A console client signed in as `login` (the cookie kept, X-CSRF-Token sent with every request); `verify`:
    what it trusts, for an https:// console (the demo's CA)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10, verify=verify) as client:
        answer = await client.post("/api/login", json={"login": login, "password": password})
        assert answer.status_code == 200, answer.text
        client.headers["x-csrf-token"] = answer.json()["csrf"]
        yield client
