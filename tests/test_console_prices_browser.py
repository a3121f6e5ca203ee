"""A price set in the hub console page reaches the demo store's till: real hub, PostgreSQL, NATS and edge, the
page in a real headless Chromium; a price scheduled for tomorrow is listed but not charged yet."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import trio

from edge.app import run_edge
from hub.app import run_hub
from hub.catalog.demo import seed_demo_catalog
from hub.db import create_pool
from novapos.config import HubConfig, StoreConfig
from tests.catalog_support import add_tenancy
from tests.conftest import wait_until
from tests.identity import add_user, grant
from tests.pos import log_in
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import Page  # isort: skip  (imports selenium: after the skip above)
from tests.till_page import TillPage  # isort: skip

COFFEE, MILK = "4006381333931", "5000112637922"


async def _seed(database_url: str) -> None:
    pool = await create_pool(database_url, max_size=2)
    try:
        await seed_demo_catalog(pool)
    finally:
        await pool.close()


def _set_prices(url: str, tomorrow: str) -> dict[str, object]:
    with Page(url) as page:
        page.open("#catalog/COF")
        page.sign_in("ada")
        page.until(lambda b: b.execute_script("return document.getElementById('view').dataset.item") == "COF",
                   "the coffee's page")
        page.fill({"f-sku": "COF-250", "f-amount": "5.49", "f-scope": "store", "f-scope_id": "store-001"})
        page.find("#price-form button").click()
        page.text_in("status", "Price 5.49 EUR set for COF-250")
        variants = page.rows("variants")
        page.screenshot("05-price-set")
        page.go("#catalog/MLK")
        page.fill({"f-sku": "MLK-1L", "f-amount": "1.59", "f-scope": "tenant", "f-effective_from": tomorrow})
        page.find("#price-form button").click()
        page.text_in("status", "Price 1.59 EUR set for MLK-1L from")
        scheduled = page.rows("variants")
        page.screenshot("06-price-scheduled")
        return {"variants": variants, "scheduled": scheduled}


def _till_page(url: str, cookies: httpx.Cookies) -> str:
    """The till page, logged in as alice over the API, with its product list open."""
    with TillPage(url) as page:
        page.open(cookies)
        page.logged_in("alice")
        page.find("#catalog summary").click()
        page.find(f"#products button[data-barcode='{COFFEE}']")
        page.screenshot("07-till-shows-the-new-price")
        return str(page.find("#products").text)


async def test_a_price_set_in_the_console_reaches_the_demo_stores_till(
        hub_config: HubConfig, store_config: StoreConfig) -> None:
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
        hub = await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(asyncio.run, add_tenancy(hub_config.database_url))
        await trio.to_thread.run_sync(asyncio.run, _seed(hub_config.database_url))
        await add_user(hub_config.database_url, "ada", grant("tenant_admin"))
        edge = await nursery.start(run_edge, store_config)
        await log_in(http, edge.url)  # the product list is behind the till login

        async def till_price(code: str) -> int | None:
            answer = (await http.get(f"{edge.url}/api/products", params={"q": code})).json()
            return next((p["price"]["minor"] for p in answer["products"] if p["barcode"] == code), None)

        async def synced() -> bool:  # the hub's catalog (version 3: two tax classes, then the import) is at the till
            return (await http.get(f"{edge.url}/api/products")).json()["catalog_version"] >= 3
        await wait_until(synced, timeout=30)
        assert await till_price(COFFEE) == 499 and await till_price(MILK) == 129
        tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")  # the browser's local time
        seen = await trio.to_thread.run_sync(_set_prices, hub.url, tomorrow)
        async def new_price_at_the_till() -> bool:
            return await till_price(COFFEE) == 549
        await wait_until(new_price_at_the_till, timeout=10)
        await trio.sleep(0.5)
        assert await till_price(MILK) == 129  # tomorrow's price is not today's
        shown = await trio.to_thread.run_sync(_till_page, edge.url, http.cookies)
        nursery.cancel_scope.cancel()

    assert any("store store-001: 5.49 EUR" in " ".join(row) for row in seen["variants"]), seen  # type: ignore[union-attr]
    assert any("tenant: 1.59 EUR from" in " ".join(row) for row in seen["scheduled"]), seen  # type: ignore[union-attr]
    assert "5.49" in shown, shown
