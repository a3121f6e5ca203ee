"""The web till in a real headless Chromium when the hub's answer to a points or gift card tender is lost (the hub took
them; the till says it did not confirm): tapping the same tender again asks under the same id, so the hub confirms the
first redemption instead of taking a second (which the card's balance would not even cover), and nothing is left
owed back. Against a real edge and the loyalty hub stand-in on the real NATS."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import trio

from actors.till import rewards
from novapos.config import StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.edges import running_edge
from tests.loyalty_hub import ANN, GIFT_CARD
from tests.pos import COFFEE, log_in
from tests.test_till_loyalty_unsure import UnsureHub
from tests.till_page import CHROMEDRIVER, CHROMIUM, TillPage

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("chromium and chromedriver are missing: `make test` installs them (apt-get, as root)")
    pytest.skip("chromium/chromedriver not installed (run `make browser` as root)", allow_module_level=True)


def unconfirmed_then_retried(url: str, cookies: httpx.Cookies, hub: UnsureHub) -> None:
    with TillPage(url) as page:
        page.open(cookies)
        page.logged_in("alice")
        page.scan(COFFEE)
        page.scan(COFFEE)
        page.scan(COFFEE)
        page.scan(COFFEE)
        page.scan(COFFEE)
        page.scan(COFFEE)  # 29.94
        page.type_in("customer-query", "2900000000017")
        page.tap("#customer-find")
        page.text_in("customer-results", "Ann Example")
        page.tap("#customer-results button")
        page.text_in("customer-name", "Ann Example")

        hub.spoil["points_redeem"] = "silent"
        page.type_in("amount", "3.00")
        page.tap("#points")
        page.text_in("message", "did not confirm")
        page.type_in("amount", "3.00")
        page.tap("#points")  # the same tender again
        page.text_in("tenders", "Points 300")

        hub.spoil["gift_card_redeem"] = "silent"
        page.type_in("gift-card-number", GIFT_CARD)
        page.type_in("amount", "25.00")  # all the card holds
        page.tap("#gift-card")
        page.text_in("message", "did not confirm")
        page.type_in("gift-card-number", GIFT_CARD)
        page.type_in("amount", "25.00")
        page.tap("#gift-card")
        page.text_in("tenders", "Gift card ************7890")
        page.screenshot("unconfirmed-01-retried")


async def test_a_tender_the_hub_did_not_confirm_is_retried_under_the_same_id_and_taken_once(
        store_config: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rewards, "ASK_WITHIN_S", 0.5)
    with UnsureHub(nats_server) as hub:
        async with running_edge(store_config) as edge:
            await log_in(http, edge.url, "till-1", "alice")
            await trio.to_thread.run_sync(unconfirmed_then_retried, edge.url, http.cookies, hub)
            state: dict[str, Any] = (await http.get(f"{edge.url}/api/tills/till-1")).json()
    assert hub.customers[ANN].points == 4700 and hub.gift_cards[GIFT_CARD] == 0  # each taken once
    for kind in ("points_redeem", "gift_card_redeem"):
        first, again = hub.kinds(kind)
        assert first["redemption"] == again["redemption"], kind
    assert state["loyalty_reversals_owed"] == 0
    assert [(t["method"], t["amount"]["minor"]) for t in state["tenders"]] == [("points", 300), ("gift_card", 2500)]
