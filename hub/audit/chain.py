"""Appending to a tenant's audit chain, and the one canonical encoding its hashes cover.

A record's hash is SHA-256(previous hash || canonical encoding), the first record's previous hash being
32 zero bytes. The canonical encoding is the record's fields, in this order, each as a netstring of its
UTF-8 bytes (`<byte length>:<bytes>,`), an absent field as `~`:

    tenant, seq (decimal), at (UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ), actor, action, store, target,
    details (PostgreSQL's jsonb text of them: keys ordered by length then bytes, ", " and ": " between)

PostgreSQL computes both the encoding and the hash inside the appending statement (`CANONICAL_SQL`), so
an append is one round trip, holds the chain's head row only for that statement's time, and is part of
the caller's transaction: the privileged action and its record commit together or not at all.
`canonical` is the same encoding in Python, for verifiers outside the database and the tests that
prove the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

GENESIS = bytes(32)
"""The previous hash of a chain's first record."""
MAX_DETAILS_BYTES = 8 * 1024

_FIELDS = ("tenant", "seq::text", "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", "actor",
           "action", "store", "target", "details::text")


def _netstring_sql(expression: str) -> str:
    return f"coalesce(octet_length({expression})::text || ':' || {expression} || ',', '~')"


CANONICAL_SQL = "convert_to(" + " || ".join(map(_netstring_sql, _FIELDS)) + ", 'UTF8')"
"""The canonical encoding as a PostgreSQL bytea expression over a record's columns (unqualified names)."""


def canonical(tenant: str, seq: int, at: datetime, actor: str, action: str, store: str | None, target: str | None,
              details_text: str) -> bytes:
    """The canonical encoding in Python (details as PostgreSQL's jsonb text of them, as read back)."""
    def netstring(value: str | None) -> bytes:
        if value is None:
            return b"~"
        raw = value.encode("utf-8")
        return b"%d:%s," % (len(raw), raw)
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return b"".join(netstring(value) for value in (tenant, str(seq), stamp, actor, action, store, target,
                                                    details_text))


@dataclass(frozen=True)
class Entry:
    """One privileged action, as the code that did it describes it."""
    tenant: str
    actor: str
    action: str
    store: str | None = None
    target: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    """When it happened; None: now (the hub's clock)."""


_APPEND = f"""
WITH head AS (SELECT seq, hash FROM audit_heads WHERE tenant = $1 FOR UPDATE),
rec AS (SELECT $1::text AS tenant, head.seq + 1 AS seq, coalesce($2::timestamptz, clock_timestamp()) AS at,
               $3::text AS actor, $4::text AS action, $5::text AS store, $6::text AS target, $7::jsonb AS details,
               head.hash AS prev_hash
        FROM head),
added AS (INSERT INTO audit_records (tenant, seq, at, actor, action, store, target, details, prev_hash, hash)
          SELECT tenant, seq, at, actor, action, store, target, details, prev_hash,
                 sha256(prev_hash || {CANONICAL_SQL})
          FROM rec RETURNING seq, hash)
UPDATE audit_heads SET seq = added.seq, hash = added.hash FROM added WHERE audit_heads.tenant = $1
RETURNING added.seq
"""


async def record(conn: asyncpg.Connection, entry: Entry) -> int:
    """Append one record to its tenant's chain, inside the caller's transaction; its sequence number.
    Concurrent appends to one tenant queue on the chain's head row; other tenants' do not wait."""
    details = json.dumps(dict(entry.details), ensure_ascii=False, separators=(",", ":"), default=str)
    if len(details.encode("utf-8", "surrogatepass")) > MAX_DETAILS_BYTES:
        raise ValueError(f"an audit record's details are limited to {MAX_DETAILS_BYTES} bytes")
    args = (entry.tenant, entry.at, entry.actor, entry.action, entry.store, entry.target, details)
    seq = await conn.fetchval(_APPEND, *args)
    if seq is None:  # the tenant's first record: start its chain, then append
        await conn.execute("INSERT INTO audit_heads (tenant, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
                           entry.tenant, GENESIS)
        seq = await conn.fetchval(_APPEND, *args)
    return int(seq)
