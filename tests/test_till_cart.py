"""Correcting a cart before it is sold: remove a line, void the whole cart. Nothing is committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from edge.app import run_edge
from novapos.config import StoreConfig
from tests.pos import COFFEE, MILK, sell


@pytest.fixture
async def till(store_config: StoreConfig, http: httpx.AsyncClient) -> AsyncIterator[tuple[Any, str]]:
    """A running edge and till-1's URL, with alice's session open."""
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        url = f"{edge.url}/api/tills/till-1"
        assert (await http.post(f"{url}/session", json={"cashier": "alice"})).status_code == 200
        yield edge, url
        nursery.cancel_scope.cancel()


async def scan(http: httpx.AsyncClient, url: str, barcode: str, quantity: int = 1) -> dict[str, Any]:
    response = await http.post(f"{url}/lines", json={"barcode": barcode, "quantity": quantity})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_removed_line_is_not_sold(till: tuple[Any, str], http: httpx.AsyncClient) -> None:
    edge, url = till
    await scan(http, url, COFFEE, 2)
    await scan(http, url, MILK)
    response = await http.delete(f"{url}/lines/COF-250")
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
    await scan(http, url, COFFEE)
    before = (await http.get(url)).json()
    response = await http.delete(f"{url}/lines/NOPE-1")
    assert response.status_code == 404 and "no line for 'NOPE-1'" in response.json()["error"]
    assert (await http.get(url)).json() == before

    tendered = (await http.post(f"{url}/tenders", json={"amount_minor": 1000})).json()
    response = await http.delete(f"{url}/lines/COF-250")
    assert response.status_code == 409 and "void the tenders" in response.json()["error"]
    assert (await http.get(url)).json() == tendered
    await http.delete(f"{url}/tenders")  # the cash goes back: now the line can go
    assert (await http.delete(f"{url}/lines/COF-250")).json()["lines"] == []


async def test_a_voided_cart_is_gone_for_good_and_sells_nothing(
        till: tuple[Any, str], http: httpx.AsyncClient) -> None:
    edge, url = till
    state = await scan(http, url, COFFEE, 3)
    await http.post(f"{url}/tenders", json={"amount_minor": 2000})
    response = await http.delete(f"{url}/cart")
    assert response.status_code == 200, response.text
    voided = response.json()
    assert voided["cart"] != state["cart"] and voided["lines"] == [] and voided["tendered"]["minor"] == 0
    assert voided["session"] == state["session"]  # the cashier carries on

    response = await http.post(f"{url}/complete", json={"cart": state["cart"]})  # a late click on the old cart
    assert response.status_code == 409 and "not the till's current cart" in response.json()["error"]
    assert await edge.tree.ask("outbox", "depth") == 0
    metrics = (await http.get(f"{edge.url}/metrics")).text
    assert 'novapos_edge_carts_voided_total{till="till-1"} 1.0' in metrics

    receipt = await sell(http, edge.url, [(MILK, 1)])
    assert receipt["seq"] == 1  # a void uses no store sequence number: the hub sees no gap
    assert (await http.delete(f"{url}/cart")).status_code == 409  # the new cart is empty
    assert (await http.delete(f"{url}/session")).status_code == 200


async def test_a_cart_with_lines_holds_the_session_until_voided(
        till: tuple[Any, str], http: httpx.AsyncClient) -> None:
    edge, url = till
    await scan(http, url, MILK)
    response = await http.delete(f"{url}/session")
    assert response.status_code == 409 and "void the cart" in response.json()["error"]
    await http.delete(f"{url}/cart")
    assert (await http.delete(f"{url}/session")).json()["session"] is None
    for path in ("cart", "lines/MLK-1L"):
        response = await http.delete(f"{url}/{path}")
        assert response.status_code == 409 and "no open session" in response.json()["error"]


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
