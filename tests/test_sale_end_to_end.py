"""The first sale, end to end: web till API -> till actor -> SQLite outbox -> JetStream -> hub -> PostgreSQL,
with the receipt on the simulated network printer."""

from __future__ import annotations

import uuid

import httpx
import pytest
import trio

from actors.storage import forwarder
from edge.app import run_edge
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import ensure_stream, query, wait_until
from tests.console_access import sign_in_admin
from tests.pos import COFFEE, MILK, sell


async def test_sale_lands_in_postgres_once_with_a_printed_receipt(
        store_config: StoreConfig, hub_config: HubConfig, database_url: str, printer: MockNetworkPrinter,
        http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)

        receipt = await sell(http, edge.url, [(COFFEE, 2), (MILK, 1)], cash=2000)
        assert receipt["total"] == {"minor": 2 * 499 + 129, "currency": "EUR"}
        assert receipt["change"] == {"minor": 2000 - 1127, "currency": "EUR"}
        assert receipt["seq"] == 1

        sale_id = uuid.UUID(receipt["sale"])
        rows = await wait_until(lambda: query(database_url, "SELECT * FROM sales WHERE event_id = $1", sale_id))
        assert len(rows) == 1
        assert (rows[0]["store"], rows[0]["till"], rows[0]["cashier"]) == ("store-001", "till-1", "alice")
        assert (rows[0]["total_minor"], rows[0]["tendered_minor"], rows[0]["change_minor"]) == (1127, 2000, 873)
        lines = await query(database_url, "SELECT sku, quantity, amount_minor FROM sale_lines "
                                          "WHERE event_id = $1 ORDER BY line_no", sale_id)
        assert [tuple(line) for line in lines] == [("COF-250", 2, 998), ("MLK-1L", 1, 129)]

        printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
        assert "Ground coffee 250 g" in printed[0] and "11.27 EUR" in printed[0]
        assert await trio.to_thread.run_sync(printer.wait_for_drawer_kicks, 1, 10.0) == [2]  # cash: the drawer opens

        await wait_until(lambda: _depth_zero(edge))
        await sign_in_admin(http, hub.url, database_url)
        console = (await http.get(f"{hub.url}/api/sales")).json()
        stores = (await http.get(f"{hub.url}/api/stores")).json()
        assert [sale["event_id"] for sale in console] == [str(sale_id)]
        assert [{key: store[key] for key in ("store", "sales", "total_minor", "currency", "last_seq", "missing", "reused")}
                for store in stores] == [{"store": "store-001", "sales": 1, "total_minor": 1127, "currency": "EUR",
                                          "last_seq": 1, "missing": 0, "reused": 0}]
        nursery.cancel_scope.cancel()


async def _depth_zero(edge) -> bool:  # type: ignore[no-untyped-def]
    return await edge.tree.ask("outbox", "depth") == 0


async def test_completing_the_same_cart_twice_makes_one_sale(
        store_config: StoreConfig, hub_config: HubConfig, database_url: str, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)
        first = await sell(http, edge.url, [(COFFEE, 1)])
        again = await http.post(f"{edge.url}/api/tills/till-1/complete", json={"cart": first["cart"]})
        assert again.status_code == 200
        assert again.json()["sale"] == first["sale"]
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales"))
        await trio.sleep(0.5)
        assert len(await query(database_url, "SELECT 1 FROM sales")) == 1
        nursery.cancel_scope.cancel()


async def test_healthz_and_metrics_on_edge_and_hub(
        store_config: StoreConfig, hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)
        await sell(http, edge.url, [(MILK, 1)])
        for base in (edge.url, hub.url):
            health = await http.get(f"{base}/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
        edge_metrics = (await http.get(f"{edge.url}/metrics")).text
        assert 'novapos_edge_sales_completed_total{till="till-1"}' in edge_metrics
        await wait_until(lambda: _metric_positive(http, hub.url, 'novapos_hub_events_total{result="applied"}'))
        nursery.cancel_scope.cancel()


async def _metric_positive(http: httpx.AsyncClient, base: str, name: str) -> bool:
    for line in (await http.get(f"{base}/metrics")).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1]) > 0
    return False


async def test_a_sale_is_forwarded_at_once_not_at_the_next_idle_poll(
        store_config: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The till wakes the forwarder; with the idle poll pushed out to 30 s only that wake-up can move it."""
    monkeypatch.setattr(forwarder, "IDLE_POLL_S", 30.0)
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        await trio.sleep(0.3)  # the first drain has run and set its 30 s idle timer
        await ensure_stream(nats_server)
        for _ in range(3):
            await sell(http, edge.url, [(MILK, 1)])
            await wait_until(lambda: _depth_zero(edge), timeout=10)  # far inside the 30 s idle poll
        nursery.cancel_scope.cancel()

