"""Promotions and coupons in the web till, in a real headless Chromium: three coffees scanned, the page shows on the
line what "Coffee 3 for 2" took off and why, with "You saved"; a coupon typed in is reserved at the hub stand-in
(real NATS) and shown applied; the sale completes as v5 and the printed receipt explains both. Screenshots under
test-artifacts/till/."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import trio

from mocks.network_printer import MockNetworkPrinter
from novapos.config import StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.catalog import seed_catalog
from tests.coupon_hub import coupon_hub
from tests.edges import running_edge, waiting_events
from tests.pos import COFFEE, log_in
from tests.test_till_promotions import HUB_CODE, SAVE_10, promoted_catalog
from tests.till_page import CHROMEDRIVER, CHROMIUM, TillPage

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("chromium and chromedriver are missing: `make test` installs them (apt-get, as root)")
    pytest.skip("chromium/chromedriver not installed (run `make browser` as root)", allow_module_level=True)


def promoted_sale(url: str, cookies: httpx.Cookies) -> dict[str, Any]:
    with TillPage(url) as page:
        page.open(cookies)
        page.logged_in("alice")
        for count in (1, 2, 3):
            page.scan(COFFEE)
            page.text_in("lines", f"{count} ×")
        page.text_in("lines", "Coffee 3 for 2 -4.99 EUR")  # on the line: which promotion took what
        page.text_in("promotions", "Coffee 3 for 2")
        explanation = page.js("return document.querySelector('#promotions .note').textContent")
        page.text_in("sum-saved", "4.99 EUR")
        page.text_in("sum-total", "9.98 EUR")
        page.screenshot("promo-01-three-for-two")

        page.type_in("coupon", "save-7q2x")
        page.tap("#coupon-add")
        page.text_in("message", f"Coupon {HUB_CODE} applied")
        page.text_in("coupons", f"Coupon {HUB_CODE}")
        page.text_in("promotions", "Coupon 10% off")
        page.text_in("sum-total", "8.98 EUR")
        page.text_in("sum-saved", "5.99 EUR")
        layout = page.layout()
        page.screenshot("promo-02-coupon-applied")

        page.type_in("coupon", "NOSUCH")
        page.tap("#coupon-add")
        page.text_in("message", "NOSUCH")  # the hub's sentence: no such code
        page.tap("#cash")
        page.tap("#exact")
        page.text_in("message", "Sale 1 complete")
        page.screenshot("promo-03-sold")
        return {"explanation": explanation, "layout": layout}


async def test_a_buy_two_get_one_is_shown_and_explained_and_a_coupon_applied_in_the_web_till(
        store_config: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient,
        printer: MockNetworkPrinter) -> None:
    seed_catalog(store_config.state_dir, promoted_catalog())
    with coupon_hub(nats_server, {HUB_CODE: SAVE_10.id}) as hub:
        async with running_edge(store_config) as edge:
            await log_in(http, edge.url, "till-1", "alice")
            seen = await trio.to_thread.run_sync(promoted_sale, edge.url, http.cookies)
            assert "2" in seen["explanation"] and "1" in seen["explanation"], seen
            assert seen["layout"]["overflow"] <= 0 and seen["layout"]["small"] == [], seen["layout"]
            [event] = [e for e in waiting_events(store_config.state_dir) if e.type == "sale.completed"]
            assert event.v == 5 and event.body["total"]["minor"] == 898
            assert [c["code"] for c in event.body["coupons"]] == [HUB_CODE]
            printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
            assert "Coffee 3 for 2" in printed[0] and "Coupon 10% off" in printed[0] and "You saved" in printed[0]
    assert hub.kinds() == ["coupon_reserve", "coupon_reserve"]
