"""Card tenders at a real edge, against the simulated terminal on a real pseudo-terminal: approved, declined,
cancelled by the customer or at the till, timed out, split with cash, voided and reversed, a terminal
unplugged mid-payment; and the door's refusals. Every card payment is counted at the terminal: a lost answer
must never become a second payment."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import trio

from actors.storage import db as local_db
from edge.app import run_edge
from mocks.payment_terminal import MASKED_CARDS, PaymentTerminalMock
from novapos.config import DeviceRule, StoreConfig
from novapos.config.terminal import TerminalSettings
from tests.conftest import wait_until
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in
from tests.test_devices import live_events

TILL = "till-1"


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[PaymentTerminalMock]:
    with PaymentTerminalMock(tmp_path / "terminal-1", processing_time=0.3) as mock:
        yield mock


@pytest.fixture
async def edge(store_config: StoreConfig, terminal: PaymentTerminalMock) -> AsyncIterator[Any]:
    rules = (*store_config.devices.rules, DeviceRule("terminal-1", "serial-terminal", path=str(terminal.path), till=TILL))
    config = replace(store_config, devices=replace(store_config.devices, rules=rules),
                     terminal=TerminalSettings(timeout_s=2, poll_ms=50))
    async with trio.open_nursery() as nursery:
        running = await nursery.start(run_edge, config)
        async with httpx.AsyncClient(timeout=10) as http:
            await log_in(http, running.url, TILL)  # devices are behind the till login
            await wait_until(lambda: _device_ready(http, running.url, "terminal-1"))
        yield running
        nursery.cancel_scope.cancel()


async def _device_ready(http: httpx.AsyncClient, url: str, name: str) -> bool:
    devices = (await http.get(f"{url}/api/devices")).json()
    return any(device["device"] == name and device["state"] == "ready" for device in devices)


class Till:
    """The web till's calls for one till, over real HTTP."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url, self.base = http, f"{url}/api/tills/{TILL}", url

    async def basket(self, *items: tuple[str, int]) -> dict[str, Any]:
        await log_in(self.http, self.base, TILL)
        for barcode, quantity in items:
            response = await self.http.post(f"{self.url}/lines", json={"barcode": barcode, "quantity": quantity})
            assert response.status_code == 200, response.text
        return dict(response.json())

    async def card(self, amount: int, tender_id: str | None = None) -> httpx.Response:
        return await self.http.post(f"{self.url}/tenders", json={"method": "card", "amount_minor": amount,
                                                                  "id": tender_id or str(uuid.uuid4())})

    async def state(self) -> dict[str, Any]:
        return dict((await self.http.get(self.url)).json())

    async def tender_when(self, tender_id: str, check: Callable[[dict[str, Any]], bool],
                          timeout: float = 10) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            tender = next(t for t in (await self.state())["tenders"] if t["id"] == tender_id)
            return tender if check(tender) else None
        return dict(await wait_until(found, timeout=timeout, interval=0.02))

    async def complete(self, cart: str) -> httpx.Response:
        return await self.http.post(f"{self.url}/complete", json={"cart": cart})


@pytest.fixture
async def till(edge: Any, http: httpx.AsyncClient) -> Till:
    return Till(http, edge.url)


def outbox(state_dir: Path) -> list[dict[str, Any]]:
    """Every event the edge committed, oldest first: {subject, body}."""
    db = sqlite3.connect(state_dir / local_db.FILE_NAME)
    try:
        rows = db.execute("SELECT subject, payload FROM outbox ORDER BY seq").fetchall()
    finally:
        db.close()
    return [{"subject": subject, **msgpack.unpackb(payload)} for subject, payload in rows]


def stage_is(stage: str) -> Callable[[dict[str, Any]], bool]:
    return lambda tender: tender["state"] == "pending" and tender["stage"] == stage


