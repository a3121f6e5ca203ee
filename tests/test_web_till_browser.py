"""A person's sale in the web till page, in a real headless Chromium, lands in PostgreSQL exactly once."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest
import trio

from edge.app import run_edge
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.config import HubConfig, StoreConfig
from tests.catalog import DEMO_PRODUCTS
from tests.conftest import query, wait_until

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("chromium and chromedriver are missing: `make test` installs them (apt-get, as root)")
    pytest.skip("chromium/chromedriver not installed (run `make browser` as root)", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only importable once we know a browser is there)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def chip(browser: webdriver.Chrome, device: str) -> str:
    """The device's chip state, read in one step: the page rebuilds its chips on every event, so an
    element found first and read after may already be gone."""
    return str(browser.execute_script(
        "const chip = document.querySelector(`.device[data-device='${arguments[0]}']`);"
        "return chip ? chip.dataset.state : '';", device))


def summary(browser: webdriver.Chrome) -> dict[str, str]:
    """Total, Tendered, Due and Change as the page shows them, read in one step."""
    return dict(browser.execute_script(
        "return Object.fromEntries(['total', 'tendered', 'due', 'change']"
        ".map(k => [k, document.getElementById('sum-' + k).textContent]));"))


def product(browser: webdriver.Chrome, sku: str) -> WebElement:
    """The product button of the catalog page for `sku` (the demo's: tests.catalog.DEMO_PRODUCTS)."""
    barcode = next(code for item, code, _name, _price in DEMO_PRODUCTS if item == sku)
    return browser.find_element(By.CSS_SELECTOR, f"#products button[data-barcode='{barcode}']")


def headless_chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tempfile.mkdtemp(prefix='novapos-chromium-')}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # type: ignore[arg-type]


def make_a_sale_in_the_page(url: str, printer: MockNetworkPrinter, screenshot: str | None) -> str:
    """Drive the page as a cashier: log in with a PIN, tap products and take one off again, take cash
    (with a double tap), complete, log out; then watch the printer's status chip follow an
    unplug, a replug and a jammed cutter. Returns the sale's message."""
    browser = headless_chromium()
    try:
        wait = WebDriverWait(browser, 15)
        browser.get(url)
        wait.until(expected_conditions.element_to_be_clickable((By.ID, "open")))
        browser.find_element(By.ID, "pin").send_keys("1111")  # alice's PIN (tests.pos.STAFF)
        browser.find_element(By.ID, "open").click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "who"), "Cashier: alice"))
        wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#products button")))
        requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert not [name for name in requested if name.endswith("/api/tills/")], requested  # no till asked for
        coffee, milk, bread = (product(browser, sku) for sku in ("COF-250", "MLK-1L", "BRD-SD"))
        coffee.click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "lines"), "1 × Ground coffee"))
        coffee.click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "lines"), "2 × Ground coffee"))
        milk.click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "total"), "11.27 EUR"))
        assert browser.find_element(By.ID, "sum-tax").text == "0.73 EUR"  # 7 % included: 0.65 in 9.98, 0.08 in 1.29
        bread.click()  # one too many: the cashier takes it off again
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "total"), "14.76 EUR"))
        browser.find_element(By.CSS_SELECTOR, "#lines button.remove[data-sku='BRD-SD']").click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "total"), "Total 11.27 EUR"))
        assert "Sourdough" not in browser.find_element(By.ID, "lines").text
        assert summary(browser) == {"total": "11.27 EUR", "tendered": "0.00 EUR", "due": "11.27 EUR",
                                    "change": "0.00 EUR"}
        cash = browser.find_element(By.ID, "cash")
        cash.clear()
        cash.send_keys("5")  # as a cashier types it: units, not minor units
        browser.execute_script("const pay = document.getElementById('pay'); pay.click(); pay.click();")  # double tap
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "message"), "6.27 EUR still due"))
        cash.clear()
        cash.send_keys("20")
        browser.find_element(By.ID, "pay").click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "message"), "change 13.73 EUR"))
        assert summary(browser) == {"total": "11.27 EUR", "tendered": "25.00 EUR", "due": "0.00 EUR",
                                    "change": "13.73 EUR"}  # the double tap took the 5 once
        complete = browser.find_element(By.ID, "complete")
        complete.click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "message"), "complete"))
        message = browser.find_element(By.ID, "message").text
        assert browser.find_element(By.ID, "given").text == \
            "Sale 1: tendered 25.00 EUR, change to give 13.73 EUR"  # what to hand back, plainly
        complete.click()  # an impatient second click must not make a second sale
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "message"), "cart is empty"))
        browser.find_element(By.ID, "close").click()  # end of shift
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "who"), "Nobody logged in"))

        wait.until(lambda b: chip(b, "receipt-printer") == "ready")
        printer.set_online(False)
        wait.until(lambda b: chip(b, "receipt-printer") == "down")  # live, without reloading the page
        assert "unplugged" in browser.find_element(By.ID, "devices").text
        if screenshot:
            browser.save_screenshot(screenshot)
        printer.set_online(True)
        wait.until(lambda b: chip(b, "receipt-printer") == "ready")
        printer.set_fault("cutter")
        wait.until(lambda b: chip(b, "receipt-printer") == "error")
        assert "receipt-printer · needs attention: autocutter error: clear the paper jam at the cutter" in \
            browser.find_element(By.ID, "devices").text
        printer.set_fault(None)
        wait.until(lambda b: chip(b, "receipt-printer") == "ready")
        return message
    finally:
        browser.quit()


