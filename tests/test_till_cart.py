"""Correcting a cart before it is sold: remove a line, void the whole cart. Nothing is committed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from prometheus_client import REGISTRY

from actors.till.actor import VOIDED
from edge.app import run_edge
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.config import HubConfig, StoreConfig
from novapos.wire.catalog import VersionMarker
from tests.catalog import demo_catalog, item, seed_catalog
from tests.conftest import query, wait_until
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in_at, sell


@pytest.fixture
async def till(store_config: StoreConfig, http: httpx.AsyncClient) -> AsyncIterator[tuple[Any, str]]:
    """A running edge and till-1's URL, with alice's session open."""
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        url = f"{edge.url}/api/tills/till-1"
        await log_in_at(http, f"{url}", "alice")
        yield edge, url
        nursery.cancel_scope.cancel()


async def scan(http: httpx.AsyncClient, url: str, barcode: str, quantity: int = 1) -> dict[str, Any]:
    response = await http.post(f"{url}/lines", json={"barcode": barcode, "quantity": quantity})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_removed_line_is_not_sold(till: tuple[Any, str], http: httpx.AsyncClient) -> None:
    edge, url = till
    coffee = (await scan(http, url, COFFEE, 2))["lines"][0]["line"]
    await scan(http, url, MILK)
    response = await http.delete(f"{url}/lines/{coffee}")
    assert response.status_code == 200, response.text
    state = response.json()
    assert [(line["sku"], line["quantity"]) for line in state["lines"]] == [("MLK-1L", 1)]
    assert state["total"] == {"minor": 129, "currency": "EUR"}
    await http.post(f"{url}/tenders", json={"amount_minor": 129})
    receipt = (await http.post(f"{url}/complete", json={"cart": state["cart"]})).json()
    assert [line["sku"] for line in receipt["lines"]] == ["MLK-1L"] and receipt["total"]["minor"] == 129


async def test_removing_a_line_is_refused_without_changes_when_it_cannot_be(
        till: tuple[Any, str], http: httpx.AsyncClient) -> None:
    edge, url = till
    coffee = (await scan(http, url, COFFEE))["lines"][0]["line"]
    before = (await http.get(url)).json()
    response = await http.delete(f"{url}/lines/NOPE-1")
    assert response.status_code == 404 and "no line 'NOPE-1'" in response.json()["error"]
    assert (await http.get(url)).json() == before

    tendered = (await http.post(f"{url}/tenders", json={"amount_minor": 1000})).json()
    response = await http.delete(f"{url}/lines/{coffee}")
    assert response.status_code == 409 and "void the tenders" in response.json()["error"]
    assert (await http.get(url)).json() == tendered
    await http.request("DELETE", f"{url}/tenders", json={"override": MANAGER_OVERRIDE})  # the cash goes back: now
    # the line can go (alice is a cashier: a void once tendering began takes a manager's PIN)
    assert (await http.delete(f"{url}/lines/{coffee}")).json()["lines"] == []


async def test_a_voided_cart_is_gone_for_good_and_sells_nothing(
        till: tuple[Any, str], http: httpx.AsyncClient) -> None:
    edge, url = till
    voids_before = VOIDED.labels("till-1")._value.get()
    state = await scan(http, url, COFFEE, 3)
    await http.post(f"{url}/tenders", json={"amount_minor": 2000})
    response = await http.request("DELETE", f"{url}/cart", json={"override": MANAGER_OVERRIDE})  # cash was taken
    assert response.status_code == 200, response.text
    voided = response.json()
    assert voided["cart"] != state["cart"] and voided["lines"] == [] and voided["tendered"]["minor"] == 0
    assert voided["session"] == state["session"]  # the cashier carries on

    response = await http.post(f"{url}/complete", json={"cart": state["cart"]})  # a late click on the old cart
    assert response.status_code == 409 and "not the till's current cart" in response.json()["error"]
    assert await edge.tree.ask("outbox", "depth") <= 1  # at most the till.void audit record (it may be sent already)
    metrics = (await http.get(f"{edge.url}/metrics")).text
    assert f'novapos_edge_carts_voided_total{{till="till-1"}} {voids_before + 1}' in metrics  # this process counts all

    receipt = await sell(http, edge.url, [(MILK, 1)])
    assert receipt["seq"] == 2  # after the till.void audit record (seq 1): the hub sees no gap
    assert (await http.delete(f"{url}/cart")).status_code == 409  # the new cart is empty
    assert (await http.post(f"{url}/logout", json={})).status_code == 200


async def test_a_logout_leaves_the_cart_with_the_till_for_the_next_cashier(
        till: tuple[Any, str], http: httpx.AsyncClient) -> None:
    edge, url = till
    state = await scan(http, url, MILK)
    response = await http.post(f"{url}/logout", json={})
    assert response.status_code == 200 and response.json()["session"] is None
    assert response.json()["cart"] == state["cart"] and len(response.json()["lines"]) == 1
    for path in ("cart", "lines/MLK-1L"):
        response = await http.delete(f"{url}/{path}")
        assert response.status_code == 401 and "log in with your PIN" in response.json()["error"]
    bob = await log_in_at(http, url, "bob")
    assert bob["session"]["cashier"] == "bob" and bob["cart"] == state["cart"] and len(bob["lines"]) == 1


async def test_cash_is_refused_once_nothing_is_due_and_change_is_capped(
        till: tuple[Any, str], http: httpx.AsyncClient) -> None:
    """Issue 6: twelve tenders of 10^9 on a 1.29 EUR cart completed with change 119,999,998.71 EUR."""
    edge, url = till
    await scan(http, url, MILK)
    for _ in range(12):
        response = await http.post(f"{url}/tenders", json={"amount_minor": 10**9})
        assert response.status_code == 422 and "more than the 500.00 EUR a till gives back" in response.json()["error"]
    paid = (await http.post(f"{url}/tenders", json={"amount_minor": 200})).json()
    assert (paid["tendered"]["minor"], paid["due"]["minor"], paid["change"]["minor"]) == (200, 0, 71)
    response = await http.post(f"{url}/tenders", json={"amount_minor": 10**9})
    assert response.status_code == 409 and "nothing is due" in response.json()["error"]
    assert (await http.get(url)).json() == paid
    receipt = (await http.post(f"{url}/complete", json={"cart": paid["cart"]})).json()
    assert [t["amount"]["minor"] for t in receipt["tenders"]] == [200] and receipt["change"]["minor"] == 71


TENDER = "7d0c9a52-3f1e-4b6a-9c2d-5e8f1a2b3c4d"


async def test_a_tender_sent_twice_with_its_id_takes_the_cash_once(
        till: tuple[Any, str], http: httpx.AsyncClient) -> None:
    """A resend (a retry, a second tap that got through) answers the state as it is, and takes nothing more."""
    edge, url = till
    await scan(http, url, COFFEE)
    first = await http.post(f"{url}/tenders", json={"amount_minor": 200, "id": TENDER})
    assert first.status_code == 200 and first.json()["tendered"]["minor"] == 200
    again = await http.post(f"{url}/tenders", json={"amount_minor": 200, "id": TENDER})
    assert again.status_code == 200 and again.json() == first.json()
    assert (await http.post(f"{url}/tenders", json={"amount_minor": 299})).json()["due"]["minor"] == 0
    late = await http.post(f"{url}/tenders", json={"amount_minor": 200, "id": TENDER})  # nothing is due, yet no 409
    assert late.status_code == 200 and late.json()["tendered"]["minor"] == 499
    receipt = (await http.post(f"{url}/complete", json={"cart": first.json()["cart"]})).json()
    assert [t["amount"]["minor"] for t in receipt["tenders"]] == [200, 299]
    bad = await http.post(f"{url}/tenders", json={"amount_minor": 200, "id": "not-an-id"})
    assert bad.status_code == 422 and "id must be an id like" in bad.json()["error"]


def drawer_pulses() -> float:
    return sum(REGISTRY.get_sample_value("novapos_edge_drawer_kicks_total", {"device": "drawer-1", "result": result})
               or 0.0 for result in ("opened", "failed"))


async def test_a_free_item_sells_with_no_tender_and_lands_in_the_hub(
        store_config: StoreConfig, hub_config: HubConfig, database_url: str, printer: MockNetworkPrinter,
        http: httpx.AsyncClient) -> None:
    """A product priced 0 (a free bag, a gift) completes with nothing tendered, prints its receipt,
    opens no drawer (no cash changed hands) and is stored by the hub like any sale."""
    bag = item("BAG-FREE", "2000000000022", "Paper bag", 0, version=2)
    seed_catalog(store_config.state_dir, [*demo_catalog(), bag, VersionMarker(2, 0)])
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)
        url = f"{edge.url}/api/tills/till-1"
        await log_in_at(http, f"{url}", "alice")
        state = await scan(http, url, bag.barcodes[0], 2)
        assert (state["total"]["minor"], state["due"]["minor"]) == (0, 0)
        pulses = drawer_pulses()
        response = await http.post(f"{url}/complete", json={"cart": state["cart"]})
        assert response.status_code == 200, response.text
        receipt = response.json()
        assert receipt["tenders"] == [] and receipt["total"]["minor"] == 0 and receipt["change"]["minor"] == 0
        await edge.tree.ask("device.drawer-1", "report", "ready", "through printer receipt-printer")  # after any kick
        assert drawer_pulses() == pulses
        after = (await http.get(url)).json()
        assert after["lines"] == [] and after["drawer_owed"] is None
        assert (await http.post(f"{url}/logout", json={})).status_code == 200

        sale = uuid.UUID(receipt["sale"])
        rows = await wait_until(lambda: query(database_url, "SELECT * FROM sales WHERE event_id = $1", sale))
        assert (rows[0]["total_minor"], rows[0]["tendered_minor"], rows[0]["change_minor"]) == (0, 0, 0)
        assert await query(database_url, "SELECT * FROM sale_tenders WHERE event_id = $1", sale) == []
        assert await query(database_url, "SELECT * FROM dead_letters") == []
        printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
        assert "2 x Paper bag" in printed[0]
        nursery.cancel_scope.cancel()