def state_is(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda tender: tender["state"] == state


async def test_an_approved_card_shows_its_stages_and_completes_the_sale_once(
        till: Till, terminal: PaymentTerminalMock, store_config: StoreConfig) -> None:
    cart = await till.basket((COFFEE, 2), (MILK, 1))
    due = cart["due"]["minor"]
    tender_id = str(uuid.uuid4())
    assert (await till.card(due, tender_id)).status_code == 200
    waiting = await till.tender_when(tender_id, stage_is("waiting_for_card"))
    assert waiting["message"] == "insert or tap card"
    again = await till.card(due, tender_id)  # a double tap on Card: the same payment, never a second
    assert again.status_code == 200 and len(again.json()["tenders"]) == 1
    refused = await till.complete(cart["cart"])
    assert refused.status_code == 409 and "card payment is in progress" in refused.json()["error"]

    await trio.to_thread.run_sync(lambda: terminal.present_card(scheme="MASTERCARD", signature=True))
    assert (await till.tender_when(tender_id, lambda t: t["state"] != "pending" or t["stage"] == "processing")
            )["message"] in ("processing", "APPROVED")
    approved = await till.tender_when(tender_id, state_is("approved"))
    assert approved["card"] == {"scheme": "MASTERCARD", "masked": MASKED_CARDS["MASTERCARD"],
                                "auth_code": approved["card"]["auth_code"]} and approved["card"]["auth_code"]
    state = await till.state()
    assert (state["paid"]["minor"], state["due"]["minor"], state["change"]["minor"]) == (due, 0, 0)

    receipt = (await till.complete(cart["cart"])).json()
    assert receipt["tenders"] == [{"id": tender_id, "method": "card", "amount": {"minor": due, "currency": "EUR"},
                                   "card": {"reference": uuid.UUID(tender_id).hex, "scheme": "MASTERCARD",
                                            "masked": MASKED_CARDS["MASTERCARD"], "terminal": "terminal-1",
                                            "auth_code": approved["card"]["auth_code"], "signature": True}}]
    assert receipt["change"]["minor"] == 0
    assert (await till.complete(cart["cart"])).json()["sale"] == receipt["sale"]  # a resend: the same sale
    assert terminal.references == [uuid.UUID(tender_id).hex]  # one payment at the terminal
    sales = [event for event in outbox(store_config.state_dir) if event["body"].get("tenders")]
    assert len(sales) == 1 and sales[0]["body"]["tenders"][0]["card"]["auth_code"] == approved["card"]["auth_code"]


async def test_a_declined_card_pays_nothing_and_cash_then_completes(till: Till, terminal: PaymentTerminalMock) -> None:
    cart = await till.basket((COFFEE, 1))
    tender_id = str(uuid.uuid4())
    await till.card(499, tender_id)
    await till.tender_when(tender_id, stage_is("waiting_for_card"))
    await trio.to_thread.run_sync(lambda: terminal.present_card(approve=False))
    declined = await till.tender_when(tender_id, state_is("declined"))
    assert declined["message"] == "declined: DECLINED BY ISSUER"
    state = await till.state()
    assert (state["paid"]["minor"], state["due"]["minor"], state["stage"]) == (0, 499, "scanning")
    assert (await till.complete(cart["cart"])).status_code == 409
    assert (await till.http.post(f"{till.url}/tenders", json={"method": "cash", "amount_minor": 500})).status_code == 200
    receipt = (await till.complete(cart["cart"])).json()
    assert [t["method"] for t in receipt["tenders"]] == ["cash"] and receipt["change"]["minor"] == 1


async def test_the_customer_or_the_cashier_cancels_and_a_forgotten_payment_times_out(
        till: Till, terminal: PaymentTerminalMock) -> None:
    await till.basket((COFFEE, 1))
    by_customer = str(uuid.uuid4())
    await till.card(499, by_customer)
    await till.tender_when(by_customer, stage_is("waiting_for_card"))
    await trio.to_thread.run_sync(terminal.customer_cancel)
    assert (await till.tender_when(by_customer, state_is("cancelled")))["message"] == "cancelled by the customer"

    at_till = str(uuid.uuid4())
    await till.card(499, at_till)
    await till.tender_when(at_till, stage_is("waiting_for_card"))
    assert (await till.http.post(f"{till.url}/tenders/{at_till}/cancel", json={})).status_code == 200
    assert (await till.tender_when(at_till, state_is("cancelled")))["message"] == "cancelled at the till"
    assert terminal.status_of(uuid.UUID(at_till).hex).message == "CANCELLED BY HOST"

    forgotten = str(uuid.uuid4())
    await till.card(499, forgotten)  # nobody presents a card: the till's timeout_s (2 s here) cancels it
    timed_out = await till.tender_when(forgotten, state_is("cancelled"), timeout=8)
    assert timed_out["message"] == "timed out: no card was presented"
    assert terminal.status_of(uuid.UUID(forgotten).hex).stage == "cancelled"
    state = await till.state()
    assert (state["paid"]["minor"], state["due"]["minor"]) == (0, 499)
    assert [t["state"] for t in state["tenders"]] == ["cancelled"] * 3


async def test_a_split_tender_of_cash_and_two_cards_shows_the_balance_and_completes(
        till: Till, terminal: PaymentTerminalMock) -> None:
    cart = await till.basket((COFFEE, 2), (MILK, 1))  # 11.27 EUR
    cash = await till.http.post(f"{till.url}/tenders", json={"method": "cash", "amount_minor": 500})
    assert cash.json()["due"]["minor"] == 627
    over = await till.card(628)
    assert over.status_code == 422 and "gives no change" in over.json()["error"]
    cards = []
    for amount, scheme in ((300, "VISA"), (327, "AMEX")):
        tender_id = str(uuid.uuid4())
        cards.append(tender_id)
        assert (await till.card(amount, tender_id)).status_code == 200
        await till.tender_when(tender_id, stage_is("waiting_for_card"))
        await trio.to_thread.run_sync(lambda scheme=scheme: terminal.present_card(scheme=scheme))  # type: ignore[misc]
        await till.tender_when(tender_id, state_is("approved"))
        state = await till.state()
        assert state["due"]["minor"] == 627 - sum(t["amount"]["minor"] for t in state["tenders"] if t["method"] == "card")
    receipt = (await till.complete(cart["cart"])).json()
    assert [(t["method"], t["amount"]["minor"], t.get("card", {}).get("scheme")) for t in receipt["tenders"]] == [
        ("cash", 500, None), ("card", 300, "VISA"), ("card", 327, "AMEX")]
    assert receipt["change"]["minor"] == 0 and receipt["total"]["minor"] == 1127
    assert terminal.references == [uuid.UUID(tender_id).hex for tender_id in cards]


async def test_a_voided_sale_reverses_its_card_even_when_the_terminal_is_away_for_a_while(
        till: Till, terminal: PaymentTerminalMock, store_config: StoreConfig) -> None:
    await till.basket((COFFEE, 1))
    tender_id = str(uuid.uuid4())
    await till.card(499, tender_id)
    await till.tender_when(tender_id, stage_is("waiting_for_card"))
    await trio.to_thread.run_sync(terminal.present_card)
    await till.tender_when(tender_id, state_is("approved"))

    await trio.to_thread.run_sync(terminal.unplug)  # the reversal cannot reach the terminal: it stays owed
    voided = await till.http.request("DELETE", f"{till.url}/cart", json={"override": MANAGER_OVERRIDE})
    assert voided.status_code == 200, voided.text
    assert voided.json()["tenders"] == [] and [owed["id"] for owed in voided.json()["card_reversals"]] == [tender_id]
    await trio.sleep(1.0)
    assert terminal.voids == [] and len((await till.state())["card_reversals"]) == 1
    await trio.to_thread.run_sync(terminal.plug)
    await wait_until(lambda: _reversed(till), timeout=15)
    assert terminal.voids == [uuid.UUID(tender_id).hex]
    assert terminal.status_of(uuid.UUID(tender_id).hex).stage == "reversed"
    audits = [event["body"] for event in outbox(store_config.state_dir) if event["body"].get("action")]
    assert [(a["action"], a.get("approver"), a["actor"]) for a in audits] == [
        ("till.void", "manager", "alice"), ("till.card_reversed", "manager", "alice")]
    assert audits[1]["target"] == tender_id and audits[1]["details"]["amount_minor"] == 499


async def _reversed(till: Till) -> bool:
    return not (await till.state())["card_reversals"]


async def test_one_approved_card_given_back_alone_is_reversed(till: Till, terminal: PaymentTerminalMock) -> None:
    await till.basket((COFFEE, 1))
    tender_id = str(uuid.uuid4())
    await till.card(200, tender_id)
    await till.tender_when(tender_id, stage_is("waiting_for_card"))
    await trio.to_thread.run_sync(terminal.present_card)
    await till.tender_when(tender_id, state_is("approved"))
    pending = await till.http.request("DELETE", f"{till.url}/tenders/{uuid.uuid4()}",
                                      json={"override": MANAGER_OVERRIDE})
    assert pending.status_code == 404
    given_back = await till.http.request("DELETE", f"{till.url}/tenders/{tender_id}", json={"override": MANAGER_OVERRIDE})
    assert given_back.status_code == 200 and given_back.json()["due"]["minor"] == 499
    await wait_until(lambda: _reversed(till))
    assert terminal.voids == [uuid.UUID(tender_id).hex]


async def test_a_terminal_unplugged_mid_payment_is_asked_again_never_charged_twice(
        till: Till, terminal: PaymentTerminalMock) -> None:
    cart = await till.basket((MILK, 2))
    tender_id = str(uuid.uuid4())
    await till.card(258, tender_id)
    await till.tender_when(tender_id, stage_is("waiting_for_card"))
    await trio.to_thread.run_sync(terminal.present_card)
    await trio.to_thread.run_sync(terminal.unplug)  # the answer is lost: the issuer approves meanwhile
    lost = await till.tender_when(tender_id, stage_is("unreachable"))
    assert "not charged twice" in lost["message"]
    refused = await till.complete(cart["cart"])
    assert refused.status_code == 409  # an outcome not known is not a payment
    await trio.to_thread.run_sync(terminal.plug)
    await till.tender_when(tender_id, state_is("approved"), timeout=15)
    receipt = (await till.complete(cart["cart"])).json()
    assert receipt["tenders"][0]["card"]["reference"] == uuid.UUID(tender_id).hex
    assert terminal.references == [uuid.UUID(tender_id).hex]


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"method": "card", "amount_minor": 500}, 422, "at most what is due"),
    ({"method": "card", "amount_minor": -1}, 422, "amount_minor"),
    ({"method": "card", "amount_minor": "4.99"}, 422, "whole number"),
    ({"method": "card", "amount_minor": 100, "id": None}, 422, "needs its id"),
    ({"method": "card", "amount_minor": 100, "id": "not-a-uuid"}, 422, "id"),
    ({"method": "cash", "amount_minor": 499 + 50001}, 422, "a till gives back"),
    ({"method": "voucher", "amount_minor": 100}, 422, "use 'cash', 'card', 'qr', 'points' or 'gift_card'"),
])
async def test_bad_tenders_are_refused_and_change_nothing(
        till: Till, terminal: PaymentTerminalMock, body: dict[str, Any], status: int, says: str) -> None:
    await till.basket((COFFEE, 1))
    before = await till.state()
    if body["method"] == "card" and "id" not in body:
        body = {**body, "id": str(uuid.uuid4())}
    response = await till.http.post(f"{till.url}/tenders", json=body)
    assert response.status_code == status and says in response.json()["error"], response.text
    assert await till.state() == before
    assert terminal.references == []


