"""The web till's customer panel in a real headless Chromium, against a real edge and the loyalty hub stand-in on
the real NATS: a customer found by a scanned card, attached, their 360 (points, tier, what expires soon), part of the
sale paid with points and part with a gift card, the rest in cash, committed as v5; then, with the hub away, the same
customer found from the store's recent customers (said so on the page) and a gift card refused with the edge's
sentence; a new customer enrolled. Screenshots under test-artifacts/till/."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import trio

from novapos.config import StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.edges import running_edge, waiting_events
from tests.loyalty_hub import ANN, GIFT_CARD, LoyaltyHub
from tests.pos import COFFEE, log_in
from tests.till_page import CHROMEDRIVER, CHROMIUM, TillPage

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("chromium and chromedriver are missing: `make test` installs them (apt-get, as root)")
    pytest.skip("chromium/chromedriver not installed (run `make browser` as root)", allow_module_level=True)


def customer_sale(url: str, cookies: httpx.Cookies, hub: LoyaltyHub) -> dict[str, Any]:
    with TillPage(url) as page:
        page.open(cookies)
        page.logged_in("alice")
        page.scan(COFFEE)
        page.scan(COFFEE)
        page.text_in("sum-total", "9.98 EUR")
        page.type_in("customer-query", "2900000000017")  # the loyalty card, scanned into the customer field
        page.tap("#customer-find")
        page.text_in("customer-results", "Ann Example · *********0017 · 5000 pts · silver")
        page.tap("#customer-results button")
        page.text_in("customer-name", "Ann Example")
        page.text_in("customer-points", "5000 points")
        page.tap("#customer-360")
        page.text_in("customer-details", "200 points expire on 2027-01-31")
        page.screenshot("customer-01-attached")

        page.type_in("amount", "3.00")
        page.tap("#points")
        page.text_in("tenders", "Points 300")
        page.text_in("sum-due", "6.98 EUR")
        page.type_in("gift-card-number", GIFT_CARD)
        page.type_in("amount", "4.00")
        page.tap("#gift-card")
        page.text_in("message", "gift card ************7890: 21.00 EUR left")
        page.text_in("tenders", "Gift card ************7890")
        layout = page.layout()
        page.screenshot("customer-02-points-and-gift-card")
        page.tap("#cash")
        page.tap("#exact")
        page.text_in("message", "Sale 1 complete")

        hub.down()
        page.scan(COFFEE)
        page.type_in("customer-query", "ann@example.com")
        page.tap("#customer-find")
        page.text_in("customer-note", "offline: from this store's recent customers")
        page.text_in("customer-results", "Ann Example")
        page.type_in("gift-card-number", GIFT_CARD)
        page.tap("#gift-card")
        page.text_in("message", "gift cards need the hub")
        page.screenshot("customer-03-offline")

        hub.up()
        page.tap("#customer-enrol-open")
        page.type_in("enrol-name", "Cy Example")
        page.type_in("enrol-email", "cy@example.com")
        page.tap("#enrol")
        page.text_in("message", "Enrolled Cy Example")
        page.text_in("customer-name", "Cy Example")
        return layout


async def test_the_customer_panel_points_and_gift_card_in_the_web_till(
        store_config: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient) -> None:
    with LoyaltyHub(nats_server) as hub:
        async with running_edge(store_config) as edge:
            await log_in(http, edge.url, "till-1", "alice")
            layout = await trio.to_thread.run_sync(customer_sale, edge.url, http.cookies, hub)
    assert layout["overflow"] <= 0 and layout["small"] == [], layout
    [sale] = [event for event in waiting_events(store_config.state_dir) if event.type == "sale.completed"]
    assert sale.v == 5 and sale.body["customer"] == {"id": ANN}
    assert [(t["method"], t["amount"]["minor"]) for t in sale.body["tenders"]] == [
        ("points", 300), ("gift_card", 400), ("cash", 298)]
    assert hub.customers[ANN].points == 4700 and hub.gift_cards[GIFT_CARD] == 2100
