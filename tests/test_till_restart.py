"""A till carries on after its actor or its process restarts: same session, same cart, same cash."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from actors.storage import db as local_db
from edge.app import run_edge
from novapos.config import StoreConfig
from tests.conftest import wait_until
from tests.pos import COFFEE, MILK, log_in_at, sell


@asynccontextmanager
async def running_edge(config: StoreConfig) -> AsyncIterator[Any]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(run_edge, config)
        nursery.cancel_scope.cancel()


def save_directly(config: StoreConfig, till: str, state: str) -> None:
    """Write a till's saved state as the file would hold it (what a crash or a bad disk left)."""
    db = local_db.connect(config.state_dir / local_db.FILE_NAME)
    db.execute("INSERT OR REPLACE INTO open_tills (till, state, saved_at) VALUES (?, ?, 0)", (till, state))
    db.close()


async def half_scanned(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    await log_in_at(http, f"{url}", "alice")
    await http.post(f"{url}/lines", json={"barcode": COFFEE, "quantity": 2})
    await http.post(f"{url}/lines", json={"barcode": MILK})
    return (await http.post(f"{url}/tenders", json={"amount_minor": 500})).json()


async def test_a_restarted_till_actor_carries_on_with_its_cart(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        url = f"{edge.url}/api/tills/till-1"
        before = await half_scanned(http, url)
        restarts = edge.tree.restarts
        await trio.to_thread.run_sync(lambda: edge.tree.registry.get("till.till-1").stop(block=True))

        async def restarted() -> bool:
            return edge.tree.restarts > restarts
        await wait_until(restarted)
        assert (await http.get(url)).json() == before
        await http.post(f"{url}/tenders", json={"amount_minor": 1000})
        receipt = (await http.post(f"{url}/complete", json={"cart": before["cart"]})).json()
        assert receipt["cart"] == before["cart"] and receipt["total"]["minor"] == 2 * 499 + 129
        assert receipt["change"]["minor"] == 1500 - (2 * 499 + 129)


async def test_session_and_cart_survive_a_process_restart(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        before = await half_scanned(http, f"{edge.url}/api/tills/till-2")
        sold = await sell(http, edge.url, [(MILK, 1)])  # till-1 sells meanwhile: its cart starts afresh
    async with running_edge(store_config) as edge:
        assert (await http.get(f"{edge.url}/api/tills/till-2")).json() == before
        till_1 = (await http.get(f"{edge.url}/api/tills/till-1")).json()
        assert till_1["lines"] == [] and till_1["cart"] != sold["cart"] and till_1["session"]["cashier"] == "alice"


async def test_a_cart_completed_just_before_a_crash_is_not_taken_up_again(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    """kill -9 between the sale's commit and the cart's save leaves the sold cart saved: it must not
    come back, or lines added to it would be 'completed' into the old sale and never sold."""
    async with running_edge(store_config) as edge:
        url = f"{edge.url}/api/tills/till-1"
        before = await half_scanned(http, url)
        await http.post(f"{url}/tenders", json={"amount_minor": 1000})
        receipt = (await http.post(f"{url}/complete", json={"cart": before["cart"]})).json()
    stale = {"session": before["session"], "cart": {"id": before["cart"], "tendered": [500, 1000],
             "lines": [{**milk(2), "sku": "COF-250", "name": "Ground coffee 250 g", "unit": 499}, milk(1)]}}
    save_directly(store_config, "till-1", json.dumps(stale))
    async with running_edge(store_config) as edge:
        url = f"{edge.url}/api/tills/till-1"
        state = (await http.get(url)).json()
        assert state["session"] == before["session"] and state["lines"] == [] and state["cart"] != before["cart"]
        resent = (await http.post(f"{url}/complete", json={"cart": before["cart"]})).json()
        assert resent["sale"] == receipt["sale"]  # the old cart still answers with its receipt
        assert await edge.tree.ask("outbox", "depth") == 1


SESSION, CART = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
BOB = {"id": SESSION, "cashier": "bob", "name": "bob", "roles": [], "offline": False}
"""A session saved before PIN logins ({id, cashier}), as it is restored."""


def milk(quantity: object) -> dict[str, object]:
    """A saved line of milk with its price lock, as a till saves it."""
    return {"sku": "MLK-1L", "name": "Whole milk 1 l", "quantity": quantity, "unit": 129, "catalog_version": 1,
            "tax_class": "food", "rate_ppm": 70_000, "included": True}


async def test_an_unreadable_or_stale_saved_cart_never_stops_a_till(
        store_config: StoreConfig, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    async with running_edge(store_config):
        pass  # creates the file
    save_directly(store_config, "till-1", '{"session": {"id": "s", "cashier": "al')  # torn
    save_directly(store_config, "till-2", json.dumps({
        "session": {"id": SESSION, "cashier": "bob"},
        "cart": {"id": CART, "tendered": [-5, "x"], "lines": [
            {"sku": "OLD-1", "quantity": 1},  # saved by a till before price locks: no snapshot to sell it at
            milk(0), {**milk(1), "sku": ["MLK-1L"]}, "junk", milk(3)]}}))
    with caplog.at_level(logging.WARNING, logger="actors"):
        async with running_edge(store_config) as edge:
            till_1 = await edge.tree.ask("till.till-1", "state")  # as restored, before anyone logs in
            till_2 = await edge.tree.ask("till.till-2", "state")
            assert edge.tree.healthy() and edge.tree.restarts == 0
    assert till_1["session"] is None and till_1["lines"] == []
    assert till_2["session"] == BOB and till_2["cart"] == CART
    assert [(line["sku"], line["quantity"]) for line in till_2["lines"]] == [("MLK-1L", 3)]
    assert till_2["tendered"]["minor"] == 0
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert "till till-1: its saved cart cannot be read" in messages and "saved before price locks" in messages


@pytest.mark.parametrize(("session", "cart", "kept"), [
    ({"id": SESSION, "cashier": "al\x00ice"}, {"id": CART, "lines": [], "tendered": []}, "nothing"),
    ({"id": SESSION, "cashier": "sur\ud800rogate"}, {"id": CART, "lines": [], "tendered": []}, "nothing"),
    ({"id": SESSION, "cashier": "eve\n2026-12-01 INFO forged"}, {"id": CART, "lines": [], "tendered": []}, "nothing"),
    ({"id": "s2; DROP TABLE outbox", "cashier": "bob"}, {"id": CART, "lines": [], "tendered": []}, "nothing"),
    ({"id": SESSION, "cashier": "bob"}, {"id": "c2", "lines": [milk(1)]}, "session"),
    ({"id": SESSION, "cashier": "bob"}, {"id": CART, "tendered": [10**15, 10**9, 200],
                                         "lines": [milk(10**6), milk(1)]}, "cart"),
])
async def test_a_poisoned_saved_till_is_dropped_field_by_field_never_restored(
        store_config: StoreConfig, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture,
        session: dict[str, Any], cart: dict[str, Any], kept: str) -> None:
    """What a bad disk, an old build or a hand edit left is checked like client input: a NUL, a lone
    surrogate or a newline in the cashier's name, an id that is not one, amounts out of bounds."""
    async with running_edge(store_config):
        pass
    save_directly(store_config, "till-2", json.dumps({"session": session, "cart": cart}))
    with caplog.at_level(logging.WARNING, logger="actors"):
        async with running_edge(store_config) as edge:
            state = await edge.tree.ask("till.till-2", "state")
            assert edge.tree.healthy() and edge.tree.restarts == 0
    if kept == "nothing":
        assert state["session"] is None
    else:
        assert state["session"] == BOB
    if kept == "cart":
        assert state["cart"] == CART and [(line["sku"], line["quantity"]) for line in state["lines"]] == [("MLK-1L", 1)]
        assert state["tendered"]["minor"] == 200  # 10^15 is out of bounds, 10^9 would need too much change
    else:
        assert state["cart"] != CART and state["lines"] == []
    dropped = [record.getMessage() for record in caplog.records if "dropping" in record.getMessage()]
    assert dropped and all(bad not in line for line in dropped for bad in ("\x00", "\ud800", "\n"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="actors"):
        async with running_edge(store_config) as edge:  # what was dropped was saved back: said once, not every start
            again = await edge.tree.ask("till.till-2", "state")
    assert [again[key] for key in ("session", "lines", "tendered")] == [state[key] for key in ("session", "lines",
                                                                                                 "tendered")]
    assert not [record.getMessage() for record in caplog.records if "dropping" in record.getMessage()]
