"""Pay by QR code at the till, end to end: web till API -> till actor -> the hub's pay_qr over real NATS -> the
acquirer simulator's checkout on a real socket; the test stands in for the customer's phone by posting the pay
page's button; the simulator's signed webhook reaches the hub, whose payment event comes down to the store and tells
the till live. A split with cash, a decline, a cancel, a refund through the hub in a return, and the store offline.
Real PostgreSQL, NATS, SQLite and sockets."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.payments.events import PaymentEventsActor
from actors.till import qr
from edge.app import RunningEdge, run_edge
from mocks.network_printer import MockNetworkPrinter
from novapos.config import HubConfig, StoreConfig
from tests.conftest import query, wait_until
from tests.edges import running_edge
from tests.payments_hub import ask, intent_state, payments_hub
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in

TILL = "/api/tills/till-1"


async def _cart(http: httpx.AsyncClient, edge: RunningEdge, items: list[tuple[str, int]]) -> dict[str, Any]:
    await log_in(http, edge.url)
    for barcode, quantity in items:
        response = await http.post(f"{edge.url}{TILL}/lines", json={"barcode": barcode, "quantity": quantity})
        assert response.status_code == 200, response.text
    return dict(response.json())


async def _pay_by_qr(http: httpx.AsyncClient, edge: RunningEdge, amount: int) -> dict[str, Any]:
    """Start a QR payment of `amount`; the pending tender (with its pay URL) from the till's answer."""
    tender_id = str(uuid.uuid4())
    response = await http.post(f"{edge.url}{TILL}/tenders", json={"method": "qr", "amount_minor": amount, "id": tender_id})
    assert response.status_code == 200, response.text
    [tender] = [t for t in response.json()["tenders"] if t["id"] == tender_id]
    assert (tender["method"], tender["state"], tender["amount"]["minor"]) == ("qr", "pending", amount)
    return dict(tender)


async def _tender(http: httpx.AsyncClient, edge: RunningEdge, tender_id: str, state: str) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        tenders = (await http.get(f"{edge.url}{TILL}")).json()["tenders"]
        found = next(t for t in tenders if t["id"] == tender_id)
        return found if found["state"] == state else None
    return await wait_until(settled, timeout=10)


def _ref(tender: dict[str, Any]) -> str:
    return str(tender["qr"]["pay_url"]).rsplit("/", 1)[1]


