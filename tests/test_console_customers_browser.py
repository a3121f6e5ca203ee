"""The Customers tab in the hub console page (a real headless Chromium, hub, PostgreSQL and NATS): a tenant admin
creates a customer, finds one by a phone number typed another way, opens their 360 with an order from the store,
exports them (audited) and erases them after typing their name; a hostile name is shown as text, never run."""

from __future__ import annotations

import trio

from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope, decode
from novapos.wire.ids import uuid7
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.events import publish, sale_v5_body
from tests.identity import add_user, grant
from tests.stock_world import build_world
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import Page  # isort: skip  (imports selenium: after the skip above)

MARTA = "0190a3c4-7e1f-7b2a-9c3d-00000000c0de"
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def _walk(url: str) -> dict[str, object]:
    seen: dict[str, object] = {}
    with Page(url) as page:
        page.open("#customers")
        page.sign_in("ada")
        page.until(lambda b: len(page.rows("customers")) == 2, "the two customers")
        seen["listed"] = page.rows("customers")
        page.fill({"f-customer-name": "Jonas Berg", "f-customer-phone": "+46 70 123 45 67"})
        page.find("#customer-create button[type=submit]").click()
        page.until(lambda b: "Jonas Berg" in page.find("#view").text and
                   page.find("#view").get_attribute("data-item") != "", "the new customer's 360")
        seen["created"] = page.find("#view").text
        page.go("#customers")
        page.fill({"f-customer-q": "0046701234567"})
        page.find("#customers-search button[type=submit]").click()
        page.until(lambda b: [r[0] for r in page.rows("customers")] == ["Jonas Berg"], "found by phone")
        page.go(f"#customers/{MARTA}")
        page.until(lambda b: len(page.rows("customer-orders")) == 1, "Marta's order")
        seen["360"] = page.find("#view").text
        page.screenshot("30-customer-360")
        page.find("#customer-export button[type=submit]").click()
        page.until(lambda b: "Exported" in page.find("#status").text, "the export")
        page.fill({"f-erase-confirm": "Not her name", "f-erase-reason": "DSR-9"})
        page.find("#customer-erase button[type=submit]").click()
        page.until(lambda b: "confirm" in page.find("#problem").text, "the confirmation refused")
        page.fill({"f-erase-confirm": "Marta Nilsson", "f-erase-reason": "DSR-9"})
        page.find("#customer-erase button[type=submit]").click()
        page.until(lambda b: "Erased customer" in page.find("#view").text, "the erased record")
        seen["erased"] = page.find("#view").text
        page.screenshot("31-customer-erased")
        seen["title"] = page.js("return document.title")
    return seen


async def test_the_customers_tab_searches_shows_the_360_exports_and_erases(
        hub_config: HubConfig, nats_server: EmbeddedNats) -> None:
    url = hub_config.database_url
    body = sale_v5_body()
    body["customer"] = {"id": MARTA}
    body["tenders"] = [{"id": str(uuid7()), "method": "cash", "amount": {"minor": 1000, "currency": "EUR"}}]
    sold = decode(Envelope(id=uuid7(), type="sale.completed", v=5, tenant="demo", store="store-001", seq=1,
                           ts=1_700_000_000_000, body=body).encode())
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        await query(url, "INSERT INTO customers (tenant, id, card_number, name, phone, email, created_by, preferences)"
                         " VALUES ('demo', $1, '27000000000018', 'Marta Nilsson', '+46701112233', 'marta@example.se',"
                         " 'seed', '{\"milk\": \"oat\"}'), ('demo', gen_random_uuid(), NULL, $2, NULL, NULL, 'seed',"
                         " '{}')", MARTA, HOSTILE)
        await publish(nats_server, [(event_subject("demo", "store-001", "sale.completed"), sold.encode(), None)])

        async def landed() -> bool:
            return (await query(url, "SELECT count(*) AS n FROM sales"))[0]["n"] == 1
        await wait_until(landed)
        seen = await trio.to_thread.run_sync(_walk, hub.url)
        nursery.cancel_scope.cancel()
    assert sorted(row[0] for row in seen["listed"]) == sorted(["Marta Nilsson", HOSTILE]), seen  # type: ignore[union-attr]
    assert seen["title"] != "pwned"
    assert "+46701234567" in str(seen["created"]) and "27" in str(seen["created"]), seen
    shown = str(seen["360"])
    assert "Marta Nilsson" in shown and "marta@example.se" in shown and "oat" in shown and "8.12 EUR" in shown, shown
    assert "Marta" not in str(seen["erased"]) and "marta@example.se" not in str(seen["erased"]), seen
    actions = [row["action"] for row in await query(url, "SELECT action FROM audit_records WHERE target = $1"
                                                         " ORDER BY seq", MARTA)]
    assert actions[:2] == ["customer.exported", "customer.erased"], actions
