"""The till's customer, points and gift card flows at a real edge over HTTP, with a hub-side stand-in answering the
loyalty requests on the real NATS (tests.loyalty_hub): online lookups kept in the store's cache and found from it
offline (said so), the points tender online and offline within the budget and the cap (still counted after the
edge restarts), the gift card online only, a void giving redemptions back (owed across a restart until the hub
confirms), and the sale committed as sale.completed v5 with the customer and the new tenders."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest
import trio

from mocks.network_printer import MockNetworkPrinter
from novapos.config import StoreConfig
from novapos.config.loyalty import LoyaltySettings
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import ensure_stream, wait_until
from tests.edges import running_edge, waiting_events
from tests.loyalty_hub import ANN, BEN, GIFT_CARD, LoyaltyHub
from tests.pos import COFFEE, MANAGER_OVERRIDE, log_in

OFFLINE = "offline: from this store's recent customers"


class Till:
    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.base, self.url = http, url, f"{url}/api/tills/till-1"

    async def start(self, *items: tuple[str, int]) -> dict[str, Any]:
        await log_in(self.http, self.base)
        state: dict[str, Any] = {}
        for barcode, quantity in items:
            response = await self.http.post(f"{self.url}/lines", json={"barcode": barcode, "quantity": quantity})
            assert response.status_code == 200, response.text
            state = response.json()
        return state

    async def find(self, query: str) -> httpx.Response:
        return await self.http.get(f"{self.url}/customers", params={"q": query})

    async def attach(self, customer: str) -> httpx.Response:
        return await self.http.put(f"{self.url}/customer", json={"customer": customer})

    async def points(self, amount: int, tender_id: str | None = None) -> httpx.Response:
        return await self.http.post(f"{self.url}/tenders", json={"method": "points", "amount_minor": amount,
                                                                  "id": tender_id or str(uuid.uuid4())})

    async def gift_card(self, card: str, amount: int) -> httpx.Response:
        return await self.http.post(f"{self.url}/tenders", json={"method": "gift_card", "card": card,
                                                                  "amount_minor": amount, "id": str(uuid.uuid4())})

    async def cash_and_complete(self) -> dict[str, Any]:
        state = (await self.http.get(self.url)).json()
        if state["due"]["minor"]:
            response = await self.http.post(f"{self.url}/tenders", json={"method": "cash",
                                                                          "amount_minor": state["due"]["minor"]})
            assert response.status_code == 200, response.text
        done = await self.http.post(f"{self.url}/complete", json={"cart": state["cart"]})
        assert done.status_code == 200, done.text
        return dict(done.json())


@pytest.fixture
def hub(nats_server: EmbeddedNats) -> Any:
    with LoyaltyHub(nats_server) as stand_in:
        yield stand_in


def _sales(config: StoreConfig) -> list[Any]:
    return [event for event in waiting_events(config.state_dir) if event.type == "sale.completed"]


async def test_a_customer_found_online_is_found_offline_from_the_stores_cache_and_said_so(
        store_config: StoreConfig, hub: LoyaltyHub, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start()
        online = (await till.find("ann@example.com")).json()
        assert online["offline"] is False and [c["id"] for c in online["customers"]] == [ANN]
        assert online["customers"][0]["card"] == "*********0017"  # masked, never whole
        assert "phone" not in online["customers"][0] and "card_number" not in online["customers"][0]
        hub.down()
        for query in ("ann@example.com", "ANN@example.com", "+44 1234 567890", "2900000000017"):
            offline = (await till.find(query)).json()
            assert offline["offline"] is True and offline["message"] == OFFLINE, query
            assert [c["id"] for c in offline["customers"]] == [ANN], query
        assert (await till.find("ben@example.com")).json()["customers"] == []  # never seen at this store
        assert (await till.find("ab")).status_code == 422


async def test_the_customer_cache_keeps_the_most_recent_customers_only(
        store_config: StoreConfig, hub: LoyaltyHub, http: httpx.AsyncClient) -> None:
    config = replace(store_config, loyalty=LoyaltySettings(customer_cache_size=1))
    async with running_edge(config) as edge:
        till = Till(http, edge.url)
        await till.start()
        await till.find("ann@example.com")
        await till.find("ben@example.com")  # Ann is dropped: the cache holds one
        hub.down()
        assert (await till.find("ann@example.com")).json()["customers"] == []
        assert [c["id"] for c in (await till.find("ben@example.com")).json()["customers"]] == [BEN]


async def test_points_online_pay_part_of_a_sale_committed_as_v5_with_the_balance_on_the_receipt(
        store_config: StoreConfig, hub: LoyaltyHub, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start((COFFEE, 2))  # 9.98
        without = await till.points(100)
        assert without.status_code == 409 and "attach the customer first" in without.text
        await till.find("2900000000017")
        attached = (await till.attach(ANN)).json()
        assert attached["customer"]["id"] == ANN and attached["customer"]["name"] == "Ann Example"
        tender_id = str(uuid.uuid4())
        paid = await till.points(300, tender_id)
        assert paid.status_code == 200, paid.text
        assert (await till.points(300, tender_id)).status_code == 200  # a resend: taken once
        assert hub.customers[ANN].points == 4700 and len(hub.kinds("points_redeem")) == 1
        too_much = await till.points(2000)
        assert too_much.status_code == 422 and "at most what is due (6.98 EUR)" in too_much.text
        receipt = await till.cash_and_complete()
        assert receipt["loyalty"] == {"customer": {"name": "Ann Example", "card": "*********0017", "tier": "silver"},
                                      "points": {"redeemed": 300, "balance": 4700, "offline": False}}
    [sale] = _sales(store_config)
    assert sale.v == 5 and sale.body["customer"] == {"id": ANN}
    points = next(t for t in sale.body["tenders"] if t["method"] == "points")
    assert points["amount"]["minor"] == 300 and points["points"] == {
        "customer": ANN, "points": 300, "redemption": str(uuid.uuid5(uuid.UUID(tender_id), "redemption")),
        "offline": False}


async def test_points_offline_stay_within_the_cap_and_the_budget_and_a_restart_does_not_reset_them(
        store_config: StoreConfig, hub: LoyaltyHub, http: httpx.AsyncClient) -> None:
    hub.budget, hub.cap = 500, 300
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start((COFFEE, 3))
        await till.find("ann@example.com")
        await till.find("ben@example.com")
        await till.attach(ANN)
        assert (await till.points(100)).status_code == 200  # online: the settings are kept
        hub.down()
        assert (await till.points(250)).status_code == 200  # offline: 250 of Ann's 300
        over_cap = await till.points(51)
        assert over_cap.status_code == 409 and "this one has 50 left" in over_cap.text
        receipt = await till.cash_and_complete()
        assert receipt["loyalty"]["points"] == {"redeemed": 350, "balance": 4650, "offline": True}
    async with running_edge(store_config) as edge:  # restarted: the sales have not left the store, so they count
        till = Till(http, edge.url)
        await till.start((COFFEE, 3))
        await till.attach(ANN)
        assert "this one has 50 left" in (await till.points(51)).text
        await till.attach(BEN)
        assert (await till.points(250)).status_code == 200  # the store: 500 - 250 taken by Ann
        over_budget = await till.points(1)
        assert over_budget.status_code == 409 and "the store may redeem at most 500 points until the hub has the sales" \
            in over_budget.text and "and has 0 left" in over_budget.text
        await till.cash_and_complete()
        metrics = (await http.get(f"{edge.url}/metrics")).text
        assert 'novapos_edge_loyalty_redemptions_total{method="points",outcome="offline"}' in metrics
        assert 'novapos_edge_loyalty_lookups_total{source="hub"}' in metrics
    offline = [t["points"] for sale in _sales(store_config) for t in sale.body["tenders"] if t["method"] == "points"]
    assert [(p["customer"], p["points"], p["offline"]) for p in offline] == [(ANN, 100, False), (ANN, 250, True),
                                                                              (BEN, 250, True)]
    assert len({p["redemption"] for p in offline}) == 3


async def test_offline_points_count_until_their_sale_reaches_the_hubs_stream_and_a_void_frees_them_at_once(
        store_config: StoreConfig, hub: LoyaltyHub, nats_server: EmbeddedNats, http: httpx.AsyncClient) -> None:
    """The budget and the cap bound what the hub has not received (a per-outage exposure, not a day): a void frees
    its points at once, a restart frees nothing, and the sale's arrival in the hub's stream frees them although
    the hub's loyalty service is still away."""
    hub.budget, hub.cap = 500, 300
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start((COFFEE, 3))
        await till.find("ann@example.com")
        await till.attach(ANN)
        assert (await till.points(100)).status_code == 200  # online: the settings are kept; not counted
        await till.cash_and_complete()
        hub.down()
        await till.start((COFFEE, 3))
        await till.attach(ANN)
        assert (await till.points(300)).status_code == 200  # offline: all of Ann's cap
        assert "this one has 0 left" in (await till.points(1)).text
        voided = await http.request("DELETE", f"{till.url}/cart", json={"override": MANAGER_OVERRIDE})
        assert voided.status_code == 200, voided.text
        await till.start((COFFEE, 3))
        await till.attach(ANN)
        assert (await till.points(300)).status_code == 200, "the void gave the cap back at once"
        await till.cash_and_complete()
        assert len(_sales(store_config)) == 2  # no stream to take them: both wait in the outbox
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start((COFFEE, 3))
        await till.attach(ANN)
        refused = await till.points(1)
        assert refused.status_code == 409 and "this one has 0 left" in refused.text  # a restart frees nothing
        await ensure_stream(nats_server)  # the link to the hub's stream is back (its loyalty service is not)

        async def sent() -> bool:
            return not _sales(store_config)
        await wait_until(sent, timeout=20)
        assert (await till.points(300)).status_code == 200  # the hub has the sale: Ann's cap is free again
        over = await till.points(1)
        assert over.status_code == 409 and "this one has 0 left" in over.text  # and counts this one until it has


