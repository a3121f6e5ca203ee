"""Making and withdrawing coupon codes from the console, each change audited in its own transaction.

A batch is `count` single-use codes of one promotion (hub.coupons.codes.generate), inserted in one statement; a
code drawn twice (one chance in 2^60 per pair) is drawn again. A named code (SUMMER10) is multi-use, with
`max_uses`. Both may carry an expiry and a per-customer limit. The audit record of a batch names its promotion,
batch id and size, never its codes (they are bearer vouchers).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hub.audit.chain import Entry, record
from hub.coupons import codes
from hub.coupons.promotions import check_takes_codes
from hub.refusals import Refused

_ATTEMPTS = 5


def code_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"code": row["code"], "promotion": str(row["promotion"]),
            "batch": str(row["batch"]) if row["batch"] else None, "max_uses": row["max_uses"],
            "per_customer": row["per_customer"], "uses": row["uses"],
            "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None, "active": row["active"],
            "created_by": row["created_by"], "created_at": row["created_at"].isoformat()}


async def create_batch(pool: asyncpg.Pool, tenant: str, *, promotion: uuid.UUID, count: int,
                       expires_at: datetime | None, per_customer: int | None, actor: str,
                       given: Sequence[str] = ()) -> dict[str, Any]:
    """`count` fresh single-use codes: {batch, promotion, codes, expires_at}. `given`: these codes instead (the
    demo's, printed in its README); one taken already is left out."""
    batch = uuid.uuid4()
    made: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await check_takes_codes(conn, tenant, promotion)
        for _ in range(_ATTEMPTS):
            wanted = list(given) or list({codes.generate() for _ in range(count - len(made))})
            made += await conn.fetchval(
                "WITH made AS (INSERT INTO coupon_codes (tenant, code, promotion, batch, max_uses, per_customer,"
                " expires_at, created_by) SELECT $1, code, $2, $3, 1, $4, $5, $6 FROM unnest($7::text[]) code"
                " ON CONFLICT DO NOTHING RETURNING code) SELECT coalesce(array_agg(code), '{}') FROM made",
                tenant, promotion, batch, per_customer, expires_at, actor, wanted)
            if len(made) == count or given:
                break
        else:  # pragma: no cover: 2^60 codes
            raise RuntimeError("could not draw enough distinct coupon codes")
        await record(conn, Entry(tenant, actor, "coupon.batch_created", target=str(batch), details={
            "promotion": str(promotion), "count": count, "per_customer": per_customer,
            "expires_at": expires_at.isoformat() if expires_at else None}))
    return {"batch": str(batch), "promotion": str(promotion), "codes": sorted(made),
            "expires_at": expires_at.isoformat() if expires_at else None}


async def create_code(pool: asyncpg.Pool, tenant: str, *, promotion: uuid.UUID, code: str | None, max_uses: int,
                      per_customer: int | None, expires_at: datetime | None, actor: str) -> dict[str, Any]:
    """One code (named, or drawn when `code` is None) usable `max_uses` times; 409 when the name is taken."""
    async with pool.acquire() as conn, conn.transaction():
        await check_takes_codes(conn, tenant, promotion)
        row = await conn.fetchrow(
            "INSERT INTO coupon_codes (tenant, code, promotion, max_uses, per_customer, expires_at, created_by)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING *",
            tenant, code or codes.generate(), promotion, max_uses, per_customer, expires_at, actor)
        if row is None:
            raise Refused(409, f"coupon {code} exists already: choose another code")
        await record(conn, Entry(tenant, actor, "coupon.created", target=codes.mask(row["code"]), details={
            "promotion": str(promotion), "max_uses": max_uses, "per_customer": per_customer,
            "expires_at": expires_at.isoformat() if expires_at else None}))
    return code_json(row)


async def set_active(pool: asyncpg.Pool, tenant: str, code: str, *, active: bool, reason: str,
                     actor: str) -> dict[str, Any]:
    """Withdraw a code (no new reservation takes it; uses already held still complete) or put it back."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("UPDATE coupon_codes SET active = $3 WHERE tenant = $1 AND code = $2 RETURNING *",
                                  tenant, code, active)
        if row is None:
            raise Refused(404, f"there is no coupon {code}")
        await record(conn, Entry(tenant, actor, "coupon.unblocked" if active else "coupon.blocked", target=codes.mask(code),
                                 details={"promotion": str(row["promotion"]), "reason": reason}))
    return code_json(row)
