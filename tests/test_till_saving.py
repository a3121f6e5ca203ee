"""What a sale owes its till survives a slow commit and a kill -9: the drawer opens, once.

A commit that outlasts the till's wait (a real outbox whose SQLite file another connection holds
locked) keeps the cart, and the resend finds the sale and opens the drawer it missed. A kill -9
between a sale's commit and its drawer pulse leaves the pulse owed: a resent completion, or
open_drawer_for_sale, opens it once, as a recorded recovery; a second attempt is refused.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from prometheus_client import REGISTRY

from actors.catalog.local import LocalCatalog, Offer, catalog_path
from actors.devices.drawer import DrawerDevice
from actors.devices.printer import PrinterDevice
from actors.protocol import Rejected
from actors.storage import db as local_db
from actors.storage.outbox import Outbox
from actors.till import actor as till_actor
from actors.till.cart import Cart
from edge.app import run_edge
from novapos.config import StoreConfig
from tests.conftest import wait_until
from tests.pos import COFFEE, log_in, log_in_at

DRAWER = "device.drawer-1"


@asynccontextmanager
async def running_edge(config: StoreConfig, http: httpx.AsyncClient) -> AsyncIterator[Any]:
    """A running edge whose till-1 drawer (on the receipt printer) is up."""
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, config)
        await log_in(http, edge.url)  # alice: devices are behind the till login too

        async def drawer_ready() -> bool:
            devices = (await http.get(f"{edge.url}/api/devices")).json()
            return any(d["device"] == "drawer-1" and d["state"] == "ready" for d in devices)
        await wait_until(drawer_ready)
        yield edge
        nursery.cancel_scope.cancel()


async def pulses_taken(edge: Any) -> float:
    """Drawer pulses drawer-1's actor has handled so far: asked after every pulse told to it before."""
    await edge.tree.ask(DRAWER, "report", "ready", "through printer receipt-printer")  # changes nothing
    return sum(REGISTRY.get_sample_value("novapos_edge_drawer_kicks_total",
                                         {"device": "drawer-1", "result": result}) or 0.0
               for result in ("opened", "failed"))


def recoveries() -> float:
    return REGISTRY.get_sample_value("novapos_edge_drawer_recoveries_total", {"till": "till-1"}) or 0.0


async def recovered_to(count: float) -> None:
    """Wait until the till has heard its drawer confirm `count` recoveries in all."""
    async def reached() -> bool:
        return recoveries() == count
    await wait_until(reached)


