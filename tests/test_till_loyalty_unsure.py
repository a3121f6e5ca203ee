"""The till when the hub's answer to a points, gift card or customer request is lost or unreadable, at a real edge over
HTTP with a hub stand-in on the real NATS (tests.loyalty_hub): points the hub took under an answer the till could not
read are owed back, never kept; a gift card refund whose answer was lost can be confirmed by scanning the card again
but never also refunded in cash, nor the return cancelled; a customer 360 of an unexpected shape shows what it can
instead of restarting the till."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from actors.till import rewards
from novapos.config import StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import wait_until
from tests.edges import running_edge, waiting_events
from tests.loyalty_hub import ANN, GIFT_CARD, LoyaltyHub
from tests.pos import COFFEE, MANAGER_OVERRIDE, log_in


class UnsureHub(LoyaltyHub):
    """The stand-in, with a way to spoil the next answer of a kind: `garbled` (answered with bytes that are not JSON
    after doing the work), `silent` (the work done, no answer: the till times out), `odd` (this answer instead)."""

    spoil: dict[str, Any]

    def __post_init__(self) -> None:
        super().__post_init__()
        self.spoil, self.refunds = {}, set[str]()

    def answer(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if kind == "gift_card_refund" and body["redemption"] in self.refunds:  # idempotent, as the hub's
            return {"redemption": body["redemption"], "card": "************" + body["card"][-4:],
                    "balance_minor": self.gift_cards[body["card"]]}
        if kind == "gift_card_refund":
            self.refunds.add(body["redemption"])
        return super().answer(kind, body)

    async def _answer(self, msg: Any) -> None:
        kind = msg.subject.rsplit(".", 1)[1]
        how = self.spoil.pop(kind, None)
        if how is None:
            return await super()._answer(msg)
        body = json.loads(msg.data)
        self.asked.append((kind, body))
        if isinstance(how, dict):
            return await msg.respond(json.dumps(how).encode())
        self.answer(kind, body)  # the work is done...
        if how == "garbled":
            await msg.respond(b"<html>502 Bad Gateway</html>")  # ...and its answer cannot be read
        # "silent": never answered


@pytest.fixture
def hub(nats_server: EmbeddedNats) -> Any:
    with UnsureHub(nats_server) as stand_in:
        yield stand_in


async def _start(http: httpx.AsyncClient, base: str, *items: tuple[str, int]) -> str:
    await log_in(http, base)
    for barcode, quantity in items:
        assert (await http.post(f"{base}/api/tills/till-1/lines", json={"barcode": barcode,
                                                                         "quantity": quantity})).status_code == 200
    return f"{base}/api/tills/till-1"


async def test_points_the_hub_took_under_an_unreadable_answer_are_owed_back_not_kept(
        store_config: StoreConfig, hub: UnsureHub, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rewards, "UNCONFIRMED_GRACE_S", 0.5)
    monkeypatch.setattr(rewards, "RETRY_S", 0.3)
    async with running_edge(store_config) as edge:
        till = await _start(http, edge.url, (COFFEE, 2))
        await http.get(f"{till}/customers", params={"q": "ann@example.com"})
        assert (await http.put(f"{till}/customer", json={"customer": ANN})).status_code == 200
        hub.spoil["points_redeem"] = "garbled"
        paid = await http.post(f"{till}/tenders", json={"method": "points", "amount_minor": 300,
                                                         "id": str(uuid.uuid4())})
        assert paid.status_code == 409 and "did not confirm" in paid.text
        assert hub.customers[ANN].points == 4700  # the hub did take them
        state = (await http.get(till)).json()
        assert state["tenders"] == [] and state["loyalty_reversals_owed"] == 1

        async def given_back() -> bool:
            return hub.customers[ANN].points == 5000 and (await http.get(till)).json()["loyalty_reversals_owed"] == 0
        await wait_until(given_back, timeout=10)

        refused = await http.post(f"{till}/tenders", json={"method": "points", "amount_minor": 99999,
                                                           "id": str(uuid.uuid4())})
        assert refused.status_code == 422 and (await http.get(till)).json()["loyalty_reversals_owed"] == 0
        taken = await http.post(f"{till}/tenders", json={"method": "points", "amount_minor": 300,
                                                         "id": str(uuid.uuid4())})
        assert taken.status_code == 200 and taken.json()["loyalty_reversals_owed"] == 0  # nothing left owed


async def test_a_gift_card_refund_whose_answer_was_lost_is_never_also_refunded_in_cash(
        store_config: StoreConfig, hub: UnsureHub, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rewards, "ASK_WITHIN_S", 0.5)
    async with running_edge(store_config) as edge:
        till = await _start(http, edge.url, (COFFEE, 1))  # 4.99: 4.00 by gift card, 0.99 cash
        paid = await http.post(f"{till}/tenders", json={"method": "gift_card", "card": GIFT_CARD, "amount_minor": 400,
                                                        "id": str(uuid.uuid4())})
        assert paid.status_code == 200, paid.text
        assert (await http.post(f"{till}/tenders", json={"method": "cash", "amount_minor": 99})).status_code == 200
        done = await http.post(f"{till}/complete", json={"cart": paid.json()["cart"]})
        assert done.status_code == 200 and hub.gift_cards[GIFT_CARD] == 2100
        order = done.json()["sale"]

        assert (await http.post(f"{till}/returns", json={"order": order, "override": MANAGER_OVERRIDE})).status_code \
            == 200
        state = (await http.post(f"{till}/returns/lines", json={"original_line": 1, "quantity": 1,
                                                                "override": MANAGER_OVERRIDE})).json()
        assert state["refund_gift_card"]["minor"] == 400
        hub.spoil["gift_card_refund"] = "silent"
        lost = await http.post(f"{till}/returns/gift-card", json={"card": GIFT_CARD})
        assert lost.status_code == 409 and "did not confirm" in lost.text
        assert hub.gift_cards[GIFT_CARD] == 2500  # the hub refunded the card; the till never heard

        cash = await http.post(f"{till}/returns/refund-in-cash", json={})
        assert cash.status_code == 409 and "************7890" in cash.text and "scan the same card" in cash.text
        cancelled = await http.request("DELETE", f"{till}/cart", json={"override": MANAGER_OVERRIDE})
        assert cancelled.status_code == 409 and "scan the same card" in cancelled.text
        changed = await http.post(f"{till}/returns/lines", json={"original_line": 1, "quantity": 1,
                                                                 "override": MANAGER_OVERRIDE})
        assert changed.status_code == 409

        confirmed = await http.post(f"{till}/returns/gift-card", json={"card": GIFT_CARD})
        assert confirmed.status_code == 200, confirmed.text
        assert hub.gift_cards[GIFT_CARD] == 2500  # refunded once
        completed = await http.post(f"{till}/complete", json={"cart": confirmed.json()["cart"]})
        assert completed.status_code == 200, completed.text
    [returned] = [event for event in waiting_events(store_config.state_dir) if event.type == "return.completed"]
    assert [(r["method"], r["amount"]["minor"]) for r in returned.body["refunds"]] == [("gift_card", 400),
                                                                                      ("cash", 99)]


async def test_a_gift_card_refund_the_hub_refused_may_still_go_to_cash(
        store_config: StoreConfig, hub: UnsureHub, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = await _start(http, edge.url, (COFFEE, 1))
        paid = await http.post(f"{till}/tenders", json={"method": "gift_card", "card": GIFT_CARD, "amount_minor": 499,
                                                        "id": str(uuid.uuid4())})
        order = (await http.post(f"{till}/complete", json={"cart": paid.json()["cart"]})).json()["sale"]
        await http.post(f"{till}/returns", json={"order": order, "override": MANAGER_OVERRIDE})
        await http.post(f"{till}/returns/lines", json={"original_line": 1, "quantity": 1,
                                                       "override": MANAGER_OVERRIDE})
        hub.spoil["gift_card_refund"] = {"refused": {"code": 409, "message": "gift card ****7890 is blocked"}}
        refused = await http.post(f"{till}/returns/gift-card", json={"card": GIFT_CARD})
        assert refused.status_code == 409 and "blocked" in refused.text
        cash = await http.post(f"{till}/returns/refund-in-cash", json={})
        assert cash.status_code == 200 and cash.json()["refund_gift_card"]["minor"] == 0


async def test_a_customer_360_of_an_unexpected_shape_shows_what_it_can(
        store_config: StoreConfig, hub: UnsureHub, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = await _start(http, edge.url)
        await http.get(f"{till}/customers", params={"q": "ann@example.com"})
        assert (await http.put(f"{till}/customer", json={"customer": ANN})).status_code == 200
        profile = hub.customers[ANN].profile()
        for odd in ({"customer": profile, "loyalty": {"points": 5000, "expiring": None}, "orders": 5},
                    {"customer": profile, "loyalty": {"expiring": {"points": 1}}, "orders": {"order": "o-1"}}):
            hub.spoil["customer_360"] = odd
            seen = await http.get(f"{till}/customer")
            assert seen.status_code == 200, seen.text
            assert seen.json()["loyalty"]["expiring"] == [] and seen.json()["orders"] == []
        assert (await http.get(till)).json()["customer"]["id"] == ANN  # the till carried on


async def test_a_cart_paid_only_with_points_voided_is_audited_and_the_points_given_back(
        store_config: StoreConfig, hub: UnsureHub, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = await _start(http, edge.url, (COFFEE, 1))
        await http.get(f"{till}/customers", params={"q": "ann@example.com"})
        await http.put(f"{till}/customer", json={"customer": ANN})
        paid = await http.post(f"{till}/tenders", json={"method": "points", "amount_minor": 200,
                                                        "id": str(uuid.uuid4())})
        assert paid.status_code == 200 and hub.customers[ANN].points == 4800
        voided = await http.request("DELETE", f"{till}/cart", json={"override": MANAGER_OVERRIDE})
        assert voided.status_code == 200, voided.text

        async def given_back() -> bool:
            return hub.customers[ANN].points == 5000
        await wait_until(given_back, timeout=10)
    audited = [event.body for event in waiting_events(store_config.state_dir) if event.type == "audit.recorded"]
    assert [(body["action"], body["actor"], body["approver"]) for body in audited
            if body["action"] == "till.void"] == [("till.void", "alice", "manager")]


async def test_a_lost_gift_card_refund_still_blocks_cash_after_a_restart(
        store_config: StoreConfig, hub: UnsureHub, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rewards, "ASK_WITHIN_S", 0.5)
    card = "6" * 36 + "7890"  # the longest number the till takes (40)
    hub.gift_cards[card] = 1000
    async with running_edge(store_config) as edge:
        till = await _start(http, edge.url, (COFFEE, 1))
        paid = await http.post(f"{till}/tenders", json={"method": "gift_card", "card": card, "amount_minor": 499,
                                                        "id": str(uuid.uuid4())})
        order = (await http.post(f"{till}/complete", json={"cart": paid.json()["cart"]})).json()["sale"]
        await http.post(f"{till}/returns", json={"order": order, "override": MANAGER_OVERRIDE})
        await http.post(f"{till}/returns/lines", json={"original_line": 1, "quantity": 1,
                                                       "override": MANAGER_OVERRIDE})
        hub.spoil["gift_card_refund"] = "silent"
        assert (await http.post(f"{till}/returns/gift-card", json={"card": card})).status_code == 409
    assert hub.gift_cards[card] == 1000  # refunded at the hub; the till never heard
    async with running_edge(store_config) as edge:  # restarted: the return is still unconfirmed
        await log_in(http, edge.url)
        till = f"{edge.url}/api/tills/till-1"
        cash = await http.post(f"{till}/returns/refund-in-cash", json={})
        assert cash.status_code == 409 and "scan the same card" in cash.text
        confirmed = await http.post(f"{till}/returns/gift-card", json={"card": card})
        assert confirmed.status_code == 200, confirmed.text
        assert (await http.post(f"{till}/complete", json={"cart": confirmed.json()["cart"]})).status_code == 200
    assert hub.gift_cards[card] == 1000  # once
