"""A customer's coupon uses for a data subject request's export (hub.customers gathers every domain's part).
Erasure needs nothing here: a use carries the customer's id only, never personal data."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


async def export(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID | str) -> dict[str, Any]:
    rows = await conn.fetch("SELECT code, promotion, state, offline, store, created_at, updated_at FROM"
                            " coupon_redemptions WHERE tenant = $1 AND customer = $2 ORDER BY created_at, redemption",
                            tenant, uuid.UUID(str(customer)))
    return {"coupon_uses": [{"code": row["code"], "promotion": row["promotion"], "state": row["state"],
                             "offline": row["offline"], "store": row["store"], "at": row["created_at"].isoformat(),
                             "updated_at": row["updated_at"].isoformat()} for row in rows]}