async def test_a_split_cash_and_qr_sale_is_paid_on_the_phone_learnt_live_and_refunded_through_the_hub(
        store_config: StoreConfig, hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient,
        printer: MockNetworkPrinter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qr, "POLL_S", 600.0)  # no pay_status fallback here: only the live event can tell the till
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets), trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        state = await _cart(http, edge, [(COFFEE, 2), (MILK, 1)])  # 2 x 4.99 + 1.29 = 11.27
        cash = await http.post(f"{edge.url}{TILL}/tenders", json={"method": "cash", "amount_minor": 500})
        assert cash.status_code == 200, cash.text
        tender = await _pay_by_qr(http, edge, 627)
        assert tender["qr"]["pay_url"].startswith(acquirer.url)
        svg = await http.get(f"{edge.url}{TILL}/tenders/{tender['id']}/qr.svg")
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
        assert svg.content.startswith(b"<?xml") and b"<svg" in svg.content
        early = await http.post(f"{edge.url}{TILL}/complete", json={"cart": state["cart"]})
        assert early.status_code == 409 and "QR payment is in progress" in early.json()["error"]

        paid_at = time.monotonic()
        assert "Paid" in await trio.to_thread.run_sync(acquirer.pay, _ref(tender))  # the customer's phone
        approved = await _tender(http, edge, tender["id"], "approved")
        learnt_s = time.monotonic() - paid_at
        assert learnt_s < 5, learnt_s
        print(f"QR paid on the phone -> the till's tender approved (webhook, hub, event, till): {learnt_s * 1000:.0f} ms")
        assert approved["qr"]["provider_ref"] == _ref(tender) and approved["qr"]["pay_url"] is None
        receipt = (await http.post(f"{edge.url}{TILL}/complete", json={"cart": state["cart"]})).json()
        assert [(t["method"], t["amount"]["minor"]) for t in receipt["tenders"]] == [("cash", 500), ("qr", 627)]
        assert receipt["tenders"][1]["qr"]["provider_ref"] == _ref(tender)
        assert receipt["change"]["minor"] == 0

        sale = uuid.UUID(receipt["sale"])
        [row] = await wait_until(lambda: query(hub_config.database_url, "SELECT v FROM sales WHERE event_id = $1",
                                               sale), timeout=15)
        assert row["v"] == 4
        tenders = await query(hub_config.database_url, "SELECT method, amount_minor, qr_intent, qr_provider_ref "
                                                       "FROM sale_tenders WHERE event_id = $1 ORDER BY tender_no", sale)
        intent_id = receipt["tenders"][1]["qr"]["intent"]
        assert [tuple(t) for t in tenders] == [("cash", 500, None, None), ("qr", 627, intent_id, _ref(tender))]
        assert await intent_state(hub_config.database_url, intent_id) == "captured"
        printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
        assert "Paid by QR" in printed[0] and f"Ref {_ref(tender)}" in printed[0]

        # a coffee comes back: its 4.99 goes back to the QR payment, through the hub
        started = await http.post(f"{edge.url}{TILL}/returns", json={"order": str(sale), "override": MANAGER_OVERRIDE})
        assert started.status_code == 200, started.text
        taken = await http.post(f"{edge.url}{TILL}/returns/lines", json={"original_line": 1, "quantity": 1})
        assert taken.json()["refund_to"] == "qr" and taken.json()["refund_card"]["minor"] == 499
        done = await http.post(f"{edge.url}{TILL}/complete", json={})
        assert done.status_code == 200, done.text
        [refund] = done.json()["refunds"]
        assert (refund["method"], refund["amount"]["minor"], refund["qr"]["intent"]) == ("qr", 499, intent_id)
        [intent] = await query(hub_config.database_url, "SELECT state, refunded_minor FROM payment_intents "
                                                        "WHERE id = $1::uuid", intent_id)
        assert (intent["state"], intent["refunded_minor"]) == ("captured", 499)
        assert (await trio.to_thread.run_sync(acquirer.payment, _ref(tender)))["refunded_minor"] == 499
        back = uuid.UUID(done.json()["sale"])
        [row] = await wait_until(lambda: query(hub_config.database_url, "SELECT refund_methods FROM returns "
                                                                        "WHERE event_id = $1", back), timeout=15)
        assert row["refund_methods"] == ["qr"]
        printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 2, 10.0)
        assert "Refund to QR payment" in printed[1]
        nursery.cancel_scope.cancel()


async def test_a_declined_qr_payment_and_a_cancelled_one_leave_the_sale_to_cash_as_v3(
        store_config: StoreConfig, hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets), trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        state = await _cart(http, edge, [(COFFEE, 1)])
        declined = await _pay_by_qr(http, edge, 499)
        assert "declined" in await trio.to_thread.run_sync(acquirer.decline, _ref(declined))
        seen = await _tender(http, edge, declined["id"], "declined")
        assert "failed" in seen["message"]

        cancelled = await _pay_by_qr(http, edge, 499)
        response = await http.post(f"{edge.url}{TILL}/tenders/{cancelled['id']}/cancel", json={})
        assert response.status_code == 200, response.text
        [after] = [t for t in response.json()["tenders"] if t["id"] == cancelled["id"]]
        assert (after["state"], after["message"]) == ("cancelled", "cancelled at the till")
        intent = await query(hub_config.database_url, "SELECT state FROM payment_intents WHERE tender_id = $1",
                             cancelled["id"])
        assert [row["state"] for row in intent] == ["cancelled"]
        assert "cancelled" in await trio.to_thread.run_sync(acquirer.pay, _ref(cancelled))  # the code is dead now

        await http.post(f"{edge.url}{TILL}/tenders", json={"method": "cash", "amount_minor": 499})
        receipt = (await http.post(f"{edge.url}{TILL}/complete", json={"cart": state["cart"]})).json()
        [row] = await wait_until(lambda: query(hub_config.database_url, "SELECT v FROM sales WHERE event_id = $1",
                                               uuid.UUID(receipt["sale"])), timeout=15)
        assert row["v"] == 3  # no QR tender paid: the sale stays v3
        nursery.cancel_scope.cancel()


