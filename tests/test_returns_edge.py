"""Returns and exchanges at one store, over real HTTP, against the store's real SQLite journal: a line is never
refunded twice (two tills racing included), the refund is the line's pro-rata share, the policy holds."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import trio

from actors.storage.db import FILE_NAME
from edge.app import run_edge
from mocks.network_printer import MockNetworkPrinter
from mocks.payment_terminal import PaymentTerminalMock
from novapos.config import StoreConfig
from novapos.config.devices import DeviceRule
from novapos.config.returns import ReturnsPolicy
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import printer_only, wait_until
from tests.edges import running_edge
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in, sell


@pytest.fixture
async def edge(store_config: StoreConfig) -> AsyncIterator[Any]:
    async with running_edge(store_config) as running:
        yield running


def returnable(config: StoreConfig, order: str) -> list[int]:
    with sqlite3.connect(config.state_dir / FILE_NAME) as db:
        return [row[0] for row in db.execute(
            "SELECT returnable FROM store_sale_lines WHERE order_id = ? ORDER BY line_no", (order,))]


async def start_return(http: httpx.AsyncClient, base: str, order: str, till: str = "till-1") -> httpx.Response:
    return await http.post(f"{base}/api/tills/{till}/returns", json={"order": order, "override": MANAGER_OVERRIDE})


async def take(http: httpx.AsyncClient, base: str, line: int, quantity: int, till: str = "till-1",
               condition: str = "resaleable") -> httpx.Response:
    return await http.post(f"{base}/api/tills/{till}/returns/lines", json={
        "original_line": line, "quantity": quantity, "condition": condition, "override": MANAGER_OVERRIDE})


async def complete(http: httpx.AsyncClient, base: str, till: str = "till-1") -> httpx.Response:
    cart = (await http.get(f"{base}/api/tills/{till}")).json()["cart"]
    return await http.post(f"{base}/api/tills/{till}/complete", json={"cart": cart})


async def test_a_return_with_its_receipt_refunds_cash_pro_rata_and_only_once(
        edge: Any, store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    sale = await sell(http, edge.url, [(COFFEE, 3), (MILK, 1)])
    order = sale["sale"]
    assert returnable(store_config, order) == [3, 1]
    # the receipt's QR text finds the sale, with what is still returnable
    found = (await http.get(f"{edge.url}/api/tills/till-1/returns/lookup",
                            params={"order": f"novapos:order:{order}"})).json()
    assert [(line["line_no"], line["sku"], line["returnable"]) for line in found["lines"]] == [
        (1, sale["lines"][0]["sku"], 3), (2, sale["lines"][1]["sku"], 1)]

    state = (await start_return(http, edge.url, order)).json()
    assert state["mode"] == "return" and state["original"]["order"] == order
    state = (await take(http, edge.url, 1, 2)).json()
    assert state["refund"]["minor"] == 998 and state["total"]["minor"] == -998 and state["refund_to"] == "cash"
    response = await complete(http, edge.url)
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["refunds"][0]["method"] == "cash" and receipt["refunds"][0]["amount"]["minor"] == 998
    assert receipt["original"] == {"order": order, "store": store_config.store}
    assert returnable(store_config, order) == [1, 1]
    assert (await http.get(f"{edge.url}/api/tills/till-1")).json()["mode"] == "sale"

    # the third coffee may still come back; a fourth may not
    assert (await start_return(http, edge.url, order)).status_code == 200
    response = await take(http, edge.url, 1, 2)
    assert response.status_code == 409 and "only 1 of 3 may still be returned" in response.json()["error"]
    assert (await take(http, edge.url, 1, 1)).status_code == 200
    receipt = (await complete(http, edge.url)).json()
    assert receipt["returned"][0]["amount"]["minor"] == 499  # 3 x 4.99: the two returns sum to the line exactly
    assert returnable(store_config, order) == [0, 1]


async def test_two_tills_racing_for_the_last_unit_refund_it_once(
        edge: Any, store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    order = (await sell(http, edge.url, [(COFFEE, 1)]))["sale"]
    await log_in(http, edge.url, "till-2", "bob")
    for till in ("till-1", "till-2"):  # both tills see the unit as returnable and take it back
        assert (await start_return(http, edge.url, order, till)).status_code == 200
        assert (await take(http, edge.url, 1, 1, till)).status_code == 200
    answers: dict[str, httpx.Response] = {}

    async def settle(till: str) -> None:
        answers[till] = await complete(http, edge.url, till)
    async with trio.open_nursery() as nursery:
        for till in ("till-1", "till-2"):
            nursery.start_soon(settle, till)
    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [200, 409], {till: answer.text for till, answer in answers.items()}
    refused = next(answer for answer in answers.values() if answer.status_code == 409)
    assert "only 0 of 1 may still be returned" in refused.json()["error"]
    assert returnable(store_config, order) == [0]
    with sqlite3.connect(store_config.state_dir / FILE_NAME) as db:
        (returns,) = db.execute("SELECT count(*) FROM outbox WHERE subject LIKE '%return_completed'").fetchone()
    assert returns <= 1  # the refused one wrote nothing (the other may already be forwarded)


async def _printed(printer: MockNetworkPrinter, marker: str) -> str | None:
    return next((text for text in printer.receipts if marker in text), None)


async def test_an_exchange_nets_in_one_event_and_one_receipt(
        edge: Any, store_config: StoreConfig, http: httpx.AsyncClient, printer: MockNetworkPrinter) -> None:
    order = (await sell(http, edge.url, [(MILK, 2)]))["sale"]
    assert (await start_return(http, edge.url, order)).status_code == 200
    assert (await take(http, edge.url, 1, 1)).status_code == 200
    state = (await http.post(f"{edge.url}/api/tills/till-1/lines", json={"barcode": COFFEE})).json()
    assert state["total"]["minor"] == 499 - 129 and state["due"]["minor"] == 370
    response = await complete(http, edge.url)
    assert response.status_code == 409 and "still due" in response.json()["error"]
    response = await http.post(f"{edge.url}/api/tills/till-1/tenders", json={"method": "cash", "amount_minor": 500})
    assert response.status_code == 200, response.text
    receipt = (await complete(http, edge.url)).json()
    assert receipt["total"]["minor"] == 370 and receipt["change"]["minor"] == 130 and receipt["refunds"] == []
    assert len(receipt["lines"]) == 1 and receipt["lines"][0]["amount"]["minor"] == 499
    printed = await wait_until(lambda: _printed(printer, f"EXCHANGE #{receipt['seq']}\n"))
    assert "1 x " in printed and "-1.29" in printed and "TOTAL TO PAY" in printed and receipt["sale"] in printed
    assert sum(f"EXCHANGE #{receipt['seq']}\n" in text for text in printer.receipts) == 1  # one receipt for both
    # the new line is itself returnable, under the return's id
    assert returnable(store_config, receipt["sale"]) == [1]
    assert returnable(store_config, order) == [1]


async def test_unknown_order_and_bad_requests_say_why_and_change_nothing(
        edge: Any, store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    await log_in(http, edge.url)
    before = (await http.get(f"{edge.url}/api/tills/till-1")).json()
    unknown = "0190a5b0-0000-7000-8000-000000000000"
    response = await http.get(f"{edge.url}/api/tills/till-1/returns/lookup", params={"order": unknown})
    assert response.status_code == 404 and "not made at this store" in response.json()["error"]
    for hostile in ("", "\x00", "x" * 10_000, "novapos:order:", "novapos:order:../../etc", "\u202e" + unknown,
                    unknown + "\n2026 INFO forged"):
        response = await http.get(f"{edge.url}/api/tills/till-1/returns/lookup", params={"order": hostile})
        assert response.status_code == 422 and "order must be" in response.json()["error"], (hostile, response.text)
    response = await http.get(f"{edge.url}/api/tills/till-1/returns/lookup")
    assert response.status_code == 422 and "order must be" in response.json()["error"]
    for body, status, says in [
        ({"order": "nope", "override": MANAGER_OVERRIDE}, 422, "order must be"),  # alice, a cashier: an override
        ({"no_receipt": True, "override": MANAGER_OVERRIDE}, 422, "reason must say why"),
        ({"no_receipt": True, "reason": "lost it"}, 403, "ask one to approve with their PIN"),
        ({"no_receipt": "yes", "order": unknown, "override": MANAGER_OVERRIDE}, 422, "no_receipt must be true or false"),
    ]:
        response = await http.post(f"{edge.url}/api/tills/till-1/returns", json=body)
        assert response.status_code == status and says in response.json()["error"], (body, response.text)
    response = await take(http, edge.url, 1, 1)
    assert response.status_code == 409 and "no return open" in response.json()["error"]
    assert (await http.get(f"{edge.url}/api/tills/till-1")).json() == before


async def test_no_receipt_return_needs_a_manager_and_is_audited(
        edge: Any, store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    await log_in(http, edge.url)
    response = await http.post(f"{edge.url}/api/tills/till-1/returns", json={
        "no_receipt": True, "reason": "gift, no receipt", "override": MANAGER_OVERRIDE})
    assert response.status_code == 200, response.text
    response = await http.post(f"{edge.url}/api/tills/till-1/returns/lines", json={
        "barcode": COFFEE, "quantity": 1, "condition": "damaged"})
    assert response.status_code == 200, response.text
    receipt = (await complete(http, edge.url)).json()
    assert "original" not in receipt and receipt["approver"] == "manager"
    assert receipt["returned"][0]["restock"] is False and receipt["refunds"][0]["amount"]["minor"] == 499
    with sqlite3.connect(store_config.state_dir / FILE_NAME) as db:
        audited = [msgpack.unpackb(row[0])["body"] for row in db.execute(
            "SELECT payload FROM outbox WHERE subject LIKE '%audit_recorded' ORDER BY seq")]
    assert [(a["action"], a["actor"], a.get("approver"), a["target"]) for a in audited] == [
        ("till.refund", "alice", "manager", receipt["sale"]), ("till.return_no_receipt", "alice", "manager",
                                                               receipt["sale"])]


async def test_a_sale_older_than_the_policy_allows_is_refused(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    config = dataclasses.replace(store_config, returns=ReturnsPolicy(days=0))
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, config)
        order = (await sell(http, edge.url, [(MILK, 1)]))["sale"]
        await trio.sleep(0.01)
        response = await start_return(http, edge.url, order)
        assert response.status_code == 409 and "more than the 0 days" in response.json()["error"]
        assert (await http.get(f"{edge.url}/api/tills/till-1")).json()["mode"] == "sale"
        nursery.cancel_scope.cancel()


async def _ready(http: httpx.AsyncClient, base: str, device: str) -> bool:
    devices = (await http.get(f"{base}/api/devices")).json()
    return any(item["device"] == device and item["state"] == "ready" for item in devices)


async def test_a_card_sale_is_refunded_to_its_card_through_the_terminal(
        store_config: StoreConfig, http: httpx.AsyncClient, printer: MockNetworkPrinter, tmp_path: Path) -> None:
    with PaymentTerminalMock(tmp_path / "terminal", processing_time=0.05) as terminal:
        rules = (*printer_only(printer.port).rules,
                 DeviceRule("terminal-1", "serial-terminal", path=str(terminal.path), till="till-1"))
        config = dataclasses.replace(store_config, devices=dataclasses.replace(store_config.devices, rules=rules))
        async with trio.open_nursery() as nursery:
            edge = await nursery.start(run_edge, config)
            order = (await sell(http, edge.url, [(COFFEE, 2)]))["sale"]
            # until the till takes cards (the card work), the journal's tender row is made the card payment a
            # v3 sale records: method card, with the acquirer's reference
            with sqlite3.connect(config.state_dir / FILE_NAME) as db:
                db.execute("UPDATE store_sale_tenders SET method = 'card', reference = 'PAY0001' WHERE order_id = ?",
                           (order,))
            await wait_until(lambda: _ready(http, edge.url, "terminal-1"))
            assert (await start_return(http, edge.url, order)).status_code == 200
            state = (await take(http, edge.url, 1, 1)).json()
            assert state["refund_to"] == "card" and state["refund"]["minor"] == 499
            response = await complete(http, edge.url)
            assert response.status_code == 200, response.text
            [refund] = response.json()["refunds"]
            assert refund["method"] == "card" and refund["amount"]["minor"] == 499
            assert refund["card"]["original_reference"] == "PAY0001"
            [reference] = terminal.references
            assert reference == refund["card"]["reference"]
            seen = terminal.status_of(reference)
            assert (seen.stage, seen.amount_minor, seen.currency) == ("approved", 499, "EUR")
            assert (await http.get(f"{edge.url}/api/tills/till-1")).json()["drawer_owed"] is None  # no cash moved
            nursery.cancel_scope.cancel()


async def test_offline_a_local_sale_is_returned_and_another_stores_order_gets_a_sentence(
        store_config: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        await trio.to_thread.run_sync(nats_server.stop)
        order = (await sell(http, edge.url, [(COFFEE, 2)]))["sale"]
        started = time.perf_counter()
        assert (await start_return(http, edge.url, order)).status_code == 200
        assert (await take(http, edge.url, 1, 2)).status_code == 200
        receipt = (await complete(http, edge.url)).json()
        assert receipt["refunds"][0]["amount"]["minor"] == 998 and returnable(store_config, order) == [0]
        assert time.perf_counter() - started < 5.0, "a local return waited on the missing NATS"
        response = await http.get(f"{edge.url}/api/tills/till-1/returns/lookup",
                                  params={"order": "0190a5b0-0000-7000-8000-000000000000"})
        assert response.status_code == 404
        assert "the hub cannot be asked now" in response.json()["error"]
        assert await edge.tree.ask("outbox", "depth") >= 3  # sale, return and its audit record wait for the hub
        nursery.cancel_scope.cancel()


async def test_a_unit_another_till_refunded_meanwhile_is_refused_before_the_card_is_refunded(
        store_config: StoreConfig, http: httpx.AsyncClient, printer: MockNetworkPrinter, tmp_path: Path) -> None:
    with PaymentTerminalMock(tmp_path / "t1", processing_time=0.05) as one, \
            PaymentTerminalMock(tmp_path / "t2", processing_time=0.05) as two:
        rules = (*printer_only(printer.port).rules,
                 DeviceRule("terminal-1", "serial-terminal", path=str(one.path), till="till-1"),
                 DeviceRule("terminal-2", "serial-terminal", path=str(two.path), till="till-2"))
        config = dataclasses.replace(store_config, devices=dataclasses.replace(store_config.devices, rules=rules))
        async with trio.open_nursery() as nursery:
            edge = await nursery.start(run_edge, config)
            order = (await sell(http, edge.url, [(COFFEE, 1)]))["sale"]
            with sqlite3.connect(config.state_dir / FILE_NAME) as db:
                db.execute("UPDATE store_sale_tenders SET method = 'card', reference = 'PAY0002' WHERE order_id = ?",
                           (order,))
            await log_in(http, edge.url, "till-2", "bob")
            for till in ("till-1", "till-2"):
                await wait_until(lambda till=till: _ready(http, edge.url, f"terminal-{till[-1]}"))  # type: ignore[misc]
                assert (await start_return(http, edge.url, order, till)).status_code == 200
                assert (await take(http, edge.url, 1, 1, till)).status_code == 200
            assert (await complete(http, edge.url, "till-2")).status_code == 200
            response = await complete(http, edge.url, "till-1")
            assert response.status_code == 409 and "only 0 of 1" in response.json()["error"]
            assert len(two.references) == 1 and one.references == []  # the second card was never refunded
            response = await http.delete(f"{edge.url}/api/tills/till-1/cart")  # nothing moved: it may be cancelled
            assert response.status_code == 200 and response.json()["mode"] == "sale"
            nursery.cancel_scope.cancel()


async def test_a_restarted_till_carries_on_with_its_return(
        edge: Any, store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    order = (await sell(http, edge.url, [(MILK, 2)]))["sale"]
    assert (await start_return(http, edge.url, order)).status_code == 200
    assert (await take(http, edge.url, 1, 1, condition="damaged")).status_code == 200
    await http.post(f"{edge.url}/api/tills/till-1/lines", json={"barcode": COFFEE})
    before = (await http.post(f"{edge.url}/api/tills/till-1/tenders",
                              json={"method": "cash", "amount_minor": 500})).json()
    restarts = edge.tree.restarts
    await trio.to_thread.run_sync(lambda: edge.tree.registry.get("till.till-1").stop(block=True))

    async def restarted() -> bool:
        return bool(edge.tree.restarts > restarts)
    await wait_until(restarted)
    after = await wait_until(lambda: _state_if_up(http, edge.url))
    assert after == before and after["mode"] == "return" and after["tendered"]["minor"] == 500
    receipt = (await complete(http, edge.url)).json()
    assert receipt["returned"][0]["condition"] == "damaged" and receipt["change"]["minor"] == 130


async def _state_if_up(http: httpx.AsyncClient, base: str) -> dict[str, Any] | None:
    response = await http.get(f"{base}/api/tills/till-1")
    return dict(response.json()) if response.status_code == 200 else None


async def test_the_policy_keeps_a_restocking_fee_and_refuses_a_condition_it_does_not_take(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    policy = ReturnsPolicy(conditions=("damaged",), restocking_fee_bp={"resaleable": 0, "damaged": 1000},
                           restock_damaged=True)
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, dataclasses.replace(store_config, returns=policy))
        order = (await sell(http, edge.url, [(COFFEE, 1)]))["sale"]
        assert (await start_return(http, edge.url, order)).status_code == 200
        response = await take(http, edge.url, 1, 1)
        assert response.status_code == 409 and "does not take items back resaleable" in response.json()["error"]
        state = (await take(http, edge.url, 1, 1, condition="damaged")).json()
        assert state["restocking_fee"]["minor"] == 50 and state["refund"]["minor"] == 449
        receipt = (await complete(http, edge.url)).json()
        assert receipt["restocking_fee"]["minor"] == 50 and receipt["refunds"][0]["amount"]["minor"] == 449
        assert receipt["returned"][0]["restock"] is True  # this store puts damaged items back on sale
        nursery.cancel_scope.cancel()
