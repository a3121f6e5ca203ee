"""A store keeps selling while NATS is down; its outbox drains, once, when NATS comes back."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import trio

from edge.app import run_edge
from hub.app import run_hub
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query, wait_until
from tests.pos import COFFEE, MILK, sell


async def test_edge_sells_with_nats_stopped_and_drains_when_it_returns(
        store_config: StoreConfig, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)
        await sell(http, edge.url, [(MILK, 1)])
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales"))

        await trio.to_thread.run_sync(nats_server.stop)
        offline_sales = []
        for number in range(5):
            started = time.perf_counter()
            offline_sales.append(await sell(http, edge.url, [(COFFEE, number + 1)]))
            assert time.perf_counter() - started < 5.0, "a sale waited on the missing NATS"
        assert await edge.tree.ask("outbox", "depth") == 5
        assert [sale["seq"] for sale in offline_sales] == [2, 3, 4, 5, 6]
        # The store sells, so it is not failing; /healthz says the hub link is down and what waits.
        health = await wait_until(lambda: _health(http, edge.url, "degraded"))
        assert health["hub_link"] == "unreachable" and health["outbox_depth"] == 5
        assert health["oldest_unsent_age_s"] >= 0
        # /metrics says the same for the store's scrape: the link down, the backlog and its age
        backlog = await wait_until(lambda: _gauges(http, edge.url, lambda g: g["novapos_edge_outbox_depth"] == 5
                                                   and g["novapos_edge_outbox_oldest_unsent_age_seconds"] > 0))
        assert backlog["novapos_edge_hub_link_up"] == 0

        await trio.to_thread.run_sync(nats_server.start)
        await wait_until(lambda: _depth(edge, 0), timeout=30)
        rows = await wait_until(lambda: _sales_count(database_url, 6), timeout=30)
        assert rows == 6
        seqs = [row["seq"] for row in await query(database_url, "SELECT seq FROM sales ORDER BY seq")]
        assert seqs == [1, 2, 3, 4, 5, 6]
        health = await wait_until(lambda: _health(http, edge.url, "ok"))
        assert health["hub_link"] == "connected" and health["outbox_depth"] == 0
        await wait_until(lambda: _gauges(http, edge.url, lambda g: g == {
            "novapos_edge_outbox_depth": 0, "novapos_edge_outbox_oldest_unsent_age_seconds": 0,
            "novapos_edge_hub_link_up": 1}))
        await trio.sleep(1.0)  # any resend would have landed by now
        assert await _sales_count(database_url, 6) == 6
        nursery.cancel_scope.cancel()


async def _health(http: httpx.AsyncClient, url: str, status: str) -> dict | None:
    response = await http.get(f"{url}/healthz")
    assert response.status_code == 200, "a store that sells is never failing for its hub link"
    return response.json() if response.json()["status"] == status else None


async def _depth(edge, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await edge.tree.ask("outbox", "depth") == expected


async def _sales_count(database_url: str, expected: int) -> int | None:
    count = (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"]
    assert count <= expected, f"{count} sales at the hub, more than the {expected} made"
    return count if count == expected else None


BACKLOG_GAUGES = ("novapos_edge_outbox_depth", "novapos_edge_outbox_oldest_unsent_age_seconds", "novapos_edge_hub_link_up")


async def _gauges(http: httpx.AsyncClient, url: str,
                  wanted: Callable[[dict[str, float]], bool]) -> dict[str, float] | None:
    lines = (await http.get(f"{url}/metrics")).text.splitlines()
    gauges = {name: float(line.split()[-1]) for line in lines for name in BACKLOG_GAUGES if line.startswith(name + " ")}
    return gauges if wanted(gauges) else None
