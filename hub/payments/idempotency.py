"""Idempotency-Key for the console's payment changes: a request sent again (a lost answer, a double click, a
retrying script) gets the first answer instead of a second capture or refund.

The first request with a key stores its fingerprint (method, path, body, who) and, once answered, its status and
body, for KEPT. The same key with the same fingerprint answers what was stored; with another fingerprint, or while
the first is still being answered, it is a Conflict (409). An answer of the hub's trouble (5xx) or a failure is not
kept: nothing was done, so the same key may try again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg

from hub.payments.service import Conflict
from novapos import validators

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
KEPT = timedelta(hours=24)

Answer = tuple[int, dict[str, Any]]


def key_of(value: str | None) -> str | None:
    """The header's key (printable ASCII, 1..255 characters), None when absent; Invalid otherwise."""
    if value is None:
        return None
    if not (0 < len(value) <= MAX_KEY_LENGTH and value.isascii() and value.isprintable()):
        raise validators.Invalid("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return value


def fingerprint(method: str, path: str, body: dict[str, Any], actor: str) -> bytes:
    return hashlib.sha256(json.dumps([method, path, body, actor], sort_keys=True, ensure_ascii=True,
                                     separators=(",", ":")).encode()).digest()


async def once(pool: asyncpg.Pool, tenant: str, key: str, request: bytes, run: Callable[[], Awaitable[Answer]]) -> Answer:
    """The first answer to (tenant, key): `run`'s, kept if it is not the hub's trouble; or the kept one."""
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM payment_idempotency WHERE tenant = $1 AND key = $2 AND created_at < now() - $3::interval",
                           tenant, key, KEPT)
        first = await conn.fetchval("INSERT INTO payment_idempotency (tenant, key, request_hash) VALUES ($1, $2, $3)"
                                    " ON CONFLICT DO NOTHING RETURNING true", tenant, key, request)
        if not first:
            row = await conn.fetchrow("SELECT request_hash, status, body FROM payment_idempotency WHERE tenant = $1"
                                      " AND key = $2", tenant, key)
            if row is None:  # expired and deleted by another request meanwhile: run as new
                return await once(pool, tenant, key, request, run)
            if bytes(row["request_hash"]) != request:
                raise Conflict("this Idempotency-Key was used for a different request: use a new key for a new request")
            if row["status"] is None:
                raise Conflict("a request with this Idempotency-Key is still being answered: ask again shortly")
            return int(row["status"]), json.loads(row["body"])
    try:
        status, body = await run()
    except BaseException:
        await _forget(pool, tenant, key)
        raise
    if status >= 500:
        await _forget(pool, tenant, key)
    else:
        await pool.execute("UPDATE payment_idempotency SET status = $3, body = $4::jsonb WHERE tenant = $1 AND key = $2",
                           tenant, key, status, json.dumps(body))
    return status, body


async def _forget(pool: asyncpg.Pool, tenant: str, key: str) -> None:
    await pool.execute("DELETE FROM payment_idempotency WHERE tenant = $1 AND key = $2", tenant, key)


async def purge(pool: asyncpg.Pool) -> int:
    """Delete keys older than KEPT; how many (the watchdog's housekeeping)."""
    return int(await pool.fetchval("WITH gone AS (DELETE FROM payment_idempotency WHERE created_at < now() - $1::interval"
                                   " RETURNING 1) SELECT count(*) FROM gone", KEPT))
