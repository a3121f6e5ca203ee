"""The hub's payment service for tests: a migrated database and the service installed over the acquirer
simulator (tests.acquirer_support), run on a short-lived asyncio loop like the hub's seam.

    with running_acquirer() as acquirer:
        intent = in_payments(database_url, acquirer.url, lambda payments: payments.create(...))
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from hub.db import create_pool, migrate
from hub.payments import provider
from hub.payments.service import Payments
from novapos.config.hub import PaymentSettings

T = TypeVar("T")

SETTINGS = PaymentSettings(provider="simulator", timeout_s=1, watchdog_after_s=1, capture_window_s=3600)
"""Short timers: a lost answer is a timeout after a second; the watchdog looks after a second."""


def in_payments(database_url: str, gateway_url: str, work: Callable[[Payments], Awaitable[T]], **settings: Any) -> T:
    """Run `work` with the installed payment service (no provider when `gateway_url` is empty)."""
    async def run() -> T:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            payments = provider.install(pool, dataclasses.replace(SETTINGS, gateway_url=gateway_url, **settings))
            try:
                return await work(payments)
            finally:
                if payments.gateway is not None:
                    await payments.gateway.aclose()  # type: ignore[attr-defined]
        finally:
            await pool.close()
    return asyncio.run(run())


def rows(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()
    return asyncio.run(run())
