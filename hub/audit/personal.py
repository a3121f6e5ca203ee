"""Erasing a person's values from the audit log's side table (P2-03), leaving every record as it was.

A record holds only a salted commitment to a personal value, so deleting the value from audit_personal
erases it for good (the commitment cannot be turned back into it) while the chain still verifies. The
erasure itself is recorded (how many values, which fields; never the value).
"""

from __future__ import annotations

import json

import asyncpg

from hub.audit.chain import Entry, record
from hub.audit.services import PERSONAL_PURGED


async def erase(pool: asyncpg.Pool, tenant: str, value: str, actor: str) -> int:
    """Delete every kept personal value of `tenant` equal to `value` (any field); how many. Audited."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch("DELETE FROM audit_personal WHERE tenant = $1 AND value = $2::jsonb RETURNING field",
                                tenant, json.dumps(value, ensure_ascii=False))
        fields = sorted({row["field"] for row in rows})
        await record(conn, Entry(tenant, actor, "audit.personal_erased",
                                 details={"values": len(rows), "fields": ",".join(fields)}))
    if rows:
        PERSONAL_PURGED.labels("erasure").inc(len(rows))
    return len(rows)