async def test_qr_while_the_hub_is_away_is_refused_with_a_sentence_and_nothing_starts(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)  # NATS runs, no hub answers
        state = await _cart(http, edge, [(COFFEE, 1)])
        response = await http.post(f"{edge.url}{TILL}/tenders",
                                   json={"method": "qr", "amount_minor": 499, "id": str(uuid.uuid4())})
        assert response.status_code == 409
        assert response.json()["error"] == qr.QR_OFFLINE
        after = (await http.get(f"{edge.url}{TILL}")).json()
        assert (after["tenders"], after["due"]["minor"], after["cart"]) == ([], 499, state["cart"])
        nursery.cancel_scope.cancel()


async def test_a_pending_qr_payment_survives_a_restart_and_is_settled_by_asking_the_hub_when_no_event_comes(
        store_config: StoreConfig, hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PaymentEventsActor, "_tell", lambda *_args: None)  # the live events never reach the till
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets):
        async with running_edge(store_config) as edge:
            state = await _cart(http, edge, [(COFFEE, 1)])
            tender = await _pay_by_qr(http, edge, 499)
        async with running_edge(store_config) as edge:  # the till comes back with its pending QR payment
            after = (await http.get(f"{edge.url}{TILL}")).json()
            assert [(t["id"], t["state"], t["qr"]["pay_url"]) for t in after["tenders"]] == \
                [(tender["id"], "pending", tender["qr"]["pay_url"])]
            svg = await http.get(f"{edge.url}{TILL}/tenders/{tender['id']}/qr.svg")
            assert svg.status_code == 200
            await trio.to_thread.run_sync(acquirer.pay, _ref(tender))
            await _tender(http, edge, tender["id"], "approved")  # pay_status, every 2 s
            receipt = (await http.post(f"{edge.url}{TILL}/complete", json={"cart": state["cart"]})).json()
            assert [t["method"] for t in receipt["tenders"]] == ["qr"]