async def test_a_sale_made_in_the_browser_lands_once_and_device_status_is_live(
        store_config: StoreConfig, hub_config: HubConfig, database_url: str, printer: MockNetworkPrinter) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)
        message = await trio.to_thread.run_sync(
            make_a_sale_in_the_page, edge.url + "/", printer, os.environ.get("NOVAPOS_SCREENSHOT"))
        assert message.startswith("Sale 1 complete. Change 13.73 EUR"), message
        rows = await wait_until(lambda: query(database_url, "SELECT event_id, total_minor FROM sales"))
        await trio.sleep(0.5)
        rows = await query(database_url, "SELECT event_id, total_minor FROM sales")
        assert [row["total_minor"] for row in rows] == [2 * 499 + 129]
        tenders = await query(database_url, "SELECT amount_minor FROM sale_tenders WHERE event_id = $1",
                              uuid.UUID(str(rows[0]["event_id"])))
        assert sorted(row["amount_minor"] for row in tenders) == [500, 2000]
        lines = await query(database_url, "SELECT sku, quantity FROM sale_lines WHERE event_id = $1 ORDER BY line_no",
                            uuid.UUID(str(rows[0]["event_id"])))
        assert [tuple(line) for line in lines] == [("COF-250", 2), ("MLK-1L", 1)]
        nursery.cancel_scope.cancel()


def double_tap_after_a_partial_tender(url: str) -> tuple[dict[str, str], str, str]:
    """The reviewer's steps: till-2, Ground coffee (4.99), type 2.00, tap Take cash twice 150 ms apart.
    Returns the summary, the cash field and the message once both taps are answered."""
    browser = headless_chromium()
    try:
        wait = WebDriverWait(browser, 15)
        browser.get(url)
        wait.until(expected_conditions.element_to_be_clickable((By.ID, "open")))
        Select(browser.find_element(By.ID, "till")).select_by_value("till-2")
        browser.find_element(By.ID, "pin").send_keys("1111")  # alice's PIN (tests.pos.STAFF)
        browser.find_element(By.ID, "open").click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "who"), "Cashier: alice"))
        wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#products button")))
        product(browser, "COF-250").click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "total"), "4.99 EUR"))
        assert browser.find_element(By.ID, "cash").get_attribute("value") == "4.99"  # exact cash, before any tender
        cash = browser.find_element(By.ID, "cash")
        cash.clear()
        cash.send_keys("2.00")
        browser.execute_script("const pay = document.getElementById('pay'); pay.click();"
                               "setTimeout(() => { pay.click(); window.secondTap = true; }, 150);")
        wait.until(lambda b: b.execute_script("return window.secondTap === true && !busy"))
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "sum-tendered"), "2.00 EUR"))
        return summary(browser), str(browser.find_element(By.ID, "cash").get_attribute("value")), \
            browser.find_element(By.ID, "message").text
    finally:
        browser.quit()


async def test_a_second_tap_after_a_partial_tender_takes_no_cash_of_its_own(store_config: StoreConfig) -> None:
    """The page prefills the amount due only before the cart's first tender; after one it clears the
    field, so a second tap has nothing to send."""
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        shown, cash, message = await trio.to_thread.run_sync(double_tap_after_a_partial_tender, edge.url + "/")
        assert shown == {"total": "4.99 EUR", "tendered": "2.00 EUR", "due": "2.99 EUR", "change": "0.00 EUR"}
        assert cash == ""
        state = await edge.tree.ask("till.till-2", "state")
        assert state["tendered"]["minor"] == 200
        assert message in ("Cash taken: 2.00 EUR tendered, 2.99 EUR still due",
                           "Type the amount received, e.g. 20.00")  # the second tap came after the answer, or during
        nursery.cancel_scope.cancel()