async def test_a_gift_card_pays_online_only(store_config: StoreConfig, hub: LoyaltyHub,
                                            http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start((COFFEE, 1))
        short = await till.gift_card(GIFT_CARD, 4000)
        assert short.status_code == 422  # more than is due
        paid = await till.gift_card(GIFT_CARD, 400)
        assert paid.status_code == 200, paid.text
        assert hub.gift_cards[GIFT_CARD] == 2100
        hub.down()
        offline = await till.gift_card(GIFT_CARD, 99)
        assert offline.status_code == 409 and "gift cards need the hub" in offline.text
        receipt = await till.cash_and_complete()
        assert receipt["loyalty"]["gift_cards"] == [{"card": "************7890", "amount": 400, "balance_minor": 2100}]
    [sale] = _sales(store_config)
    card = next(t for t in sale.body["tenders"] if t["method"] == "gift_card")
    assert sale.v == 5 and card["gift_card"]["card"] == "************7890" and GIFT_CARD not in str(sale.body)


async def test_the_printed_receipt_shows_the_card_the_points_and_the_gift_card_left_even_after_a_restart(
        store_config: StoreConfig, hub: LoyaltyHub, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    """What the till learnt at the redemptions (the balances the hub answered) prints with the sale, though the sale
    event does not carry it: kept in the till's saved cart across a restart, then in the print job."""
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start((COFFEE, 2))  # 9.98
        await till.find("2900000000017")
        await till.attach(ANN)
        assert (await till.points(300)).status_code == 200
        assert (await till.gift_card(GIFT_CARD, 400)).status_code == 200
    async with running_edge(store_config) as edge:  # restarted between the redemptions and the sale
        till = Till(http, edge.url)
        await log_in(http, edge.url)
        await till.cash_and_complete()
        [printed] = await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
    lines = [" ".join(line.split()) for line in printed.splitlines()]
    assert "Loyalty card *********0017" in lines and "Points redeemed 300" in lines and "Points balance 4700" in lines
    assert "Gift card ************7890" in lines and "Left on the card 21.00 EUR" in lines
    assert "Ann" not in printed and "2900000000017" not in printed and GIFT_CARD not in printed
    [sale] = _sales(store_config)
    assert "balance" not in str(sale.body)  # the sale event is the v5 contract's, unchanged


async def test_a_void_gives_redemptions_back_and_one_the_hub_missed_is_owed_across_a_restart(
        store_config: StoreConfig, hub: LoyaltyHub, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start((COFFEE, 2))
        await till.find("ann@example.com")
        await till.attach(ANN)
        await till.points(200)
        await till.gift_card(GIFT_CARD, 300)
        assert hub.customers[ANN].points == 4800 and hub.gift_cards[GIFT_CARD] == 2200
        voided = await till.http.request("DELETE", f"{till.url}/cart", json={"override": MANAGER_OVERRIDE})
        assert voided.status_code == 200, voided.text

        async def given_back() -> bool:
            return hub.customers[ANN].points == 5000 and hub.gift_cards[GIFT_CARD] == 2500
        await wait_until(given_back, timeout=10)

        await till.start((COFFEE, 1))
        await till.attach(ANN)
        tender = (await till.points(100)).json()["tenders"][0]
        hub.down()  # the hub goes away before the void reaches it
        voided = await till.http.request("DELETE", f"{till.url}/tenders/{tender['id']}",
                                         json={"override": MANAGER_OVERRIDE})
        assert voided.status_code == 200 and voided.json()["loyalty_reversals_owed"] == 1
    assert hub.customers[ANN].points == 4900
    hub.up()
    async with running_edge(store_config) as edge:  # restarted: the owed reversal is asked again
        async def reversed_at_hub() -> bool:
            return hub.customers[ANN].points == 5000
        await wait_until(reversed_at_hub, timeout=15)
        till = Till(http, edge.url)
        await log_in(http, edge.url)

        async def nothing_owed() -> bool:
            return bool((await http.get(till.url)).json()["loyalty_reversals_owed"] == 0)
        await wait_until(nothing_owed, timeout=10)


async def test_enrol_attach_and_the_360_at_the_till(store_config: StoreConfig, hub: LoyaltyHub,
                                                   http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start()
        refused = await http.post(f"{till.url}/customers", json={"name": "Cy"})
        assert refused.status_code == 422 and "phone or an email" in refused.text
        enrolled = await http.post(f"{till.url}/customers", json={"name": "Cy Example", "email": "cy@example.com"})
        assert enrolled.status_code == 200 and enrolled.json()["customer"]["name"] == "Cy Example", enrolled.text
        assert hub.kinds("customer_create")[0]["actor"] == "alice"
        made = hub.kinds("customer_create")[0]["request"]
        assert str(uuid.UUID(made)) == made  # the till names every enrolment, so the hub enrols it once
        retry = str(uuid.uuid4())  # the page's enrolment id, sent again with the cashier's retry
        for _ in range(2):
            again = await http.post(f"{till.url}/customers", json={"name": "Cy Example", "email": "cy@example.com",
                                                                    "request": retry})
            assert again.status_code == 200, again.text
        assert [asked["request"] for asked in hub.kinds("customer_create")[1:]] == [retry, retry]
        bad = await http.post(f"{till.url}/customers", json={"name": "Cy", "email": "cy@example.com",
                                                              "request": "again"})
        assert bad.status_code == 422 and len(hub.kinds("customer_create")) == 3
        await till.attach(ANN)
        seen = (await http.get(f"{till.url}/customer")).json()
        assert seen["loyalty"]["points"] == 5000 and seen["loyalty"]["expiring"] == [
            {"points": 200, "expires_at": "2027-01-31"}] and seen["offline"] is False
        hub.down()
        offline = (await http.get(f"{till.url}/customer")).json()
        assert offline["offline"] is True and offline["message"] == OFFLINE and offline["loyalty"]["points"] == 5000
        detached = (await http.delete(f"{till.url}/customer")).json()
        assert detached["customer"] is None


async def test_a_return_of_a_sale_paid_with_points_gives_the_points_back_and_carries_the_customer(
        store_config: StoreConfig, hub: LoyaltyHub, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        await till.start((COFFEE, 2))  # 9.98: 3.00 by 300 points, 6.98 cash
        await till.find("ann@example.com")
        await till.attach(ANN)
        await till.points(300)
        order = (await till.cash_and_complete())["sale"]
        started = await http.post(f"{till.url}/returns", json={"order": order, "override": MANAGER_OVERRIDE})
        assert started.status_code == 200, started.text
        taken = await http.post(f"{till.url}/returns/lines", json={"original_line": 1, "quantity": 1,
                                                                   "override": MANAGER_OVERRIDE})
        assert taken.json()["refund"]["minor"] == 499 and taken.json()["refund_points"]["minor"] == 300
        done = await http.post(f"{till.url}/complete", json={"cart": taken.json()["cart"]})
        assert done.status_code == 200, done.text
        # the second coffee: the points were given back already, so its refund is all cash
        await http.post(f"{till.url}/returns", json={"order": order, "override": MANAGER_OVERRIDE})
        taken = await http.post(f"{till.url}/returns/lines", json={"original_line": 1, "quantity": 1,
                                                                   "override": MANAGER_OVERRIDE})
        assert taken.json()["refund_points"]["minor"] == 0
        assert (await http.post(f"{till.url}/complete", json={"cart": taken.json()["cart"]})).status_code == 200
    first, second = [event for event in waiting_events(store_config.state_dir) if event.type == "return.completed"]
    assert first.v == 3 and first.body["customer"] == {"id": ANN}
    assert [(r["method"], r["amount"]["minor"], r.get("points")) for r in first.body["refunds"]] == [
        ("points", 300, {"customer": ANN, "points": 300}), ("cash", 199, None)]
    assert second.v == 3 and [r["method"] for r in second.body["refunds"]] == ["cash"]


async def test_a_return_of_a_sale_paid_by_gift_card_refunds_to_the_card_scanned_or_in_cash(
        store_config: StoreConfig, hub: LoyaltyHub, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = Till(http, edge.url)
        orders = []
        for _ in range(2):
            await till.start((COFFEE, 1))  # 4.99: 4.00 by gift card, 0.99 cash
            await till.gift_card(GIFT_CARD, 400)
            orders.append((await till.cash_and_complete())["sale"])
        assert hub.gift_cards[GIFT_CARD] == 1700

        async def take_back(order: str) -> dict[str, Any]:
            await http.post(f"{till.url}/returns", json={"order": order, "override": MANAGER_OVERRIDE})
            taken = await http.post(f"{till.url}/returns/lines", json={"original_line": 1, "quantity": 1,
                                                                       "override": MANAGER_OVERRIDE})
            return dict(taken.json())
        state = await take_back(orders[0])
        assert state["refund_gift_card"]["minor"] == 400
        unscanned = await http.post(f"{till.url}/complete", json={"cart": state["cart"]})
        assert unscanned.status_code == 409 and "scan the gift card, or refund in cash instead" in unscanned.text
        refunded = await http.post(f"{till.url}/returns/gift-card", json={"card": GIFT_CARD})
        assert refunded.status_code == 200, refunded.text
        assert hub.gift_cards[GIFT_CARD] == 2100
        again = await http.post(f"{till.url}/returns/gift-card", json={"card": GIFT_CARD})
        assert again.status_code == 409 and hub.gift_cards[GIFT_CARD] == 2100  # refunded once
        assert (await http.post(f"{till.url}/complete", json={"cart": state["cart"]})).status_code == 200

        hub.down()  # the second return: the card cannot be refunded offline, so the cashier refunds in cash
        state = await take_back(orders[1])
        offline = await http.post(f"{till.url}/returns/gift-card", json={"card": GIFT_CARD})
        assert offline.status_code == 409 and "refund in cash" in offline.text
        assert (await http.post(f"{till.url}/returns/refund-in-cash", json={})).json()["refund_gift_card"]["minor"] == 0
        assert (await http.post(f"{till.url}/complete", json={"cart": state["cart"]})).status_code == 200
    first, second = [event for event in waiting_events(store_config.state_dir) if event.type == "return.completed"]
    assert first.v == 3 and [(r["method"], r["amount"]["minor"]) for r in first.body["refunds"]] == [
        ("gift_card", 400), ("cash", 99)]
    assert first.body["refunds"][0]["gift_card"]["card"] == "************7890" and GIFT_CARD not in str(first.body)
    assert second.v == 1 and [(r["method"], r["amount"]["minor"]) for r in second.body["refunds"]] == [("cash", 499)]
