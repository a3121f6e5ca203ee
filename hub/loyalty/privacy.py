"""A customer's loyalty data for a data subject request (hub.customers asks each domain for its part): the
account, every ledger entry, the lots and the redemptions. Nothing here is personal beyond the customer's id, so
erasure leaves it: the ledger is the books, kept under the erased customer's id."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from hub.loyalty import accounts


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return {key: (value.isoformat() if hasattr(value, "isoformat") else str(value) if isinstance(value, uuid.UUID)
                  else value) for key, value in record.items()}


async def export(conn: asyncpg.Connection, tenant: str, customer: str | uuid.UUID) -> dict[str, Any]:
    customer_id = customer if isinstance(customer, uuid.UUID) else uuid.UUID(str(customer))
    ledger = await conn.fetch("SELECT key, kind, points, balance, order_id, store, actor, reason, at FROM"
                              " loyalty_ledger WHERE tenant = $1 AND customer = $2 ORDER BY at, id", tenant,
                              customer_id)
    lots = await conn.fetch("SELECT points, remaining, earned_at, expires_at, order_id FROM loyalty_lots WHERE"
                            " tenant = $1 AND customer = $2 ORDER BY earned_at, id", tenant, customer_id)
    redeemed = await conn.fetch("SELECT redemption, points, state, offline, store, till, order_id, created_at FROM"
                                " loyalty_redemptions WHERE tenant = $1 AND customer = $2 ORDER BY created_at",
                                tenant, customer_id)
    return {"account": await accounts.summary(conn, tenant, customer_id), "ledger": [_row(row) for row in ledger],
            "lots": [_row(row) for row in lots], "redemptions": [_row(row) for row in redeemed]}