async def test_the_web_till_hears_each_stage_as_it_happens(
        edge: Any, till: Till, terminal: PaymentTerminalMock, http: httpx.AsyncClient) -> None:
    await till.basket((COFFEE, 1))
    tender_id = str(uuid.uuid4())
    async with live_events(http, edge) as seen:
        await till.card(499, tender_id)
        await till.tender_when(tender_id, stage_is("waiting_for_card"))
        await trio.to_thread.run_sync(terminal.present_card)
        await till.tender_when(tender_id, state_is("approved"))
        await trio.sleep(0.2)
    heard = []
    for event in seen:
        for tender in event.get("state", {}).get("tenders", []) if event.get("type") == "till" else []:
            if tender["id"] == tender_id and (step := (tender["state"], tender["stage"])) not in heard:
                heard.append(step)
    assert heard == [("pending", "starting"), ("pending", "waiting_for_card"), ("pending", "processing"),
                     ("approved", None)]


async def test_a_payment_asked_of_an_unplugged_terminal_fails_once_status_says_it_never_started(
        till: Till, terminal: PaymentTerminalMock) -> None:
    cart = await till.basket((COFFEE, 1))
    await trio.to_thread.run_sync(terminal.unplug)
    tender_id = str(uuid.uuid4())
    await till.card(499, tender_id)
    await till.tender_when(tender_id, stage_is("unreachable"), timeout=15)
    await trio.to_thread.run_sync(terminal.plug)
    failed = await till.tender_when(tender_id, state_is("failed"), timeout=15)
    assert failed["message"] == "the terminal did not start the payment: nothing was charged, try again"
    assert terminal.references == []  # STATUS only: the PAY is never sent again under the old tender
    retry = str(uuid.uuid4())
    await till.card(499, retry)
    await till.tender_when(retry, stage_is("waiting_for_card"))
    await trio.to_thread.run_sync(terminal.present_card)
    await till.tender_when(retry, state_is("approved"))
    assert (await till.complete(cart["cart"])).status_code == 200
    assert terminal.references == [uuid.UUID(retry).hex]


