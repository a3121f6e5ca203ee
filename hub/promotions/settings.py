"""A tenant's promotion settings: the simulated cost above which a promotion needs a second person's approval,
the time zone its promotions' days and hours are local to, and how many days of sales a simulation replays.

A tenant that never set them has DEFAULTS (a threshold of 500.00 in its currency, UTC, 28 days): approval is on
from the first day, never something a tenant must remember to switch on. Changes are audited.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from hub.audit.chain import Entry, record
from novapos import promotions as engine
from novapos import validators

MAX_THRESHOLD_MINOR = validators.MAX_MINOR
MAX_SIMULATION_DAYS = 366


@dataclass(frozen=True)
class Settings:
    approval_threshold_minor: int
    timezone: str
    simulation_days: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


DEFAULTS = Settings(approval_threshold_minor=50_000, timezone="UTC", simulation_days=28)


def from_json(body: dict[str, Any]) -> Settings:
    return Settings(
        approval_threshold_minor=validators.minor_units("approval_threshold_minor", body.get("approval_threshold_minor"),
                                                        maximum=MAX_THRESHOLD_MINOR),
        timezone=engine.timezone("timezone", body.get("timezone")),
        simulation_days=validators.integer("simulation_days", body.get("simulation_days"), 1, MAX_SIMULATION_DAYS))


async def settings(conn: asyncpg.Connection, tenant: str) -> Settings:
    row = await conn.fetchrow("SELECT approval_threshold_minor, timezone, simulation_days FROM promotion_settings"
                              " WHERE tenant = $1", tenant)
    return DEFAULTS if row is None else Settings(**dict(row))


async def set_settings(pool: asyncpg.Pool, tenant: str, new: Settings, actor: str) -> Settings:
    """Save the tenant's settings and audit the change (old and new values) in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        old = await settings(conn, tenant)
        await conn.execute(
            "INSERT INTO promotion_settings (tenant, approval_threshold_minor, timezone, simulation_days, updated_by)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant) DO UPDATE SET"
            " approval_threshold_minor = EXCLUDED.approval_threshold_minor, timezone = EXCLUDED.timezone,"
            " simulation_days = EXCLUDED.simulation_days, updated_by = EXCLUDED.updated_by, updated_at = now()",
            tenant, new.approval_threshold_minor, new.timezone, new.simulation_days, actor)
        await record(conn, Entry(tenant, actor, "promotion.settings_set", details={
            "old": old.to_json(), "new": new.to_json()}))
    return new
