"""Pay by QR code in the web till, in a real headless Chromium: the cashier taps QR code, the page shows the code
(an SVG the edge draws from the hub's pay URL) with the amount, the customer's phone pays on the acquirer
simulator's page (the test posts its button), and the page completes the sale as soon as the till learns it, with
no tap more. Real hub, PostgreSQL, NATS, SQLite and sockets; screenshots under test-artifacts/till/."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from edge.app import run_edge
from novapos.config import HubConfig, StoreConfig
from tests.acquirer_support import RunningAcquirer
from tests.conftest import query, wait_until
from tests.payments_hub import payments_hub
from tests.pos import COFFEE, log_in
from tests.till_page import CHROMEDRIVER, CHROMIUM, TillPage

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("chromium and chromedriver are missing: `make test` installs them (apt-get, as root)")
    pytest.skip("chromium/chromedriver not installed (run `make browser` as root)", allow_module_level=True)


def qr_sale(url: str, cookies: httpx.Cookies, acquirer: RunningAcquirer) -> dict[str, Any]:
    with TillPage(url) as page:
        page.open(cookies)
        page.logged_in("alice")
        page.scan(COFFEE)
        page.text_in("sum-total", "4.99 EUR")
        page.taps = 0
        page.tap("#qr")
        page.until_visible("qr-stage")
        page.text_in("qr-amount", "4.99 EUR")
        page.until(lambda b: b.execute_script("const i = document.getElementById('qr-code');"
                                              "return i.complete && i.naturalWidth > 0"), "the QR code drawn")
        layout = page.layout()
        page.screenshot("qr-01-code-shown")
        till = httpx.get(f"{url}/api/tills/till-1", cookies=cookies, timeout=10).json()
        [tender] = [t for t in till["tenders"] if t["method"] == "qr"]
        assert page.js("return document.getElementById('qr-stage').dataset.tender") == tender["id"]
        assert "Paid" in acquirer.pay(tender["qr"]["pay_url"].rsplit("/", 1)[1])  # the customer's phone
        page.text_in("message", "Sale 1 complete")
        page.until_visible("qr-stage", False)
        page.screenshot("qr-02-paid-and-complete")
        return {"taps": page.taps, "layout": layout, "tender": tender["id"]}


async def test_the_till_shows_the_qr_code_and_completes_the_sale_once_the_phone_pays(
        store_config: StoreConfig, hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets), trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        await log_in(http, edge.url, "till-1", "alice")
        seen = await trio.to_thread.run_sync(qr_sale, edge.url, http.cookies, acquirer)
        assert seen["taps"] == 1, seen  # QR code; the sale completes by itself once paid
        assert seen["layout"]["overflow"] <= 0 and seen["layout"]["small"] == [], seen["layout"]
        rows = await wait_until(lambda: query(hub_config.database_url, "SELECT s.v, t.method FROM sales s JOIN "
                                                                       "sale_tenders t USING (event_id)"), timeout=15)
        assert [tuple(row) for row in rows] == [(4, "qr")]
        [intent] = await query(hub_config.database_url, "SELECT state FROM payment_intents WHERE tender_id = $1",
                               str(uuid.UUID(seen["tender"])))
        assert intent["state"] == "captured"
        nursery.cancel_scope.cancel()
