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
import trio

from actors.payments.asking import HubUnreachable, ask_hub
from edge_runtime import AsyncioSeam
from hub.db import create_pool, migrate
from hub.payments import provider
from hub.payments.service import Payments
from novapos.adapters.nats import NatsLink, store_inbox_prefix
from novapos.config import HubConfig
from novapos.config.hub import PaymentSettings
from novapos.demo.embedded_nats import EmbeddedNats

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


def hub_settings(config: HubConfig, gateway_url: str, **settings: Any) -> HubConfig:
    """`config` with the payment settings of these tests, talking to the provider at `gateway_url`."""
    return dataclasses.replace(config, payments=dataclasses.replace(SETTINGS, gateway_url=gateway_url, **settings))


async def ask_store(nats_server: EmbeddedNats, kind: str, body: dict[str, Any], *, tenant: str = "demo",
                    store: str = "store-001") -> dict[str, Any]:
    """Ask the hub's payment request `kind` as the store does (its own NATS user, actors.payments.asking)."""
    def ask() -> dict[str, Any]:
        with AsyncioSeam() as seam:
            link = NatsLink(nats_server.url, f"test-{store}", credentials=nats_server.store_credentials(tenant, store),
                            inbox_prefix=store_inbox_prefix(tenant, store), tls=nats_server.client_tls())
            try:
                return ask_hub(link, seam, tenant, store, kind, body, within=10)
            finally:
                seam.run_blocking(link.close, timeout=5)
    return await trio.to_thread.run_sync(ask)


def approval(tender: str, amount: int = 1000, **changes: Any) -> dict[str, Any]:
    """A pay_intent request for a card the terminal approved online as provider reference pay_<tender>."""
    return {"tender_id": tender, "till": "till-1", "amount_minor": amount, "authorized_minor": amount,
            "currency": "EUR", "provider_ref": f"pay_{tender}", "auth_code": "123456", "scheme": "visa",
            "masked": "**** 4242", "offline": False, **changes}


async def answering(nats_server: EmbeddedNats) -> None:
    """Wait for the started hub's payment responders (they subscribe once the hub has reached NATS)."""
    with trio.fail_after(15):
        while True:
            try:
                await ask_store(nats_server, "pay_settings", {})
                return
            except HubUnreachable:
                await trio.sleep(0.1)
