"""Card payments from the till to the hub and the provider, end to end: a real edge with the simulated terminal on a
real pseudo-terminal, the hub on real NATS and PostgreSQL, and the acquirer simulator on a real socket (it learns the
terminal's online approvals as a real acquirer would).

- A split tender with a decline in the middle: cash, a declined card, an approved card complete the sale; the hub
  keeps both card attempts (failed, and captured by the capture service once the sale arrived).
- A refund to the original card through the hub (the provider refunds, no card at the till), then, with the hub
  away, one at the terminal with the card present, recorded on the same intent when the hub is back.
- Cards taken while the hub is away (the terminal stores them): authorized when their sale reaches the hub, one
  declined (test card 4000000000000002) surfacing as the store's follow-up and as an intent needing attention; with
  the hub back, a card over the offline limit is taken online.
- An abandoned sale: its approval reversed at the terminal and cancelled at the hub (pay_cancel) and the provider;
  an offline approval abandoned while the hub is away stops counting at once and is cancelled at the hub once it is
  back.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import trio

from edge.app import run_edge
from hub.app import run_hub
from mocks.acquirer import terminal_reporter
from mocks.payment_terminal import PaymentTerminalMock
from novapos.config import DeviceRule, HubConfig, StoreConfig
from novapos.config.hub import PaymentSettings
from novapos.config.terminal import TerminalSettings
from novapos.tls import Certificates
from novapos.wire.payments import payment_request_subject
from tests.acquirer_support import RunningAcquirer, running_acquirer
from tests.conftest import query, wait_until
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in
from tests.test_till_card import Till, _device_ready

TILL = "till-1"


@pytest.fixture
def acquirer() -> Iterator[RunningAcquirer]:
    with running_acquirer() as running:
        yield running


@pytest.fixture
def terminal(tmp_path: Path, acquirer: RunningAcquirer) -> Iterator[PaymentTerminalMock]:
    with PaymentTerminalMock(tmp_path / "terminal-1", processing_time=0.05,
                             report_approval=terminal_reporter(acquirer.url)) as mock:
        yield mock


def edge_config(store_config: StoreConfig, terminal: PaymentTerminalMock, offline_cards: bool) -> StoreConfig:
    rules = (*store_config.devices.rules, DeviceRule("terminal-1", "serial-terminal", path=str(terminal.path), till=TILL))
    return replace(store_config, devices=replace(store_config.devices, rules=rules),
                   terminal=TerminalSettings(timeout_s=5, poll_ms=50, offline_cards=offline_cards))


@pytest.fixture
def hub_with_provider(hub_config: HubConfig, acquirer: RunningAcquirer) -> HubConfig:
    return replace(hub_config, payments=PaymentSettings(gateway_url=acquirer.url, timeout_s=2, capture_window_s=3600))


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as opened:
        yield opened
        opened.cancel_scope.cancel()


async def start(nursery: trio.Nursery, runner: Any, config: Any) -> tuple[Any, trio.CancelScope]:
    """Run the edge or hub of `config` in `nursery` under a scope of its own (cancel it to stop just that one)."""
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[Any]) -> None:
        with scope:
            await runner(config, task_status=task_status)
    return await nursery.start(run), scope


async def open_till(http: httpx.AsyncClient, url: str) -> Till:
    await log_in(http, url, TILL)
    await wait_until(lambda: _device_ready(http, url, "terminal-1"))
    return Till(http, url)


async def card(till: Till, terminal: PaymentTerminalMock, amount: int, *, approve: bool = True,
               number: str | None = None, charged_minor: int | None = None) -> dict[str, Any]:
    """A card tender of `amount` the customer pays with `number` (the terminal's answer once it settled; a faulty
    terminal charges `charged_minor` instead)."""
    tender_id = str(uuid.uuid4())
    response = await till.card(amount, tender_id)
    assert response.status_code == 200, response.text

    async def waiting() -> bool:
        return any(terminal.status_of(ref).stage == "waiting_for_card" for ref in terminal.references)
    await wait_until(waiting, interval=0.02)
    terminal.present_card(approve=approve, number=number, charged_minor=charged_minor)
    return await till.tender_when(tender_id, lambda tender: tender["state"] != "pending")


async def intents(database_url: str, *tender_ids: str) -> dict[str, Any]:
    rows = await query(database_url, "SELECT * FROM payment_intents WHERE tender_id = ANY($1::text[])",
                       list(tender_ids))
    return {row["tender_id"]: row for row in rows}


async def intent_is(database_url: str, tender_id: str, state: str, **expected: Any) -> Any:
    async def settled() -> Any:
        row = (await intents(database_url, tender_id)).get(tender_id)
        if row is None or row["state"] != state or any(row[name] != value for name, value in expected.items()):
            return None
        return row
    return await wait_until(settled, timeout=30)


async def give_back(http: httpx.AsyncClient, base: str, order: str, line: int) -> dict[str, Any]:
    till = f"{base}/api/tills/{TILL}"
    started = await http.post(f"{till}/returns", json={"order": order, "override": MANAGER_OVERRIDE})
    assert started.status_code == 200, started.text
    taken = await http.post(f"{till}/returns/lines", json={"original_line": line, "quantity": 1})
    assert taken.status_code == 200, taken.text
    done = await http.post(f"{till}/complete", json={"cart": taken.json()["cart"]})
    assert done.status_code == 200, done.text
    return dict(done.json())


async def test_a_split_with_a_decline_in_the_middle_is_captured_and_refunded_to_the_original_card(
        store_config: StoreConfig, hub_with_provider: HubConfig, database_url: str, acquirer: RunningAcquirer,
        terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    hub, hub_scope = await start(nursery, run_hub, hub_with_provider)
    edge, _ = await start(nursery, run_edge, edge_config(store_config, terminal, offline_cards=False))
    till = await open_till(http, edge.url)
    basket = await till.basket((COFFEE, 2), (MILK, 1))  # 11.27
    cash = await http.post(f"{till.url}/tenders", json={"method": "cash", "amount_minor": 300})
    assert cash.status_code == 200, cash.text
    declined = await card(till, terminal, 400, approve=False, number="4000000000000002")
    assert declined["state"] == "declined"
    approved = await card(till, terminal, 827)
    assert approved["state"] == "approved"
    sale = await till.complete(basket["cart"])
    assert sale.status_code == 200, sale.text
    order = sale.json()["sale"]

    failed = await intent_is(database_url, declined["id"], "failed")
    captured = await intent_is(database_url, approved["id"], "captured", captured_minor=827)
    assert (failed["amount_minor"], failed["order_id"], failed["captured_minor"]) == (400, None, 0)
    assert (str(captured["order_id"]), captured["method"], captured["attention"]) == (order, "card_present", None)
    assert acquirer.payment(captured["provider_ref"])["captured_minor"] == 827

    online = await give_back(http, edge.url, order, 1)  # a coffee: 4.99 back to the card, through the provider
    assert [(r["method"], r["amount"]["minor"]) for r in online["refunds"]] == [("card", 499)]
    await intent_is(database_url, approved["id"], "captured", refunded_minor=499)
    references = terminal.references
    assert len(references) == 2  # the two payments: no refund at the terminal
    refunds = await query(database_url, "SELECT via, amount_minor FROM payment_refunds")
    assert [tuple(row) for row in refunds] == [("provider", 499)]

    hub_scope.cancel()  # the hub goes away: the next refund is made at the terminal, with the card present
    await trio.sleep(0.5)
    offline = await give_back(http, edge.url, order, 2)  # the milk: 1.29
    assert [(r["method"], r["amount"]["minor"]) for r in offline["refunds"]] == [("card", 129)]
    [refund_reference] = terminal.references[2:]
    assert terminal.status_of(refund_reference).stage == "approved"

    await start(nursery, run_hub, hub_with_provider)  # back: the return's event records it on the intent
    await intent_is(database_url, approved["id"], "captured", refunded_minor=628)
    refunds = await query(database_url, "SELECT via, amount_minor FROM payment_refunds ORDER BY created_at")
    assert [tuple(row) for row in refunds] == [("provider", 499), ("terminal", 129)]
    assert hub is not None


async def test_offline_cards_are_authorized_when_their_sale_arrives_and_a_decline_is_a_follow_up(
        store_config: StoreConfig, hub_with_provider: HubConfig, database_url: str,
        terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    edge, _ = await start(nursery, run_edge, edge_config(store_config, terminal, offline_cards=True))
    till = await open_till(http, edge.url)
    basket = await till.basket((COFFEE, 10))  # 49.90, and no hub answering
    good = await card(till, terminal, 2000)
    bad = await card(till, terminal, 1000, number="4000000000000002")  # the chip takes it; the issuer will not
    assert good["state"] == bad["state"] == "approved"
    assert (await http.post(f"{till.url}/tenders", json={"method": "cash", "amount_minor": 1990})).status_code == 200
    assert (await till.complete(basket["cart"])).status_code == 200
    assert (await http.get(f"{edge.url}/api/payments/follow-ups")).status_code == 403  # alice is a cashier

    await start(nursery, run_hub, hub_with_provider)  # the hub comes back: the events arrive
    await intent_is(database_url, good["id"], "captured", captured_minor=2000)
    declined = await intent_is(database_url, bad["id"], "failed")
    assert declined["offline"] and declined["attention"]

    await log_in(http, edge.url, TILL, "manager")

    async def followed_up() -> Any:
        answer = (await http.get(f"{edge.url}/api/payments/follow-ups")).json()
        return answer if answer["follow_ups"] else None
    answer = await wait_until(followed_up, timeout=30)
    assert [(f["tender_id"], f["amount"]["minor"], f["masked"]) for f in answer["follow_ups"]] == [
        (bad["id"], 1000, "************0002")]
    assert (answer["offline"]["outstanding"], answer["offline"]["outstanding_minor"]) == (0, 0)
    assert answer["offline"]["per_payment_minor"] == 5000  # the hub's default, none fetched yet

    basket = await till.basket((COFFEE, 20))  # with the hub back, a card over the offline limit goes online
    online = await card(till, terminal, 9980)
    assert online["state"] == "approved" and online["card"]["auth_code"] not in ("", "OFFLINE")
    await intent_is(database_url, online["id"], "authorized", offline=False)
    assert (await till.complete(basket["cart"])).status_code == 200
    await intent_is(database_url, online["id"], "captured", captured_minor=9980)


async def test_an_abandoned_sale_has_its_approval_reversed_at_the_terminal_and_cancelled_at_the_hub(
        store_config: StoreConfig, hub_with_provider: HubConfig, database_url: str, acquirer: RunningAcquirer,
        terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    await start(nursery, run_hub, hub_with_provider)
    edge, _ = await start(nursery, run_edge, edge_config(store_config, terminal, offline_cards=False))
    till = await open_till(http, edge.url)
    await till.basket((COFFEE, 1))
    approved = await card(till, terminal, 499)
    await intent_is(database_url, approved["id"], "authorized")  # the fast path (pay_intent): no sale yet
    voided = await http.request("DELETE", f"{till.url}/cart", json={"override": MANAGER_OVERRIDE})
    assert voided.status_code == 200, voided.text
    cancelled = await intent_is(database_url, approved["id"], "cancelled", captured_minor=0)
    assert acquirer.payment(cancelled["provider_ref"])["status"] in ("cancelled", "canceled")

    async def reversed_at_terminal() -> bool:
        return terminal.voids == [uuid.UUID(approved["id"]).hex]
    await wait_until(reversed_at_terminal)


async def test_an_offline_approval_abandoned_while_the_hub_is_away_is_cancelled_there_when_it_is_back(
        store_config: StoreConfig, hub_with_provider: HubConfig, database_url: str,
        terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    edge, _ = await start(nursery, run_edge, edge_config(store_config, terminal, offline_cards=True))
    till = await open_till(http, edge.url)
    await till.basket((COFFEE, 1))
    stored = await card(till, terminal, 499)
    assert stored["state"] == "approved" and stored["card"]["auth_code"] == ""
    voided = await http.request("DELETE", f"{till.url}/cart", json={"override": MANAGER_OVERRIDE})
    assert voided.status_code == 200, voided.text

    async def reversed_at_terminal() -> bool:
        return terminal.voids == [uuid.UUID(stored["id"]).hex]
    await wait_until(reversed_at_terminal)
    await log_in(http, edge.url, TILL, "manager")
    offline = (await http.get(f"{edge.url}/api/payments/follow-ups")).json()["offline"]
    assert (offline["outstanding"], offline["outstanding_minor"]) == (0, 0)  # no longer counted: nothing to charge

    await start(nursery, run_hub, hub_with_provider)  # its card.approved arrives; the store tells the hub again
    cancelled = await intent_is(database_url, stored["id"], "cancelled")
    assert (cancelled["offline"], cancelled["captured_minor"], cancelled["authorized_minor"]) == (True, 0, 0)
    assert (await http.get(f"{edge.url}/api/payments/follow-ups")).json()["follow_ups"] == []


async def test_a_card_refund_the_hub_did_not_confirm_is_only_asked_of_the_hub_again(
        store_config: StoreConfig, hub_with_provider: HubConfig, database_url: str, acquirer: RunningAcquirer,
        terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    _, hub_scope = await start(nursery, run_hub, hub_with_provider)
    edge, edge_scope = await start(nursery, run_edge, edge_config(store_config, terminal, offline_cards=False))
    till = await open_till(http, edge.url)
    basket = await till.basket((COFFEE, 1))
    approved = await card(till, terminal, 499)
    sale = await till.complete(basket["cart"])
    assert sale.status_code == 200, sale.text
    captured = await intent_is(database_url, approved["id"], "captured", captured_minor=499)

    acquirer.hold()  # the provider refunds, but its answer comes after the till stopped waiting
    started = await http.post(f"{till.url}/returns", json={"order": sale.json()["sale"], "override": MANAGER_OVERRIDE})
    assert started.status_code == 200, started.text
    taken = await http.post(f"{till.url}/returns/lines", json={"original_line": 1, "quantity": 1})
    assert taken.status_code == 200, taken.text
    cart = taken.json()["cart"]
    unconfirmed = await http.post(f"{till.url}/complete", json={"cart": cart})
    assert unconfirmed.status_code == 409, unconfirmed.text
    cancelled = await http.request("DELETE", f"{till.url}/cart", json={"override": MANAGER_OVERRIDE})
    assert cancelled.status_code == 409, cancelled.text  # the return keeps its refund key

    hub_scope.cancel()  # no hub answering now: still never the terminal
    edge_scope.cancel()  # nor after a restart: the pending refund is saved with the till
    await trio.sleep(0.5)
    edge, _ = await start(nursery, run_edge, edge_config(store_config, terminal, offline_cards=False))
    till = await open_till(http, edge.url)
    away = await http.post(f"{till.url}/complete", json={"cart": cart})
    assert away.status_code == 409 and "has not confirmed" in away.text, away.text
    assert len(terminal.references) == 1  # the sale's payment only
    cancelled = await http.request("DELETE", f"{till.url}/cart", json={"override": MANAGER_OVERRIDE})
    assert cancelled.status_code == 409, cancelled.text

    acquirer.release()
    await start(nursery, run_hub, replace(hub_with_provider, payments=replace(hub_with_provider.payments,
                                                                              watchdog_after_s=1)))

    async def completed() -> dict[str, Any] | None:
        done = await http.post(f"{till.url}/complete", json={"cart": cart})
        assert done.status_code in (200, 409), done.text
        return dict(done.json()) if done.status_code == 200 else None
    done = await wait_until(completed, timeout=30, interval=0.5)
    assert [(r["method"], r["amount"]["minor"]) for r in done["refunds"]] == [("card", 499)]
    assert len(terminal.references) == 1
    assert acquirer.payment(captured["provider_ref"])["refunded_minor"] == 499
    refunds = await query(database_url, "SELECT via, state, amount_minor FROM payment_refunds")
    assert [tuple(row) for row in refunds] == [("provider", "succeeded", 499)]


async def test_a_card_refund_the_provider_declined_is_made_at_the_terminal_not_recorded_as_done(
        store_config: StoreConfig, hub_with_provider: HubConfig, database_url: str, acquirer: RunningAcquirer,
        terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    await start(nursery, run_hub, hub_with_provider)
    edge, _ = await start(nursery, run_edge, edge_config(store_config, terminal, offline_cards=False))
    till = await open_till(http, edge.url)
    basket = await till.basket((COFFEE, 1))
    approved = await card(till, terminal, 499)
    sale = await till.complete(basket["cart"])
    assert sale.status_code == 200, sale.text
    captured = await intent_is(database_url, approved["id"], "captured", captured_minor=499)
    elsewhere = httpx.post(f"{acquirer.url}/v1/refunds", json={"payment": captured["provider_ref"], "amount_minor": 499},
                           headers={"Idempotency-Key": "refunded-elsewhere"}, timeout=10)
    assert elsewhere.status_code == 200, elsewhere.text  # the provider has nothing left to refund: it declines

    done = await give_back(http, edge.url, sale.json()["sale"], 1)
    assert [(r["method"], r["amount"]["minor"]) for r in done["refunds"]] == [("card", 499)]
    [refund_reference] = terminal.references[1:]  # made at the terminal, with the card present
    assert terminal.status_of(refund_reference).stage == "approved"
    refunds = await query(database_url, "SELECT via, state FROM payment_refunds ORDER BY created_at")
    assert (refunds[0]["via"], refunds[0]["state"]) == ("provider", "failed")


@pytest.fixture
def garbage_hub(hub_config: HubConfig) -> Iterator[None]:
    """A hub that answers every payment request of the store with bytes that are not JSON (a broken hub, or
    something else on its subjects), on the real NATS, until the test ends."""
    ready, stop = threading.Event(), threading.Event()

    async def answer() -> None:
        client = await nats.connect(hub_config.nats_url, tls=Certificates(hub_config.tls).client,
                                    **({"nkeys_seed": str(hub_config.nats_credentials)}
                                       if hub_config.nats_credentials else {}))

        async def garbage(msg: Any) -> None:
            await msg.respond(b"<html>bad gateway</html>")
        await client.subscribe(payment_request_subject("demo", "store-001", "pay_settings").rsplit(".", 1)[0] + ".*",
                               cb=garbage)
        await client.flush()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await client.close()
    thread = threading.Thread(target=asyncio.run, args=(answer(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield
    stop.set()
    thread.join(10)


async def test_a_hub_answer_that_cannot_be_read_crashes_neither_the_cards_actor_nor_the_till(
        store_config: StoreConfig, garbage_hub: None, terminal: PaymentTerminalMock, http: httpx.AsyncClient,
        nursery: trio.Nursery) -> None:
    edge, _ = await start(nursery, run_edge, edge_config(store_config, terminal, offline_cards=True))
    till = await open_till(http, edge.url)
    basket = await till.basket((COFFEE, 1))
    approved = await card(till, terminal, 499)  # the hub "answered": online, as for any refusal
    assert approved["state"] == "approved" and approved["card"]["auth_code"] not in ("", "OFFLINE")
    sale = await till.complete(basket["cart"])
    assert sale.status_code == 200, sale.text


async def test_an_approval_the_till_refuses_is_reversed_at_the_terminal(
        store_config: StoreConfig, terminal: PaymentTerminalMock, http: httpx.AsyncClient,
        nursery: trio.Nursery) -> None:
    edge, _ = await start(nursery, run_edge, edge_config(store_config, terminal, offline_cards=False))
    till = await open_till(http, edge.url)
    await till.basket((COFFEE, 1))
    refused = await card(till, terminal, 499, charged_minor=500)  # the terminal charged another amount
    assert refused["state"] == "failed" and "call support" in refused["message"]

    async def reversed_at_terminal() -> bool:
        return terminal.voids == [uuid.UUID(refused["id"]).hex]
    await wait_until(reversed_at_terminal)
