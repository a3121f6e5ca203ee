"""The console's Loyalty tab in a real headless Chromium (hub, PostgreSQL, NATS): a tenant admin changes the program
(earn rule, tiers, a bonus, the offline budget) and adjusts a customer's points with a reason, reading the ledger;
a store manager sees the program and the account with no form to change either, on a tablet without sideways
scrolling."""

from __future__ import annotations

from typing import Any

import asyncpg
import trio

from hub.app import run_hub
from hub.loyalty import accounts
from hub.loyalty import program as programs
from novapos.config import HubConfig
from tests.conftest import query
from tests.identity import add_user, grant
from tests.loyalty_support import ALICE
from tests.stock_world import build_world, on_database
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import TABLET, Page  # isort: skip  (imports selenium: after the skip above)


def _admin(url: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with Page(url) as page:
        page.open("#loyalty")
        page.sign_in("ada")
        page.text_in("view", "Loyalty program")
        page.fill({"f-earn-points": "2", "f-offline-budget": "750", "f-bonuses": "category food/dairy 5",
                   "f-tiers": "Member; 0.00; 1\nVIP; 300.00; 2"})
        page.find("#loyalty-program button[type=submit]").click()
        page.text_in("status", "Loyalty program saved")
        seen["program"] = page.find("#view").text
        page.screenshot("70-loyalty-program")
        page.fill({"f-loyalty-customer": str(ALICE)})
        page.find("#loyalty-find button[type=submit]").click()
        page.text_in("view", "Ledger (newest first)")
        page.fill({"f-adjust-points": "-40", "f-adjust-reason": "a points promise corrected"})
        page.find("#loyalty-adjust button[type=submit]").click()
        page.text_in("status", "Adjusted: 460 points now")
        page.until(lambda b: len(page.rows("loyalty-ledger")) == 2, "the adjustment in the ledger")
        seen["ledger"] = page.rows("loyalty-ledger")
        seen["account"] = page.find("#view").text
        page.screenshot("71-loyalty-account")
    return seen


def _manager(url: str) -> dict[str, Any]:
    with Page(url, size=TABLET) as page:
        page.open(f"#loyalty/{ALICE}")
        page.sign_in("mona")
        page.text_in("view", "Ledger (newest first)")
        seen = {"forms": page.js("return document.querySelectorAll('#view form').length"), "overflow": page.overflow()}
        page.go("#loyalty")
        page.text_in("view", "Loyalty program")
        seen["program forms"] = page.js("return document.querySelectorAll('#view form').length")
        return seen


async def test_an_admin_changes_the_program_and_adjusts_points_a_manager_only_reads(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        await add_user(url, "mona", grant("store_manager", "store-001"))

        async def seed(pool: asyncpg.Pool) -> None:
            await pool.execute(f"INSERT INTO customers (tenant, id, created_by) VALUES ('demo', '{ALICE}', 'test')")
            async with pool.acquire() as conn:
                await accounts.post(conn, "demo", ALICE, 500, kind="adjust", key="seed", actor="test",
                                    program=await programs.load(conn, "demo"), reason="welcome")
        await on_database(url, seed)
        seen = await trio.to_thread.run_sync(_admin, hub.url)
        managed = await trio.to_thread.run_sync(_manager, hub.url)
        nursery.cancel_scope.cancel()

    assert "2 point(s) per 1.00 EUR spent" in seen["program"] and "VIP from 300.00 EUR ×2" in seen["program"], seen
    assert "category food/dairy: +5 per unit" in seen["program"] and "750 points" in seen["program"], seen
    [newest, oldest] = seen["ledger"]
    assert (newest[1], newest[2], newest[3], newest[6], newest[7]) == ("adjust", "-40", "460", "ada",
                                                                         "a points promise corrected"), newest
    assert (oldest[2], oldest[3]) == ("+500", "500"), oldest
    [row] = await query(url, "SELECT earn_points_per_unit, offline_store_budget_points, tiers::text FROM"
                             " loyalty_programs")
    assert (row[0], row[1]) == (2, 750) and '"VIP"' in row[2] and "2000000" in row[2]
    actions = [tuple(r) for r in await query(url, "SELECT actor, action FROM audit_records WHERE action LIKE"
                                                  " 'loyalty.%' ORDER BY seq")]
    assert actions == [("ada", "loyalty.program_changed"), ("ada", "loyalty.adjusted")]
    assert managed == {"forms": 0, "overflow": 0, "program forms": 1}, managed  # the program page: only "open account"