async def paid_cart(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    await log_in_at(http, f"{url}", "alice")
    assert (await http.post(f"{url}/lines", json={"barcode": COFFEE})).status_code == 200
    response = await http.post(f"{url}/tenders", json={"amount_minor": 500})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_commit_slower_than_the_till_keeps_the_cart_and_the_resend_opens_the_drawer_once(
        store_config: StoreConfig, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(till_actor, "COMMIT_TIMEOUT_S", 0.3)  # the outbox waits up to 5 s for the lock
    async with running_edge(store_config, http) as edge:
        url = f"{edge.url}/api/tills/till-1"
        paid = await paid_cart(http, url)
        pulses = await pulses_taken(edge)
        lock = sqlite3.connect(store_config.state_dir / local_db.FILE_NAME, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            response = await http.post(f"{url}/complete", json={"cart": paid["cart"]})
            assert response.status_code == 409 and "being saved: send complete again" in response.json()["error"]
            held = (await http.get(url)).json()
            assert (held["cart"], held["lines"], held["tendered"], held["stage"]) == \
                (paid["cart"], paid["lines"], paid["tendered"], "saving")
            response = await http.post(f"{url}/lines", json={"barcode": COFFEE})
            assert response.status_code == 409 and "being saved" in response.json()["error"]
        finally:
            lock.execute("COMMIT")  # the outbox's commit, waiting on the lock, lands now
            lock.close()
        assert await edge.tree.ask("outbox", "depth") == 1
        assert await pulses_taken(edge) == pulses  # the commit landed, and nobody knows yet

        receipt = (await http.post(f"{url}/complete", json={"cart": paid["cart"]})).json()
        assert receipt["seq"] == 1 and receipt["cart"] == paid["cart"] and receipt["change"]["minor"] == 1
        again = (await http.post(f"{url}/complete", json={"cart": paid["cart"]})).json()
        assert again["sale"] == receipt["sale"]
        assert await pulses_taken(edge) == pulses + 1  # the drawer opened for it, once
        after = (await http.get(url)).json()
        assert after["cart"] != paid["cart"] and after["lines"] == [] and after["drawer_owed"] is None
        assert await edge.tree.ask("outbox", "depth") == 1


def commit_as_the_till_would(config: StoreConfig, paid: dict[str, Any]) -> str:
    """Commit the paid cart's sale straight into the store's outbox: the file as a kill -9 right
    after the sale's commit leaves it (the till's saved state still holds the sold cart)."""
    catalog = LocalCatalog(catalog_path(config.state_dir), config.store, config.region)
    cart = Cart(config.currency, 50000, paid["cart"])
    for line in paid["lines"]:
        offer = catalog.offer(line["sku"], int(time.time() * 1000))
        assert isinstance(offer, Offer) and cart.add(offer, line["quantity"]) is None
    catalog.close()
    assert cart.tender_cash(paid["tendered"]["minor"]) is None
    body = cart.checkout("till-1", paid["session"]["id"], paid["session"]["cashier"])
    assert isinstance(body, dict)
    outbox = Outbox(config.state_dir / local_db.FILE_NAME, config.tenant, config.store)
    try:
        return str(outbox.append("sale.completed", 3, body, print_on="receipt-printer", key=cart.id).id)
    finally:
        outbox.close()


@pytest.mark.parametrize("recovered_by", ["resent completion", "the page's drawer button"])
async def test_a_drawer_pulse_lost_to_a_kill_9_opens_once_as_a_recorded_recovery(
        store_config: StoreConfig, http: httpx.AsyncClient, recovered_by: str) -> None:
    async with running_edge(store_config, http) as edge:
        paid = await paid_cart(http, f"{edge.url}/api/tills/till-1")
    sale = commit_as_the_till_would(store_config, paid)
    recovered = recoveries()
    async with running_edge(store_config, http) as edge:
        url = f"{edge.url}/api/tills/till-1"
        pulses = await pulses_taken(edge)
        state = (await http.get(url)).json()
        assert state["cart"] != paid["cart"] and state["drawer_owed"] == sale
        if recovered_by == "resent completion":
            receipt = (await http.post(f"{url}/complete", json={"cart": paid["cart"]})).json()
            assert receipt["sale"] == sale
        else:  # what the page's "Open drawer for the last sale" button sends
            opened = await http.post(f"{url}/drawer", json={"sale": sale})
            assert opened.status_code == 200 and opened.json()["drawer_owed"] is None
        assert (await http.post(f"{url}/complete", json={"cart": paid["cart"]})).json()["sale"] == sale
        second = await http.post(f"{url}/drawer", json={"sale": sale})
        assert second.status_code == 409 and "no drawer opening is owed" in second.json()["error"]
        assert await pulses_taken(edge) == pulses + 1
        await recovered_to(recovered + 1)
        assert (await http.get(url)).json()["drawer_owed"] is None
    async with running_edge(store_config, http) as edge:  # and it stays recovered across a restart
        assert (await http.get(f"{edge.url}/api/tills/till-1")).json()["drawer_owed"] is None


async def test_a_pulse_its_drawer_never_confirms_stays_owed_across_a_till_restart(
        store_config: StoreConfig, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The till clears the owed pulse only when the drawer actor says it sent the bytes: a drawer that
    takes the message and dies (a kill -9) before the printer pulsed it leaves the pulse owed."""
    monkeypatch.setattr(DrawerDevice, "kick", lambda self, *args, **kwargs: None)  # takes the pulse, never sends it
    monkeypatch.setattr(till_actor, "PULSE_CONFIRM_S", 0.3)
    async with running_edge(store_config, http) as edge:
        url = f"{edge.url}/api/tills/till-1"
        paid = await paid_cart(http, url)
        receipt = (await http.post(f"{url}/complete", json={"cart": paid["cart"]})).json()
        await edge.tree.ask(DRAWER, "report", "ready", "through printer receipt-printer")  # it has had the pulse

        async def offered() -> bool:  # the answer is overdue: the cashier may open it (POST .../drawer)
            return bool((await http.get(url)).json()["drawer_owed"] == receipt["sale"])
        await wait_until(offered)
        restarts = edge.tree.restarts
        await trio.to_thread.run_sync(lambda: edge.tree.registry.get("till.till-1").stop(block=True))

        async def restarted() -> bool:
            return edge.tree.restarts > restarts
        await wait_until(restarted)
        state = (await http.get(url)).json()
        assert state["drawer_owed"] == receipt["sale"] and state["cart"] != paid["cart"]


async def test_a_pulse_its_printer_could_not_send_is_offered_at_once_and_opens_once_later(
        store_config: StoreConfig, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drawer tells the till when its printer did not pulse it: the cashier hears of it and the
    page offers the opening straight away, without waiting for a restart."""
    refusing = [True]
    pulse = PrinterDevice.kick_drawer
    monkeypatch.setattr(PrinterDevice, "kick_drawer", lambda self, pin: False if refusing[0] else pulse(self, pin))
    async with running_edge(store_config, http) as edge:
        url = f"{edge.url}/api/tills/till-1"
        paid = await paid_cart(http, url)
        receipt = (await http.post(f"{url}/complete", json={"cart": paid["cart"]})).json()

        async def offered() -> bool:
            return bool((await http.get(url)).json()["drawer_owed"] == receipt["sale"])
        await wait_until(offered)
        refusing[0] = False  # the printer is back
        recovered = recoveries()
        assert (await edge.tree.ask("till.till-1", "open_drawer_for_sale", receipt["sale"]))["drawer_owed"] is None
        await recovered_to(recovered + 1)
        assert (await http.get(url)).json()["drawer_owed"] is None
        again = await edge.tree.ask("till.till-1", "open_drawer_for_sale", receipt["sale"])
        assert isinstance(again, Rejected) and "no drawer opening is owed" in again.message
