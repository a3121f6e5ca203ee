"""Console sign-ins: opened by a good password, found by their cookie, ended by logout or expiry.

A session expires after [console] session_idle_minutes of no requests or session_absolute_minutes after
sign-in (novapos.config.ConsoleSettings), whichever is first; each request
that finds it pushes the idle deadline on. The cookie holds a random token; the table holds its SHA-256.
These run on the asyncio side of the seam (asyncpg).
"""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

from hub.identity.principal import Assignment, Principal
from novapos.config import ConsoleSettings
from novapos.roles import Role

_FIND = """
UPDATE console_sessions s SET last_seen_at = now(), expires_at = least(s.created_at + $2::interval, now() + $3::interval)
FROM users u
WHERE s.token_hash = $1 AND s.expires_at > now() AND s.created_at + $2::interval > now() AND u.id = s.user_id
  AND u.active
RETURNING u.id, u.login, u.name, u.tenant, s.csrf
"""
_ROLES = """
SELECT r.role, r.region, r.store,
       CASE WHEN r.region IS NULL THEN NULL ELSE
            (SELECT coalesce(array_agg(st.store), '{}') FROM stores st
             WHERE st.tenant = r.tenant AND st.region = r.region) END AS region_stores
FROM user_roles r WHERE r.user_id = $1 ORDER BY r.role, r.region, r.store
"""


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


async def open_session(conn: asyncpg.Connection, user_id: int, settings: ConsoleSettings) -> tuple[str, str]:
    """A new session for the user: (the cookie's token, the page's CSRF token). Expired sessions go too."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    await conn.execute("DELETE FROM console_sessions WHERE expires_at < now() - interval '1 day'")
    await conn.execute(
        "INSERT INTO console_sessions (token_hash, user_id, csrf, expires_at) VALUES ($1, $2, $3, now() + $4::interval)",
        token_hash(token), user_id, csrf, min(settings.idle, settings.absolute))
    return token, csrf


async def principal_for(pool: asyncpg.Pool, token: str, settings: ConsoleSettings) -> Principal | None:
    """The signed-in user behind a cookie's token, with their roles; None if unknown, expired or deactivated."""
    async with pool.acquire() as conn:
        found = await conn.fetchrow(_FIND, token_hash(token), settings.absolute, settings.idle)
        if found is None:
            return None
        rows = await conn.fetch(_ROLES, found["id"])
    return Principal(
        user_id=found["id"], login=found["login"], name=found["name"], tenant=found["tenant"], csrf=found["csrf"],
        assignments=tuple(Assignment(Role(row["role"]), row["region"], row["store"]) for row in rows),
        region_stores={row["region"]: frozenset(row["region_stores"]) for row in rows if row["region"] is not None})


async def close_session(pool: asyncpg.Pool, token: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM console_sessions WHERE token_hash = $1", token_hash(token))


async def close_sessions_of(conn: asyncpg.Connection, user_id: int) -> None:
    """Sign a user out everywhere (deactivated, password changed)."""
    await conn.execute("DELETE FROM console_sessions WHERE user_id = $1", user_id)