async def test_the_returns_refund_path_refunds_once_per_refund_id(edge: Any, terminal: PaymentTerminalMock) -> None:
    refund_id = str(uuid.uuid4())
    first = await edge.tree.ask(f"till.{TILL}", "refund_to_card", 700, "0" * 32, refund_id, timeout=15)
    again = await edge.tree.ask(f"till.{TILL}", "refund_to_card", 700, "0" * 32, refund_id, timeout=15)
    assert first["answered"] and first["stage"] == "approved" and again == first
    assert terminal.references == [uuid.UUID(refund_id).hex]


async def test_a_till_actor_crashed_mid_payment_finds_the_approval_by_status(
        edge: Any, till: Till, terminal: PaymentTerminalMock) -> None:
    cart = await till.basket((COFFEE, 1))
    tender_id = str(uuid.uuid4())
    await till.card(499, tender_id)
    await till.tender_when(tender_id, stage_is("waiting_for_card"))
    restarts = edge.tree.restarts
    await trio.to_thread.run_sync(lambda: edge.tree.registry.get(f"till.{TILL}").stop(block=True))
    await trio.to_thread.run_sync(terminal.present_card)  # approved while the till is down

    async def restarted() -> bool:
        return bool(edge.tree.restarts > restarts)
    await wait_until(restarted)
    await till.tender_when(tender_id, state_is("approved"))
    assert (await till.complete(cart["cart"])).status_code == 200
    assert terminal.references == [uuid.UUID(tender_id).hex]
