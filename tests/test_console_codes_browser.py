"""The console's Coupons and Gift cards tabs in a real headless Chromium (hub, PostgreSQL, NATS): a tenant admin
makes a batch of single-use codes of a code_only promotion and withdraws one, issues a gift card (its number shown
once), finds it by number, tops it up and blocks it; a store manager sees the codes with nothing to change and no
Gift cards tab."""

from __future__ import annotations

from typing import Any

import trio

from hub.app import run_hub
from novapos.config import HubConfig
from tests.codes_support import PROMOTION, code_only_promotion
from tests.conftest import query
from tests.identity import add_user, grant
from tests.stock_world import build_world, on_database
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import TABLET, Page  # isort: skip  (imports selenium: after the skip above)


def _admin(url: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with Page(url) as page:
        page.open("#coupons")
        page.sign_in("ada")
        page.find("#coupon-make")
        page.fill({"f-coupon-promotion": PROMOTION, "f-coupon-kind": "batch", "f-coupon-count": "5",
                   "f-coupon-expires": "2099-12-31"})
        page.find("#coupon-make button[type=submit]").click()
        page.text_in("status", "5 single-use codes made")
        seen["batch"] = page.find("#coupon-batch-codes").text.split("\n")
        page.until(lambda b: len(page.rows("coupon-codes")) == 5, "the five codes in the list")
        page.screenshot("70-coupons")
        page.go(f"#coupons/{seen['batch'][0]}")
        page.fill({"f-coupon-reason": "printed twice"})
        page.find("#coupon-withdraw button[type=submit]").click()
        page.text_in("status", "withdrawn")

        page.go("#gift-cards")
        page.fill({"f-gift-amount": "25.00"})
        page.find("#gift-card-issue button[type=submit]").click()
        page.text_in("status", "issued with 25.00 EUR")
        seen["number"] = page.find("#gift-card-number").text
        page.screenshot("71-gift-card-issued")
        page.fill({"f-gift-number": seen["number"]})
        page.find("#gift-card-lookup button[type=submit]").click()
        page.find("#gift-card-top-up")
        page.fill({"f-gift-top-up": "5.50", "f-gift-top-up-reason": "a birthday"})
        page.find("#gift-card-top-up button[type=submit]").click()
        page.text_in("status", "the balance is 30.50 EUR")
        page.fill({"f-gift-block-reason": "reported lost"})
        page.find("#gift-card-block button[type=submit]").click()
        page.text_in("status", "The card is blocked")
        seen["card"] = page.find("#view").text
        seen["ledger"] = page.rows("gift-card-ledger")
        page.screenshot("72-gift-card-blocked")
    return seen


def _manager(url: str) -> dict[str, Any]:
    with Page(url, size=TABLET) as page:
        page.open("#coupons")
        page.sign_in("mona")
        page.until(lambda b: len(page.rows("coupon-codes")) == 5, "the codes")
        return {"forms": page.js("return document.querySelectorAll('#coupon-make').length"),
                "tabs": page.js("return [...document.querySelectorAll('#nav a')].filter(a => !a.hidden)"
                                ".map(a => a.textContent)"), "overflow": page.overflow()}


async def test_an_admin_makes_codes_and_manages_a_gift_card(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await on_database(url, code_only_promotion)
        await add_user(url, "ada", grant("tenant_admin"))
        await add_user(url, "mona", grant("store_manager", "store-001"))
        seen = await trio.to_thread.run_sync(_admin, hub.url)
        managed = await trio.to_thread.run_sync(_manager, hub.url)
        nursery.cancel_scope.cancel()

    assert len(set(seen["batch"])) == 5
    codes = {row["code"]: row["active"] for row in await query(url, "SELECT code, active FROM coupon_codes")}
    assert codes == {code: code != seen["batch"][0] for code in seen["batch"]}
    assert len(seen["number"].replace(" ", "")) == 19
    assert "30.50 EUR" in seen["card"] and "reported lost" in seen["card"]
    assert [row[1] for row in seen["ledger"]] == ["top up", "issue"]
    [card] = await query(url, "SELECT balance_minor, active FROM gift_cards")
    assert tuple(card) == (3050, False)
    actions = [row["action"] for row in await query(url, "SELECT action FROM audit_records WHERE action LIKE 'coupon.%'"
                                                           " OR action LIKE 'gift_card.%' ORDER BY seq")]
    assert actions == ["coupon.batch_created", "coupon.blocked", "gift_card.issued", "gift_card.topped_up",
                       "gift_card.blocked"]
    assert managed["forms"] == 0 and "Coupons" in managed["tabs"] and "Gift cards" not in managed["tabs"], managed
    assert managed["overflow"] == 0, managed
