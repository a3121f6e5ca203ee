"""A store cut off from NATS sells on while its reports cannot leave; the hub, which still has PostgreSQL,
marks it offline once; when NATS returns the store reports again, comes back online and its backlog drains."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import httpx
import trio

from edge.app import run_edge
from hub.app import run_hub
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query, wait_until
from tests.fleet import fleet_world
from tests.identity import add_user, grant, signed_in
from tests.pos import COFFEE, sell


async def test_a_store_without_nats_sells_goes_offline_and_comes_back(
        hub_config: HubConfig, store_config: StoreConfig, nats_server: EmbeddedNats, database_url: str,
        http: httpx.AsyncClient) -> None:
    await fleet_world(database_url)
    await add_user(database_url, "ada", grant("tenant_admin"))
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, replace(hub_config, fleet_offline_after_s=3))
        edge = await nursery.start(run_edge, replace(store_config, health_interval_s=1))
        async with signed_in(hub.url, "ada") as ada:
            async def store(check: Any) -> dict[str, Any] | None:
                found: dict[str, Any] = (await ada.get("/api/fleet/store-001")).json()
                return found if check(found) else None
            await wait_until(lambda: store(lambda s: s["online"]), timeout=10)

            await trio.to_thread.run_sync(nats_server.stop)
            cut = time.monotonic()
            for number in range(3):
                started = time.perf_counter()
                await sell(http, edge.url, [(COFFEE, number + 1)])
                assert time.perf_counter() - started < 3.0, "a sale waited on the reporter or the missing NATS"
            await wait_until(lambda: store(lambda s: not s["online"]), timeout=10)
            assert time.monotonic() - cut < 3 + 5

            await trio.to_thread.run_sync(nats_server.start)
            back = await wait_until(lambda: store(lambda s: s["online"] and s["outbox"]["depth"] == 0
                                                  and s["last_sale"] is not None), timeout=30)
            assert back["last_sale"]["seq"] == 3 and back["alerts"] == []
            kinds = [entry["kind"] for entry in back["history"]]
            assert kinds.index("online") < kinds.index("offline")  # newest first: back after it went away
        nursery.cancel_scope.cancel()
    offline = await query(database_url, "SELECT count(*) AS n FROM fleet_history WHERE kind = 'offline'")
    assert offline[0]["n"] == 1
