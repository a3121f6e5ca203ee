"""The console's Promotions tab in a real headless Chromium (hub, PostgreSQL, NATS): a tenant admin sets the
approval threshold, drafts a "3 for 2" on coffee, simulates it over past sales and sees its predicted cost per
store, submits it (over the threshold: pending) and cannot approve it herself; a second admin approves it and
schedules its end; the promotion is live at the catalog version it bumped, and the approval is audited. A store
manager reads the promotion with no buttons to change it."""

from __future__ import annotations

from typing import Any

import trio

from hub.app import run_hub
from novapos.config import HubConfig
from tests.conftest import query
from tests.identity import add_user, grant
from tests.promotions_support import past_sales, promotion_world
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import TABLET, Page  # isort: skip  (imports selenium: after the skip above)


def _author(url: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with Page(url) as page:
        page.open("#promotions")
        page.sign_in("ada")
        page.find("#promotion-settings")
        page.fill({"f-promotion-threshold": "10.00", "f-promotion-days": "28"})
        page.find("#promotion-settings button[type=submit]").click()
        page.text_in("status", "Promotion settings saved: approval above 10.00 EUR")
        page.fill({"f-promotion-name": "Coffee 3 for 2", "f-promotion-kind": "buy_x_get_y", "f-promotion-buy": "2",
                   "f-promotion-get": "1", "f-promotion-reward": "100", "f-promotion-categories": "food/coffee"})
        page.find("#promotion-new button[type=submit]").click()
        page.text_in("promotion-facts", "buy 2 get 1 free on food/coffee")
        seen["id"] = page.js("return document.getElementById('view').dataset.item")
        page.find("#promotion-simulate button[type=submit]").click()
        page.text_in("status", "Simulated: it would have cost 59.88 EUR over 28 days")
        seen["simulation"] = page.find("#promotion-simulation").text
        seen["per store"] = page.rows("promotion-per-store")
        page.screenshot("70-promotion-simulated")
        page.find("#promotion-submit button[type=submit]").click()
        page.text_in("status", "Submitted: the promotion is pending")
        page.find("#promotion-approve button[type=submit]").click()
        page.text_in("problem", "a second person with promotions.manage must approve it")
        page.screenshot("71-promotion-pending")
    return seen


def _approver(url: str, promotion: str) -> dict[str, Any]:
    with Page(url) as page:
        page.open(f"#promotions/{promotion}")
        page.sign_in("bob")
        page.text_in("view", "Waiting for a second person's approval (submitted by ada)")
        page.fill({"f-promotion-reason": "within the December budget"})
        page.find("#promotion-approve button[type=submit]").click()
        page.text_in("status", "Approved: the promotion is live")
        page.fill({"f-promotion-ends": "2099-12-31T23:00"})
        page.find("#promotion-schedule button[type=submit]").click()
        page.text_in("status", "Scheduled: the promotion is live")
        page.text_in("promotion-facts", "2099")
        page.screenshot("72-promotion-approved-scheduled")
        page.go("#promotions")
        page.until(lambda b: "live" in str(page.rows("promotions")), "the live promotion in the list")
        return {"facts": page.find("#view").text, "rows": page.rows("promotions")}


def _reader(url: str, promotion: str) -> dict[str, Any]:
    with Page(url, size=TABLET) as page:
        page.open(f"#promotions/{promotion}")
        page.sign_in("mona")
        page.text_in("promotion-facts", "buy 2 get 1 free")
        seen = {"forms": page.js("return document.querySelectorAll('#view form').length"), "overflow": page.overflow()}
        page.screenshot("73-promotion-store-manager")
        return seen


async def test_an_admin_drafts_simulates_and_submits_and_a_second_admin_approves_and_schedules(
        hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await past_sales(url, "store-001", 8, quantity=3)  # each: 3 x 4.99, one free: 4.99 off
        await past_sales(url, "store-003", 4, quantity=3, days_ago=2)
        for login in ("ada", "bob"):
            await add_user(url, login, grant("tenant_admin"))
        await add_user(url, "mona", grant("store_manager", "store-001"))
        seen = await trio.to_thread.run_sync(_author, hub.url)
        approved = await trio.to_thread.run_sync(_approver, hub.url, seen["id"])
        read = await trio.to_thread.run_sync(_reader, hub.url, seen["id"])
        nursery.cancel_scope.cancel()

    assert "59.88 EUR" in seen["simulation"] and "12 sales" in seen["simulation"], seen
    assert seen["per store"] == [["store-001", "39.92 EUR", "8", "8"], ["store-003", "19.96 EUR", "4", "4"]]
    [row] = approved["rows"]
    assert row[0] == "Coffee 3 for 2" and row[1] == "live" and row[2] == "2", row
    assert read["forms"] == 0 and read["overflow"] == 0, read
    [promotion] = await query(url, "SELECT state, live_revision, version FROM promotions")
    assert tuple(promotion)[:2] == ("live", 2)
    audit = await query(url, "SELECT actor, action FROM audit_records WHERE action LIKE 'promotion.%' ORDER BY seq")
    assert [tuple(r) for r in audit] == [("ada", "promotion.settings_set"), ("ada", "promotion.created"),
                                         ("ada", "promotion.submitted"), ("bob", "promotion.approved"),
                                         ("bob", "promotion.scheduled")]
