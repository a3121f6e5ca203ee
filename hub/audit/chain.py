"""Appending to a tenant's audit chain, and the one canonical encoding its hashes cover.

A record's hash is SHA-256(previous hash || canonical encoding), the first record's previous hash being
32 zero bytes. The canonical encoding is the record's fields, in this order, each as a netstring of its
UTF-8 bytes (`<byte length>:<bytes>,`), an absent field as `~`:

    tenant, seq (decimal), at (UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ), actor, action, store, target,
    details (PostgreSQL's jsonb text of them: keys ordered by length then bytes, ", " and ": " between)

PostgreSQL computes both the encoding and the hash inside the appending statement (`CANONICAL_SQL`), so
an append is one round trip, holds the chain's head row only for that statement's time, and is part of
the caller's transaction: the privileged action and its record commit together or not at all.
The head row's lock is also what makes a tenant's seq unique: audit_records is partitioned by month of
recorded_at (migration 0213), so its key is (tenant, seq, recorded_at) and would take one seq twice at two
times; every append takes the seq after the head's under FOR UPDATE and moves the head in the same
statement (tests/test_audit_partitions.py races writers), and verify.py names a seq missing or repeated.
`canonical` is the same encoding in Python, for verifiers outside the database and the tests that
prove the two agree.

Personal data (P2-03) never enters a hashed record: a details field named in PERSONAL ([audit] personal)
is replaced by a salted commitment "sha256:<hex>" (SHA-256 of a random 16-byte salt and the value's JSON
text), and the value with its salt goes to audit_personal in the same statement. Retention and erasure
delete from audit_personal only, so the chain verifies before and after, and a kept value can still be
proven to be the one recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

PERSONAL: frozenset[str] = frozenset({"email", "phone", "customer_name", "client"})
"""Details fields kept beside the chain; the hub sets it from [audit] personal when it starts (set_personal)."""
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


def set_personal(fields: tuple[str, ...] | frozenset[str]) -> None:
    """Which details fields are personal, from the hub's [audit] personal (one setting per process)."""
    global PERSONAL
    PERSONAL = frozenset(fields)


def commitment(salt: bytes, value_json: str) -> str:
    """What a record holds in place of a personal value: binding (the value cannot be swapped) and hiding
    (the salt keeps a short value such as a phone number from being guessed from it)."""
    return "sha256:" + hashlib.sha256(salt + value_json.encode("utf-8", "surrogatepass")).hexdigest()


def _redact(details: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[str], list[bytes]]:
    """Details with personal values replaced by commitments, and the (fields, values' JSON, salts) kept aside."""
    kept: dict[str, Any] = dict(details)
    fields, values, salts = [], [], []
    for name in sorted(PERSONAL & kept.keys()):
        if kept[name] is None:
            continue
        value_json = json.dumps(kept[name], ensure_ascii=False, separators=(",", ":"), default=str)
        salt = os.urandom(16)
        kept[name] = commitment(salt, value_json)
        fields.append(name)
        values.append(value_json)
        salts.append(salt)
    return kept, fields, values, salts


_APPEND = f"""
WITH head AS (SELECT seq, hash FROM audit_heads WHERE tenant = $1 FOR UPDATE),
rec AS (SELECT $1::text AS tenant, head.seq + 1 AS seq, coalesce($2::timestamptz, clock_timestamp()) AS at,
               $3::text AS actor, $4::text AS action, $5::text AS store, $6::text AS target, $7::jsonb AS details,
               head.hash AS prev_hash
        FROM head),
added AS (INSERT INTO audit_records (tenant, seq, at, actor, action, store, target, details, prev_hash, hash)
          SELECT tenant, seq, at, actor, action, store, target, details, prev_hash,
                 sha256(prev_hash || {CANONICAL_SQL})
          FROM rec RETURNING seq, hash, at),
kept AS (INSERT INTO audit_personal (tenant, seq, field, value, salt, at)
         SELECT $1, added.seq, p.field, p.value::jsonb, p.salt, added.at
         FROM added, unnest($8::text[], $9::text[], $10::bytea[]) AS p(field, value, salt))
UPDATE audit_heads SET seq = added.seq, hash = added.hash FROM added WHERE audit_heads.tenant = $1
RETURNING added.seq
"""


async def record(conn: asyncpg.Connection, entry: Entry) -> int:
    """Append one record to its tenant's chain, inside the caller's transaction; its sequence number.
    Concurrent appends to one tenant queue on the chain's head row; other tenants' do not wait."""
    redacted, fields, values, salts = _redact(entry.details)
    details = json.dumps(redacted, ensure_ascii=False, separators=(",", ":"), default=str)
    if len(details.encode("utf-8", "surrogatepass")) > MAX_DETAILS_BYTES:
        raise ValueError(f"an audit record's details are limited to {MAX_DETAILS_BYTES} bytes")
    args = (entry.tenant, entry.at, entry.actor, entry.action, entry.store, entry.target, details, fields, values,
            salts)
    seq = await conn.fetchval(_APPEND, *args)
    if seq is None:  # the tenant's first record: start its chain, then append
        await conn.execute("INSERT INTO audit_heads (tenant, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
                           entry.tenant, GENESIS)
        seq = await conn.fetchval(_APPEND, *args)
    return int(seq)
