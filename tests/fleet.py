"""Helpers for the fleet tests: a small world of stores (no catalog) and health reports."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import asyncpg

from hub.fleet.reports import Received, apply_reports
from novapos.wire.health import Device, HealthReport
from tests.stock_world import on_database

FLEET_WORLD = """
INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo', 'EUR'), ('other', 'Other', 'EUR');
INSERT INTO regions (tenant, region, name) VALUES ('demo', 'north', 'North'), ('demo', 'south', 'South'),
    ('other', 'west', 'West');
INSERT INTO stores (tenant, store, region, name) VALUES ('demo', 'store-001', 'north', 'One'),
    ('demo', 'store-002', 'north', 'Two'), ('demo', 'store-003', 'south', 'Three'), ('other', 'o-1', 'west', 'Other');
"""
"""Tenants, regions and stores only: no hub catalog, so an edge sells from the demo catalog it was seeded with."""


async def fleet_world(database_url: str) -> None:
    async def seed(pool: asyncpg.Pool) -> None:
        await pool.execute(FLEET_WORLD)
    await on_database(database_url, seed)


def a_report(**changes: Any) -> HealthReport:
    """A healthy store's report; `changes` replace fields."""
    report = HealthReport(version="0.1.0", sent_at_ms=int(time.time() * 1000), interval_s=5, reason="interval",
                          outbox_depth=0, oldest_unsent_ms=None,
                          devices=(Device("receipt-printer", "printer", "ready", "paper ok"),),
                          open_tills=(), last_sale=None)
    return replace(report, **changes)


async def report(database_url: str, tenant: str, store: str, health: HealthReport, skew_ms: int = 0) -> str | None:
    """Keep a report as the hub's responder would (its NATS side is tested in test_fleet_reports)."""
    async def apply(pool: asyncpg.Pool) -> str | None:
        async with pool.acquire() as conn:
            return (await apply_reports(conn, [Received(tenant, store, health, skew_ms)]))[0]
    result: str | None = await on_database(database_url, apply)
    return result
