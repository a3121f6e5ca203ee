"""Idempotency-Key for the console's payment changes: a request sent again (a lost answer, a double click, a
retrying script) gets the first answer instead of a second capture or refund.

The first request with a key stores its fingerprint (method, path, body, who) and, once answered, its status and
body, for KEPT. The same key with the same fingerprint answers what was stored; with another fingerprint, or while
the first is still being answered, it is a Conflict (409); a first request left unanswered (its hub died) is run
again after ABANDONED. An answer of the hub's trouble (5xx) or a failure is not
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
ABANDONED = timedelta(minutes=5)
"""A first request unanswered this long died with its hub: the same request again runs it (the service's own
checks, and refund keys derived from the Idempotency-Key, keep that from doing anything twice)."""

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
    kept = await _claim(pool, tenant, key, request)
    if kept is not None:
        return kept
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


async def _claim(pool: asyncpg.Pool, tenant: str, key: str, request: bytes) -> Answer | None:
    """None: this request is the key's to answer (its row is written); else the kept answer. Conflict when the key
    is another request's, or its first request is still being answered."""
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM payment_idempotency WHERE tenant = $1 AND key = $2"
                           " AND created_at < now() - $3::interval", tenant, key, KEPT)
        while not await conn.fetchval("INSERT INTO payment_idempotency (tenant, key, request_hash) VALUES ($1, $2, $3)"
                                      " ON CONFLICT DO NOTHING RETURNING true", tenant, key, request):
            row = await conn.fetchrow("SELECT request_hash, status, body FROM payment_idempotency WHERE tenant = $1"
                                      " AND key = $2", tenant, key)
            if row is None:  # deleted meanwhile (expired): try to be first again
                continue
            if bytes(row["request_hash"]) != request:
                raise Conflict("this Idempotency-Key was used for a different request: use a new key for a new request")
            if row["status"] is not None:
                return int(row["status"]), json.loads(row["body"])
            if not await conn.fetchval(
                    "UPDATE payment_idempotency SET created_at = now() WHERE tenant = $1 AND key = $2 AND status IS NULL"
                    " AND created_at < now() - $3::interval RETURNING true", tenant, key, ABANDONED):
                raise Conflict("a request with this Idempotency-Key is still being answered: ask again shortly")
            break
    return None


async def _forget(pool: asyncpg.Pool, tenant: str, key: str) -> None:
    await pool.execute("DELETE FROM payment_idempotency WHERE tenant = $1 AND key = $2", tenant, key)


async def purge(pool: asyncpg.Pool) -> int:
    """Delete keys older than KEPT; how many (the watchdog's housekeeping)."""
    return int(await pool.fetchval("WITH gone AS (DELETE FROM payment_idempotency WHERE created_at < now() - $1::interval"
                                   " RETURNING 1) SELECT count(*) FROM gone", KEPT))
