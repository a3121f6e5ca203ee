"""Tills selling from the local catalog, end to end over HTTP with real NATS: a price change arriving while
a cart is open, sale.completed v2 with its price locks, tax added to or included in the total, the
receipt's tax, and /api/products a page at a time."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import pytest
import trio

from actors.printing.receipt import ReceiptContext, render_receipt
from edge.app import RunningEdge, run_edge
from novapos.config import StoreConfig
from novapos.config.receipt import ReceiptSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.catalog import VersionMarker
from novapos.wire.envelope import decode
from novapos.wire.schemas import SCHEMAS
from tests.catalog import DEMO_PRODUCTS, demo_catalog, item, publish_catalog, seed_catalog
from tests.conftest import wait_until
from tests.pos import COFFEE, MILK, log_in, log_in_at, seed_staff, sell


@pytest.fixture
async def running(store_config: StoreConfig) -> AsyncIterator[RunningEdge]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(run_edge, store_config)
        nursery.cancel_scope.cancel()


async def products(http: httpx.AsyncClient, edge: RunningEdge, query: str = "") -> dict[str, Any]:
    response = await http.get(f"{edge.url}/api/products{query}")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def without_receipt_fields(receipt: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in receipt.items() if key not in ("sale", "seq", "cart")}


async def test_a_price_change_leaves_the_open_line_at_its_snapshot_and_the_next_cart_sells_at_the_new_price(
        store_config: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient) -> None:
    config = replace(store_config, state_dir=store_config.state_dir.parent / "new-store")  # no catalog seeded
    seed_staff(config.state_dir)  # its people, though
    await publish_catalog(nats_server, demo_catalog())
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, config)
        till = f"{edge.url}/api/tills/till-1"
        await log_in_at(http, f"{till}", "alice")
        await wait_until(lambda: catalog_version(http, edge, 1))  # the cold sync of a new store
        health = (await http.get(f"{edge.url}/healthz")).json()
        assert (health["catalog_version"], health["catalog_sync"]) == (1, "following")
        first = (await http.post(f"{till}/lines", json={"barcode": COFFEE})).json()
        assert [line["unit_price"]["minor"] for line in first["lines"]] == [499]

        published = time.monotonic()
        await publish_catalog(nats_server, [item("COF-250", COFFEE, "Ground coffee 250 g", 549, version=2),
                                                VersionMarker(2, 0)])
        await wait_until(lambda: catalog_version(http, edge, 2), timeout=5.0)
        assert time.monotonic() - published < 5.0
        state = (await http.get(till)).json()
        assert [(line["quantity"], line["unit_price"]["minor"], line["catalog_version"]) for line in state["lines"]] == [
            (1, 499, 1)], "the open line keeps the price it was scanned at"
        state = (await http.post(f"{till}/lines", json={"barcode": COFFEE})).json()  # a second scan: a new line
        assert [(line["quantity"], line["unit_price"]["minor"], line["catalog_version"]) for line in state["lines"]] == [
            (1, 499, 1), (1, 549, 2)]
        assert state["total"]["minor"] == 499 + 549
        await http.post(f"{till}/tenders", json={"amount_minor": state["due"]["minor"]})
        receipt = (await http.post(f"{till}/complete", json={"cart": state["cart"]})).json()
        SCHEMAS[("sale.completed", 3)](without_receipt_fields(receipt))
        [event] = await edge.tree.ask("outbox", "pending", 10)
        envelope = decode(event.payload)
        assert (envelope.type, envelope.v) == ("sale.completed", 3)
        assert envelope.body["lines"] == receipt["lines"] and envelope.body["tax_total"] == receipt["tax_total"]

        receipt = await sell(http, edge.url, [(COFFEE, 1)])  # the next customer pays the new price
        assert [(line["unit_price"]["minor"], line["catalog_version"]) for line in receipt["lines"]] == [(549, 2)]
        nursery.cancel_scope.cancel()


async def catalog_version(http: httpx.AsyncClient, edge: RunningEdge, version: int) -> bool:
    return bool((await products(http, edge, "?limit=1"))["catalog_version"] == version)


async def test_prices_that_exclude_tax_add_it_to_the_total_and_the_sale_passes_the_v2_schema(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    seed_catalog(store_config.state_dir, [*demo_catalog(2, prices_include_tax=False)])
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        receipt = await sell(http, edge.url, [(COFFEE, 2), (MILK, 1)])
        nursery.cancel_scope.cancel()
    # 9.98 at 7 % adds 0.6986 -> 0.70; 1.29 adds 0.0903 -> 0.09 (pricing's one rule, per line)
    assert [line["tax"] for line in receipt["lines"]] == [
        {"class": "food", "rate_ppm": 70_000, "included": False, "amount": {"minor": 70, "currency": "EUR"}},
        {"class": "food", "rate_ppm": 70_000, "included": False, "amount": {"minor": 9, "currency": "EUR"}}]
    assert (receipt["total"]["minor"], receipt["tax_total"]["minor"]) == (998 + 129 + 79, 79)
    assert {line["catalog_version"] for line in receipt["lines"]} == {2}
    SCHEMAS[("sale.completed", 3)](without_receipt_fields(receipt))
    printed = "\n".join(line.text for line in render_receipt(
        ReceiptContext(ReceiptSettings("store")), {"id": receipt["sale"], "seq": 1, "body": receipt}, datetime(2026, 12, 2, 9, 0)).lines)
    assert "Subtotal" in printed and "11.27 EUR" in printed
    assert re.search(r"^7\.00% +11\.27 EUR +0\.79 EUR$", printed, re.M) and "12.06 EUR" in printed


async def test_prices_that_include_tax_show_it_and_leave_the_total_alone(
        running: RunningEdge, http: httpx.AsyncClient) -> None:
    health = (await http.get(f"{running.url}/healthz")).json()  # no catalog stream yet: it sells what it has
    assert (health["catalog_version"], health["catalog_sync"]) == (1, "offline")
    receipt = await sell(http, running.url, [(COFFEE, 2), (MILK, 1)])
    assert (receipt["total"]["minor"], receipt["tax_total"]["minor"]) == (998 + 129, 65 + 8)
    printed = [line.text for line in render_receipt(
        ReceiptContext(ReceiptSettings("store")), {"id": receipt["sale"], "seq": 1, "body": receipt}, datetime(2026, 12, 2, 9, 0)).lines]
    total_at = next(index for index, text in enumerate(printed) if text.startswith("TOTAL"))
    assert "11.27 EUR" in printed[total_at] and "Subtotal" not in "\n".join(printed)
    assert re.fullmatch(r"7\.00% incl\. +10\.54 EUR +0\.73 EUR", printed[total_at - 1])  # the rate, net, tax


async def test_products_come_a_page_at_a_time_and_can_be_searched(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    many = [item(f"SKU-{n:04d}", f"21{n:011d}", f"Widget {n}", 100 + n) for n in range(250)]
    seed_catalog(store_config.state_dir, [*demo_catalog()[:-1], *many,
                                          item("GONE", "2000000000999", "Gone", 1, active=False), VersionMarker(1, 0)])
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        await log_in(http, edge.url)  # the product list is behind the login too
        first = await products(http, edge)
        assert len(first["products"]) == 50 and first["next"] == first["products"][-1]["sku"]
        seen, after = [p["sku"] for p in first["products"]], first["next"]
        while after is not None:
            page = await products(http, edge, f"?after={after}&limit=200")
            seen += [p["sku"] for p in page["products"]]
            after = page["next"]
        assert len(seen) == len(set(seen)) == 250 + len(DEMO_PRODUCTS) and "GONE" not in seen
        coffee = (await products(http, edge, "?q=coffee"))["products"]
        assert coffee == [{"sku": "COF-250", "barcode": COFFEE, "name": "Ground coffee 250 g",
                           "price": {"minor": 499, "currency": "EUR"},
                           "tax": {"class": "food", "rate_ppm": 70_000, "included": True}}]
        assert [p["sku"] for p in (await products(http, edge, "?q=2100000000012"))["products"]] == ["SKU-0012"]
        assert [p["sku"] for p in (await products(http, edge, "?q=Widget%2024&limit=3"))["products"]] == [
            "SKU-0024", "SKU-0240", "SKU-0241"]
        assert (await products(http, edge, "?q=100%25"))["products"] == []  # a % is a character, not a wildcard
        for query, says in [("?limit=0", "limit must be"), ("?limit=201", "limit must be"), ("?limit=1.5", "limit"),
                            ("?limit=" + "9" * 5000, "limit"), ("?after=a%00b", "after"), ("?q=%1B%5B2J", "q must not"),
                            ("?q=" + "x" * 10_000, "q must"), ("?page=2", "unknown query parameter(s) page")]:
            response = await http.get(f"{edge.url}/api/products{query}")
            assert response.status_code == 422 and says in response.json()["error"], (query, response.text)
        assert (await sell(http, edge.url, [(COFFEE, 1)]))["seq"] == 1  # the store sells on
        nursery.cancel_scope.cancel()