async def test_a_refund_to_a_qr_payment_while_the_hub_is_away_is_refused_with_a_sentence_or_given_in_cash(
        store_config: StoreConfig, hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets), running_edge(store_config) as edge:
        state = await _cart(http, edge, [(COFFEE, 1)])
        tender = await _pay_by_qr(http, edge, 499)
        await trio.to_thread.run_sync(acquirer.pay, _ref(tender))
        await _tender(http, edge, tender["id"], "approved")
        sale = (await http.post(f"{edge.url}{TILL}/complete", json={"cart": state["cart"]})).json()["sale"]
    async with running_edge(store_config) as edge:  # the hub is gone
        await log_in(http, edge.url)
        started = await http.post(f"{edge.url}{TILL}/returns", json={"order": sale, "override": MANAGER_OVERRIDE})
        assert started.status_code == 200, started.text
        taken = await http.post(f"{edge.url}{TILL}/returns/lines", json={"original_line": 1, "quantity": 1})
        assert taken.json()["refund_to"] == "qr"
        refused = await http.post(f"{edge.url}{TILL}/complete", json={})
        assert refused.status_code == 409 and refused.json()["error"] == qr.REFUND_OFFLINE
        assert (await http.get(f"{edge.url}{TILL}")).json()["mode"] == "return"  # nothing committed
        cash = await http.post(f"{edge.url}{TILL}/returns/refund-in-cash", json={})
        assert cash.status_code == 200 and cash.json()["refund_to"] == "cash"
        done = await http.post(f"{edge.url}{TILL}/complete", json={})
        assert done.status_code == 200, done.text
        assert [(r["method"], r["amount"]["minor"]) for r in done.json()["refunds"]] == [("cash", 499)]


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"method": "qr", "amount_minor": 500}, 422, "at most what is due"),
    ({"method": "qr", "amount_minor": 0}, 422, "amount_minor"),
    ({"method": "qr", "amount_minor": 100, "id": None}, 422, "needs its id"),
    ({"method": "qr", "amount_minor": 100, "id": "not-a-uuid"}, 422, "id"),
])
async def test_bad_qr_tenders_are_refused_before_the_hub_is_asked_and_change_nothing(
        store_config: StoreConfig, http: httpx.AsyncClient, body: dict[str, Any], status: int, says: str) -> None:
    async with running_edge(store_config) as edge:
        await _cart(http, edge, [(COFFEE, 1)])
        before = (await http.get(f"{edge.url}{TILL}")).json()
        response = await http.post(f"{edge.url}{TILL}/tenders", json={"id": str(uuid.uuid4()), **body})
        assert response.status_code == status and says in response.json()["error"], response.text
        assert (await http.get(f"{edge.url}{TILL}")).json() == before
        svg = await http.get(f"{edge.url}{TILL}/tenders/{uuid.uuid4()}/qr.svg")
        assert svg.status_code == 404 and "no QR payment in progress" in svg.json()["error"]


async def test_a_paid_qr_tender_voided_goes_back_to_the_phone_through_the_hub(
        store_config: StoreConfig, hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets), running_edge(store_config) as edge:
        await _cart(http, edge, [(COFFEE, 1)])
        tender = await _pay_by_qr(http, edge, 499)
        await trio.to_thread.run_sync(acquirer.pay, _ref(tender))
        await _tender(http, edge, tender["id"], "approved")
        voided = await http.request("DELETE", f"{edge.url}{TILL}/cart", json={"override": MANAGER_OVERRIDE})
        assert voided.status_code == 200, voided.text
        assert voided.json()["lines"] == [] and voided.json()["tenders"] == []
        [intent] = await query(hub_config.database_url, "SELECT state, refunded_minor FROM payment_intents "
                                                        "WHERE tender_id = $1", tender["id"])
        assert (intent["state"], intent["refunded_minor"]) == ("refunded", 499)
        assert (await trio.to_thread.run_sync(acquirer.payment, _ref(tender)))["refunded_minor"] == 499


async def test_a_refund_to_a_qr_payment_the_hub_did_not_confirm_is_never_given_in_cash_meanwhile(
        store_config: StoreConfig, hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qr, "CHANGE_WITHIN_S", 1.0)  # the till stops waiting before the hub hears the provider
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets), running_edge(store_config) as edge:
        state = await _cart(http, edge, [(COFFEE, 1)])
        tender = await _pay_by_qr(http, edge, 499)
        await trio.to_thread.run_sync(acquirer.pay, _ref(tender))
        await _tender(http, edge, tender["id"], "approved")
        sale = (await http.post(f"{edge.url}{TILL}/complete", json={"cart": state["cart"]})).json()["sale"]
        started = await http.post(f"{edge.url}{TILL}/returns", json={"order": sale, "override": MANAGER_OVERRIDE})
        assert started.status_code == 200, started.text
        taken = await http.post(f"{edge.url}{TILL}/returns/lines", json={"original_line": 1, "quantity": 1})
        assert taken.json()["refund_to"] == "qr"

        await trio.to_thread.run_sync(acquirer.hold)  # the provider refunds; its answer waits
        unconfirmed = await http.post(f"{edge.url}{TILL}/complete", json={})
        assert unconfirmed.status_code == 409 and "has not confirmed" in unconfirmed.json()["error"], unconfirmed.text
        cash = await http.post(f"{edge.url}{TILL}/returns/refund-in-cash", json={})
        assert cash.status_code == 409, cash.text
        cancelled = await http.request("DELETE", f"{edge.url}{TILL}/cart", json={"override": MANAGER_OVERRIDE})
        assert cancelled.status_code == 409, cancelled.text
        await trio.to_thread.run_sync(acquirer.release)

        async def completed() -> dict[str, Any] | None:
            done = await http.post(f"{edge.url}{TILL}/complete", json={})
            assert done.status_code in (200, 409), done.text
            return dict(done.json()) if done.status_code == 200 else None
        done = await wait_until(completed, timeout=20, interval=0.5)
        assert [(r["method"], r["amount"]["minor"]) for r in done["refunds"]] == [("qr", 499)]
        assert (await trio.to_thread.run_sync(acquirer.payment, _ref(tender)))["refunded_minor"] == 499


