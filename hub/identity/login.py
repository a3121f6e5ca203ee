"""Signing in and out of the console, with a lockout: [console] lock_after wrong passwords in a row lock the
login for lock_for_minutes (novapos.config.ConsoleSettings). Every sign-in, failure, lockout and sign-out is
audited. (asyncio side)"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from hub.audit.chain import Entry, record
from hub.identity.sessions import close_session, open_session
from novapos.config import ConsoleSettings


async def find_user(pool: asyncpg.Pool, login: str) -> asyncpg.Record | None:
    async with pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT id, tenant, login, password_hash, active, locked_until, locked_until > now() AS locked,"
            " ARRAY(SELECT role FROM user_roles WHERE user_id = users.id) AS roles FROM users WHERE login = $1", login)


async def succeeded(pool: asyncpg.Pool, user: asyncpg.Record, client: str,
                    settings: ConsoleSettings) -> tuple[str, str]:
    """A right password: failures forgotten, a session opened, the sign-in audited; (token, csrf)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", user["id"])
        opened = await open_session(conn, user["id"], settings)
        await record(conn, Entry(user["tenant"], user["login"], "login", details={"client": client}))
    return opened


async def failed(pool: asyncpg.Pool, user: asyncpg.Record, client: str, why: str,
                 settings: ConsoleSettings) -> datetime | None:
    """A wrong password (or a refused sign-in): counted and audited; when the login is now locked, until when."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE users u SET failed_logins = n.failures,"
            " locked_until = CASE WHEN n.failures >= $2 THEN now() + $3::interval END"
            " FROM (SELECT id, CASE WHEN locked_until <= now() THEN 1 ELSE failed_logins + 1 END AS failures"
            "       FROM users WHERE id = $1 FOR UPDATE) n"
            " WHERE u.id = n.id RETURNING u.failed_logins, u.locked_until", user["id"], settings.lock_after, settings.lock_for)
        await record(conn, Entry(user["tenant"], user["login"], "login.failed",
                                 details={"client": client, "why": why, "failures": row["failed_logins"]}))
        if row["failed_logins"] >= settings.lock_after:
            await record(conn, Entry(user["tenant"], "system", "login.locked", target=user["login"],
                                     details={"until": row["locked_until"].isoformat()}))
            return row["locked_until"]
    return None


async def refused(pool: asyncpg.Pool, user: asyncpg.Record, client: str, why: str) -> None:
    """A right password for a user who may not sign in (deactivated, no console role): audited, but not counted
    towards the lockout: nobody is guessing, and the owner would find the login locked once reactivated."""
    async with pool.acquire() as conn:
        await record(conn, Entry(user["tenant"], user["login"], "login.failed", details={"client": client, "why": why}))


async def signed_out(pool: asyncpg.Pool, token: str, tenant: str, login: str) -> None:
    await close_session(pool, token)
    async with pool.acquire() as conn:
        await record(conn, Entry(tenant, login, "logout"))
