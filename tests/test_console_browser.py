"""The hub console page in a real headless Chromium against a real hub and PostgreSQL: signing in and out,
a section per permission, hostile names shown as text, a stock adjustment that needs a reason, a catalog CSV
past the door's 64 KiB imported with its progress shown, and the layout at 1366x768 and on a tablet.
Screenshots go to test-artifacts/console/."""

from __future__ import annotations

from pathlib import Path

import trio
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from hub.app import run_hub
from novapos.config import HubConfig
from tests.conftest import query
from tests.identity import add_user, grant
from tests.stock_world import build_world
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import DESKTOP, TABLET, Page  # isort: skip  (imports selenium: after the skip above)

SECTIONS = ("#fleet", "#catalog", "#catalog/coffee", "#stock", "#orders", "#dead-letters", "#users", "#audit")
HOSTILE_NAME = '<img src=x onerror="document.body.dataset.pwned=1">Beans'


def _catalog_csv(path: Path, rows: int) -> int:
    """A catalog CSV of `rows` variants (one with a bad price); its size in bytes."""
    lines = ["product,product_name,tax_class,attributes,sku,barcodes,price,price_overrides"]
    lines += [f"bulk-{n},Bulk product number {n} in a long enough name,std,,BULK-{n},,{1 + n % 50}.{n % 100:02d},"
              for n in range(rows)]
    lines[7] = "bulk-bad,A product with a price that is not one,std,,BULK-BAD,,four euros,"
    path.write_text("\n".join(lines) + "\n")
    return path.stat().st_size


def _admin_session(url: str, csv: Path, database_url: str, token: trio.lowlevel.TrioToken) -> dict[str, object]:
    with Page(url) as page:
        page.open()
        page.find("#signin-form")
        page.screenshot("01-sign-in")
        page.sign_in("ada", "not her password")
        page.text_in("problem", "the login or the password is wrong")
        page.sign_in("carl")
        page.text_in("problem", "cashiers sign in at the till")
        page.sign_in("ada")
        page.text_in("who", "Ada (ada) · demo · tenant admin")
        links = page.js("return [...document.querySelectorAll('#nav a')].filter(a => !a.hidden).map(a => a.textContent)")
        assert links == ["Fleet", "Catalog and prices", "Stock", "Orders", "Drawers and Z reports", "Dead letters", "Users and roles", "Audit",
                         "Payments", "Customers", "Loyalty", "Promotions", "Coupons", "Gift cards"]

        page.go("#catalog")
        page.fill({"f-q": "Beans"})
        page.find("#product-search button").click()
        page.until(lambda b: any(HOSTILE_NAME in row for row in page.rows("products")), "the hostile name as text")
        assert page.js("return document.body.dataset.pwned") is None and not page.js("return document.images.length")
        page.js("document.querySelector('#products tbody tr').focus()")  # rows open from the keyboard too
        ActionChains(page.browser).send_keys(Keys.ENTER).perform()
        page.until(lambda b: b.execute_script("return location.hash") == "#catalog/beans", "the product by Enter")
        page.text_in("view", HOSTILE_NAME + " (beans)")
        page.go("#catalog")

        page.find("#f-file").send_keys(str(csv))
        page.find("#import-form button").click()
        page.text_in("import-status", "Imported: catalog version")
        progress = page.js("const p = document.getElementById('import-progress'); return [p.value, p.max]")
        said = page.find("#import-status").text
        refused = page.rows("import-errors")
        page.screenshot("02-catalog-import")

        page.go("#stock")
        page.fill({"f-adj-location": "s1-floor", "f-adj-sku": "COF-250", "f-adj-quantity": "-2"})
        page.find("#adjust-form button").click()  # no reason: the form itself refuses
        invalid = page.js("return document.getElementById('f-adj-reason').matches(':invalid')")
        page.fill({"f-adj-reason": "two bags torn in delivery"})
        page.find("#adjust-form button").click()
        page.text_in("status", "Adjusted COF-250 at s1-floor: 8 on hand")
        page.until(lambda b: any("two bags torn in delivery" in row for row in page.rows("movements")),
                   "the adjustment in the movements")
        page.screenshot("03-stock-adjusted")
        desktop = {section: _overflow_after(page, section) for section in SECTIONS}

        page.browser.set_window_size(*TABLET)
        menu = page.find("#menu")
        collapsed = not page.find("#nav").is_displayed()
        menu.click()
        opened = page.find("#nav").is_displayed()
        page.browser.find_element(By.CSS_SELECTOR, "#nav a[href='#stock']").click()
        tablet = {section: _overflow_after(page, section) for section in SECTIONS}
        page.go("#fleet")
        page.screenshot("04-tablet-fleet")

        page.find("#signout").click()
        page.text_in("problem", "You are signed out")
        page.open("#stock")
        page.until(lambda b: page.find("#signin-form").is_displayed(), "the sign-in form after signing out")

        page.browser.set_window_size(*DESKTOP)
        page.sign_in("ada")
        page.text_in("who", "Ada (ada)")
        trio.from_thread.run(query, database_url, "DELETE FROM console_sessions", trio_token=token)  # ended at the hub
        page.js("location.hash = '#catalog'")  # the next request is a 401: back at the sign-in form, saying why
        page.until(lambda b: page.find("#signin-form").is_displayed(), "the sign-in form after the session ended")
        page.text_in("problem", "your session has ended")
        assert not page.find("#view").is_displayed() and not page.find("#nav").is_displayed()
        return {"progress": progress, "said": said, "refused": refused, "invalid": invalid, "desktop": desktop,
                "collapsed": collapsed, "opened": opened, "tablet": tablet}


def _overflow_after(page: Page, section: str) -> int:
    page.go(section)
    return page.overflow()


async def test_an_admin_signs_in_imports_adjusts_stock_and_signs_out_in_the_page(
        hub_config: HubConfig, tmp_path: Path) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await query(url, "INSERT INTO products (tenant, product, name, tax_class, version) "
                         "VALUES ('demo', 'beans', $1, 'std', 1)", HOSTILE_NAME)
        await query(url, "INSERT INTO stock_balances (tenant, location_id, sku, on_hand) SELECT 'demo', id, 'COF-250', 10"
                         " FROM locations WHERE tenant = 'demo' AND location = 's1-floor'")
        await add_user(url, "ada", grant("tenant_admin"))
        await add_user(url, "carl", grant("cashier", "store-001"))
        csv = tmp_path / "catalog.csv"
        assert _catalog_csv(csv, 1500) > 64 * 1024  # past the door's limit for any other request
        seen = await trio.to_thread.run_sync(_admin_session, hub.url, csv, url, trio.lowlevel.current_trio_token())
        nursery.cancel_scope.cancel()

    assert seen["progress"] == [1500, 1500], seen
    assert "1499 rows landed" in str(seen["said"]) and "1 refused" in str(seen["said"]), seen
    assert seen["refused"] == [["8", "price", seen["refused"][0][2]]] and "four euros" in seen["refused"][0][2], seen
    assert (await query(url, "SELECT count(*) AS n FROM variants WHERE sku LIKE 'BULK-%'"))[0]["n"] == 1499
    assert seen["invalid"] is True
    moved = await query(url, "SELECT on_hand_change, reason FROM stock_movements WHERE kind = 'adjustment'")
    assert [(row["on_hand_change"], row["reason"]) for row in moved] == [(-2, "two bags torn in delivery")]
    assert seen["desktop"] == dict.fromkeys(SECTIONS, 0), seen
    assert seen["collapsed"] and seen["opened"] and seen["tablet"] == dict.fromkeys(SECTIONS, 0), seen