async def test_a_refund_to_a_qr_payment_the_provider_declined_is_not_recorded_and_may_go_to_cash(
        store_config: StoreConfig, hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets), running_edge(store_config) as edge:
        state = await _cart(http, edge, [(COFFEE, 1)])
        tender = await _pay_by_qr(http, edge, 499)
        await trio.to_thread.run_sync(acquirer.pay, _ref(tender))
        await _tender(http, edge, tender["id"], "approved")
        sale = (await http.post(f"{edge.url}{TILL}/complete", json={"cart": state["cart"]})).json()["sale"]
        elsewhere = await http.post(f"{acquirer.url}/v1/refunds", json={"payment": _ref(tender), "amount_minor": 499},
                                    headers={"Idempotency-Key": "refunded-elsewhere"})
        assert elsewhere.status_code == 200, elsewhere.text  # the provider has nothing left to refund: it declines
        started = await http.post(f"{edge.url}{TILL}/returns", json={"order": sale, "override": MANAGER_OVERRIDE})
        assert started.status_code == 200, started.text
        taken = await http.post(f"{edge.url}{TILL}/returns/lines", json={"original_line": 1, "quantity": 1})
        assert taken.json()["refund_to"] == "qr"
        declined = await http.post(f"{edge.url}{TILL}/complete", json={})
        assert declined.status_code == 409 and "declined" in declined.json()["error"], declined.text
        assert (await http.post(f"{edge.url}{TILL}/returns/refund-in-cash", json={})).status_code == 200
        done = await http.post(f"{edge.url}{TILL}/complete", json={})
        assert [(r["method"], r["amount"]["minor"]) for r in done.json()["refunds"]] == [("cash", 499)], done.text


async def test_a_pending_qr_payment_refunded_at_the_hub_meanwhile_ends_instead_of_waiting_forever(
        store_config: StoreConfig, hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PaymentEventsActor, "_tell", lambda *_args: None)  # the live events never reach the till
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets):
        async with running_edge(store_config) as edge:
            await _cart(http, edge, [(COFFEE, 1)])
            tender = await _pay_by_qr(http, edge, 499)
        await trio.to_thread.run_sync(acquirer.pay, _ref(tender))  # paid while the store was down...
        await wait_until(lambda: intent_captured(hub_config, tender["id"]), timeout=10)
        refunded = await ask(hub_config, "demo", "store-001", "pay_refund", {  # ...and refunded from elsewhere
            "tender_id": tender["id"], "amount_minor": 499, "refund_key": "from-the-console", "actor": "test",
            "reason": "test"})
        assert refunded["intent"]["state"] == "refunded", refunded
        async with running_edge(store_config) as edge:
            ended = await _tender(http, edge, tender["id"], "reversed")  # pay_status, every 2 s
            assert "refunded" in ended["message"]


async def intent_captured(hub_config: HubConfig, tender_id: str) -> bool:
    rows = await query(hub_config.database_url, "SELECT state FROM payment_intents WHERE tender_id = $1", tender_id)
    return bool(rows) and rows[0]["state"] == "captured"
