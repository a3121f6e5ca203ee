"""The tenant's offline card limits: how much one card payment, and all of a store's card payments not yet
authorized by the provider, may be while the store cannot reach the hub. A store keeps them (asked with
pay_settings) for when it is offline; the console sets them (audited). A tenant that set none has DEFAULTS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.audit.chain import Entry, record


@dataclass(frozen=True)
class OfflineLimits:
    offline_per_payment_minor: int
    offline_store_total_minor: int

    def to_json(self) -> dict[str, Any]:
        return {"offline_per_payment_minor": self.offline_per_payment_minor,
                "offline_store_total_minor": self.offline_store_total_minor}


DEFAULTS = OfflineLimits(offline_per_payment_minor=5000, offline_store_total_minor=20000)


async def limits(conn: asyncpg.Connection, tenant: str) -> OfflineLimits:
    row = await conn.fetchrow("SELECT offline_per_payment_minor, offline_store_total_minor FROM payment_settings"
                              " WHERE tenant = $1", tenant)
    return DEFAULTS if row is None else OfflineLimits(row[0], row[1])


async def set_limits(pool: asyncpg.Pool, tenant: str, new: OfflineLimits, actor: str) -> OfflineLimits:
    """Store the tenant's limits and audit the change (before and after) in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        before = await limits(conn, tenant)
        await conn.execute(
            "INSERT INTO payment_settings (tenant, offline_per_payment_minor, offline_store_total_minor, updated_by)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant) DO UPDATE SET offline_per_payment_minor = $2,"
            " offline_store_total_minor = $3, updated_by = $4, updated_at = now()",
            tenant, new.offline_per_payment_minor, new.offline_store_total_minor, actor)
        await record(conn, Entry(tenant, actor, "payment.settings_changed",
                                 details={"before": before.to_json(), "after": new.to_json()}))
    return new
