"""The catalog from the hub to a store's till, end to end on real parts: the hub's demo catalog published by
the hub's publisher, synced by the store's catalog sync (logged in as the store), priced by the till's local
catalog; a price changed through the console API reaches the till well within 2 s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import trio

from actors.catalog.local import CatalogMissing, Offer, catalog_path
from hub.app import run_hub
from hub.catalog.demo import seed_demo_catalog
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.catalog_support import add_tenancy
from tests.conftest import wait_until
from tests.console_access import sign_in_admin
from tests.test_catalog_sync import reader, syncing

COFFEE = "4006381333931"


async def test_the_hubs_catalog_reaches_the_till_and_a_price_change_follows_within_2_s(
        hub_config: HubConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient, tmp_path: Path) -> None:
    state = tmp_path / "edge"

    async def seeded() -> int:
        from hub.db import create_pool
        pool = await create_pool(hub_config.database_url, max_size=2)
        try:
            imported = await seed_demo_catalog(pool)
            assert imported is not None and not imported.errors
            return imported.version
        finally:
            await pool.close()

    def offer(code: str) -> Offer | str | None:
        if not catalog_path(state).exists():
            return None
        catalog = reader(state)
        try:
            return catalog.offer(code, int(time.time() * 1000))
        except CatalogMissing as exc:  # not synced yet
            return str(exc)
        finally:
            catalog.close()

    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(asyncio.run, add_tenancy(hub_config.database_url))
        version = await trio.to_thread.run_sync(asyncio.run, seeded())
        await sign_in_admin(http, hub.url, hub_config.database_url)
        async with syncing(nats_server, state):
            async def priced(minor: int) -> Offer | None:
                found = offer(COFFEE)
                return found if isinstance(found, Offer) and found.unit_minor == minor else None
            coffee = await wait_until(lambda: priced(499), timeout=30)
            assert (coffee.sku, coffee.rate_ppm, coffee.included, coffee.catalog_version) == (
                "COF-250", 55_000, True, version)
            started = time.monotonic()
            response = await http.post(f"{hub.url}/api/catalog/price-changes", json={"sku": "COF-250", "amount_minor": 549})
            assert response.status_code == 200, response.text
            coffee = await wait_until(lambda: priced(549), timeout=5, interval=0.01)
            latency = time.monotonic() - started
            assert coffee.catalog_version == response.json()["version"]
        nursery.cancel_scope.cancel()
    assert latency < 2.0, f"the price change took {latency:.2f} s to reach the till"
