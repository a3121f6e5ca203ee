"""A discounted sale end to end: web till API (override with a manager's PIN, line and order discounts) -> till
actor -> SQLite outbox (sale.completed v3 and its audit records) -> JetStream -> hub -> PostgreSQL, where the
sale keeps what changed its prices and the orders API shows it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import trio

from edge.app import run_edge
from hub.app import run_hub
from novapos.config import HubConfig, StoreConfig
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in


async def test_a_discounted_sale_lands_at_the_hub_with_its_discounts_override_and_audit(
        store_config: StoreConfig, hub_config: HubConfig, database_url: str, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)
        url = f"{edge.url}/api/tills/till-1"
        await log_in(http, edge.url)
        await http.post(f"{url}/lines", json={"barcode": COFFEE, "quantity": 2})
        coffee, milk = (await http.post(f"{url}/lines", json={"barcode": MILK})).json()["lines"]
        for path, body in ((f"lines/{coffee['line']}/price", {"unit_minor": 450, "reason": "price match",
                                                              "override": MANAGER_OVERRIDE}),
                           (f"lines/{milk['line']}/discount", {"kind": "amount", "value": 29, "reason": "dented",
                                                                 "override": MANAGER_OVERRIDE}),  # alice: a cashier
                           ("discount", {"kind": "percent", "value": 500, "reason": "staff",
                                         "override": MANAGER_OVERRIDE})):
            response = await http.post(f"{url}/{path}", json=body)
            assert response.status_code == 200, response.text
        state = response.json()
        # coffee 2 x 4.50 = 9.00, milk 1.29 - 0.29 = 1.00; 5 % of 10.00 = 0.50 shared 45 / 5
        assert state["total"]["minor"] == 950
        assert (await http.post(f"{url}/tenders", json={"amount_minor": 1000})).status_code == 200
        receipt = (await http.post(f"{url}/complete", json={"cart": state["cart"]})).json()
        sale_id = uuid.UUID(receipt["sale"])

        lines = await wait_until(lambda: query(
            database_url, "SELECT sku, list_price_minor, unit_price_minor, override_approver, discount_minor,"
            " order_discount_minor, amount_minor FROM sale_lines WHERE event_id = $1 ORDER BY line_no", sale_id))
        assert [tuple(line) for line in lines] == [("COF-250", 499, 450, "manager", 0, 45, 855),
                                                   ("MLK-1L", 129, 129, None, 29, 5, 95)]
        [sale] = await query(database_url, "SELECT v, total_minor, change_minor, order_discount_kind,"
                             " order_discount_value, order_discount_minor FROM sales WHERE event_id = $1", sale_id)
        assert tuple(sale) == (3, 950, 50, "percent", 500, 50)
        async def three_audits() -> list[Any]:
            rows = await query(database_url, "SELECT action, actor, target FROM audit_records"
                               " WHERE store = 'store-001' AND action LIKE 'till.%' ORDER BY seq")
            return rows if len(rows) >= 3 else []
        audits = await wait_until(three_audits)
        assert [(a["action"], a["actor"], a["target"]) for a in audits] == [
            ("till.price_override", "alice", "COF-250"), ("till.discount", "alice", "MLK-1L"),
            ("till.discount", "alice", state["cart"])]

        await sign_in_admin(http, hub.url, database_url)
        order = (await http.get(f"{hub.url}/api/orders/{sale_id}")).json()
        assert [(line["override_reason"], line["discount_reason"]) for line in order["lines"]] == [
            ("price match", None), (None, "dented")]
        assert order["order_discount_reason"] == "staff" and order["tenders"][0]["tender_id"]
        nursery.cancel_scope.cancel()
