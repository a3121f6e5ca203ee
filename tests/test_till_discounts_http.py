"""The cart's lines over real HTTP on a running edge: variants from a barcode, quantity, price overrides with a
manager's approval (audited), line and order discounts (refused beyond 100 % or the line, changing nothing), a
restart that keeps them, and the sale.completed v3 the till commits."""

from __future__ import annotations

from typing import Any

import httpx

from novapos.config import StoreConfig
from novapos.pricing import Price
from novapos.wire.catalog import Item, VersionMarker
from novapos.wire.envelope import Envelope
from tests.catalog import demo_catalog, seed_catalog
from tests.edges import running_edge, waiting_events
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in

TEE = "2000000000992"


def with_a_variant(config: StoreConfig) -> StoreConfig:
    """The demo catalog plus a T-shirt variant (size M, colour red) at 19.99, as version 2."""
    tee = Item(sku="TEE-M-RED", product="TEE", name="Organic T-shirt", attributes=(("size", "M"), ("colour", "red")),
               tax_class="food", barcodes=(TEE,), prices=(Price("tenant", "", 0, 1999),), active=True, version=2)
    seed_catalog(config.state_dir, [*demo_catalog(1), tee, VersionMarker(2, 0)])
    return config


def outbox(config: StoreConfig) -> list[Envelope]:
    return waiting_events(config.state_dir)


async def scan(http: httpx.AsyncClient, url: str, barcode: str, quantity: int = 1) -> dict[str, Any]:
    response = await http.post(f"{url}/lines", json={"barcode": barcode, "quantity": quantity})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_variant_scans_with_its_size_and_colour_and_its_quantity_is_patched(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(with_a_variant(store_config)) as edge:
        url = f"{edge.url}/api/tills/till-1"
        await log_in(http, edge.url)
        [tee] = (await scan(http, url, TEE))["lines"]
        assert (tee["sku"], tee["attributes"], tee["list_price"]["minor"]) == ("TEE-M-RED", [["size", "M"],
                                                                                            ["colour", "red"]], 1999)
        response = await http.patch(f"{url}/lines/{tee['line']}", json={"quantity": 3})
        assert response.status_code == 200 and response.json()["total"]["minor"] == 3 * 1999
        before = response.json()
        for body, says in (({"quantity": 0}, "from 1 to 9999"), ({"quantity": "two"}, "whole number"),
                           ({"quantity": 1.5}, "whole number"), ({}, "quantity")):
            refused = await http.patch(f"{url}/lines/{tee['line']}", json=body)
            assert refused.status_code == 422 and says in refused.json()["error"], refused.text
        missing = await http.patch(f"{url}/lines/0123456789ab", json={"quantity": 2})
        assert missing.status_code == 404 and "no line '0123456789ab'" in missing.json()["error"]
        assert (await http.get(url)).json() == before


async def test_a_price_override_is_audited_with_the_cashier_and_the_approving_manager(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        url = f"{edge.url}/api/tills/till-1"
        await log_in(http, edge.url, cashier="alice")
        [coffee] = (await scan(http, url, COFFEE, 2))["lines"]
        response = await http.post(f"{url}/lines/{coffee['line']}/price",
                                   json={"unit_minor": 399, "reason": "price match", "override": MANAGER_OVERRIDE})
        assert response.status_code == 200, response.text
        [line] = response.json()["lines"]
        assert (line["list_price"]["minor"], line["unit_price"]["minor"], line["amount"]["minor"]) == (499, 399, 798)
        assert line["override"] == {"reason": "price match", "approver": "manager"}
        for body, says in (({"unit_minor": -1, "reason": "x"}, "unit_minor"), ({"unit_minor": 399}, "reason"),
                           ({"unit_minor": 10**13, "reason": "x"}, "unit_minor")):
            refused = await http.post(f"{url}/lines/{coffee['line']}/price", json=body)
            assert refused.status_code == 422 and says in refused.json()["error"], refused.text
    [audit] = [event.body for event in outbox(store_config) if event.type == "audit.recorded"]
    assert audit == {"action": "till.price_override", "actor": "alice", "approver": "manager", "till": "till-1",
                     "target": "COF-250", "reason": "price match",
                     "details": {"line": coffee["line"], "list_minor": 499, "old_minor": 499, "new_minor": 399,
                                 "quantity": 2}}


async def test_discounts_beyond_100_percent_or_the_line_are_refused_and_change_nothing(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        url = f"{edge.url}/api/tills/till-1"
        await log_in(http, edge.url, cashier="sam")  # a supervisor: discounts are hers to give
        [milk] = (await scan(http, url, MILK, 2))["lines"]
        before = (await http.get(url)).json()
        for path, body, says in (
                (f"lines/{milk['line']}/discount", {"kind": "percent", "value": 10_001, "reason": "x"}, "100 %"),
                (f"lines/{milk['line']}/discount", {"kind": "amount", "value": 259, "reason": "x"}, "more than the line"),
                (f"lines/{milk['line']}/discount", {"kind": "half", "value": 1, "reason": "x"}, "percent, amount"),
                (f"lines/{milk['line']}/discount", {"kind": "percent", "value": "10", "reason": "x"}, "whole number"),
                (f"lines/{milk['line']}/discount", {"kind": "percent", "value": 1000}, "reason"),
                ("discount", {"kind": "percent", "value": 20_000, "reason": "x"}, "100 %"),
                ("discount", {"kind": "amount", "value": 1000, "reason": "x"}, "more than the cart")):
            refused = await http.post(f"{url}/{path}", json=body)
            assert refused.status_code == 422 and says in refused.json()["error"], (path, body, refused.text)
        assert (await http.get(url)).json() == before
        assert [event for event in outbox(store_config) if event.type == "audit.recorded"] == []
        nothing = await http.delete(f"{url}/discount")
        assert nothing.status_code == 409 and "no order discount" in nothing.json()["error"]


async def test_discounts_survive_a_restart_and_the_sale_is_committed_as_v3(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        url = f"{edge.url}/api/tills/till-1"
        await log_in(http, edge.url, cashier="sam")  # a supervisor: discounts are hers to give, no approver
        await scan(http, url, COFFEE, 3)
        [coffee, milk] = (await scan(http, url, MILK))["lines"]
        assert (await http.post(f"{url}/lines/{coffee['line']}/discount", json={
            "kind": "percent", "value": 1000, "reason": "loyalty", "override": MANAGER_OVERRIDE})).status_code == 200
        state = (await http.post(f"{url}/discount", json={"kind": "amount", "value": 100, "reason": "complaint"})).json()
        # 3 x 4.99 = 14.97, 10 % = 1.50 (1.497 half up): 13.47; milk 1.29; 1.00 shared 13.47 : 1.29 -> 91 / 9
        assert [(line["discount"]["amount"]["minor"] if "discount" in line else 0, line["order_discount"]["minor"],
                 line["amount"]["minor"]) for line in state["lines"]] == [(150, 91, 1256), (0, 9, 120)]
        assert state["total"]["minor"] == 1376 and state["order_discount"]["amount"]["minor"] == 100
    async with running_edge(store_config) as edge:  # a restart: the same lines, ids, discounts and shares
        url = f"{edge.url}/api/tills/till-1"
        assert (await http.get(url)).json()["lines"] == state["lines"]
        assert (await http.delete(f"{url}/lines/{milk['line']}/discount")).status_code == 409  # it has none
        assert (await http.post(f"{url}/tenders", json={"amount_minor": 2000})).status_code == 200
        receipt = (await http.post(f"{url}/complete", json={"cart": state["cart"]})).json()
        assert receipt["total"]["minor"] == 1376 and receipt["change"]["minor"] == 624
    [sale] = [event for event in outbox(store_config) if event.type == "sale.completed"]
    assert sale.v == 3 and sale.body["order_discount"]["reason"] == "complaint"
    assert [line["line"] for line in sale.body["lines"]] == [coffee["line"], milk["line"]]
    assert "drawer_session" not in sale.body  # no drawer session is open at this till (yet)
    audits = [event.body for event in outbox(store_config) if event.type == "audit.recorded"]
    assert [(a["action"], a.get("approver"), a["details"]["scope"], a["details"]["amount_minor"]) for a in audits] == [
        ("till.discount", None, "line", 150), ("till.discount", None, "order", 100)]


async def test_during_a_return_lines_are_removed_but_not_repriced(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    """An exchange's new line comes off by its id; quantities, prices and discounts wait for the return's end."""
    async with running_edge(store_config) as edge:
        url = f"{edge.url}/api/tills/till-1"
        await log_in(http, edge.url)
        started = await http.post(f"{url}/returns", json={"no_receipt": True, "reason": "lost receipt",
                                                          "override": MANAGER_OVERRIDE})
        assert started.status_code == 200, started.text
        [new] = (await scan(http, url, MILK, 2))["lines"]
        for method, path, body in (("PATCH", f"lines/{new['line']}", {"quantity": 1}),
                                   ("POST", f"lines/{new['line']}/price", {"unit_minor": 1, "reason": "x"}),
                                   ("POST", f"lines/{new['line']}/discount", {"kind": "amount", "value": 1,
                                                                              "reason": "x"}),
                                   ("POST", "discount", {"kind": "percent", "value": 100, "reason": "x"})):
            refused = await http.request(method, f"{url}/{path}", json={**body, "override": MANAGER_OVERRIDE})
            assert refused.status_code == 409 and "a return is open" in refused.json()["error"], refused.text
        removed = await http.delete(f"{url}/lines/{new['line']}")
        assert removed.status_code == 200 and removed.json()["lines"] == []
    assert not [event for event in outbox(store_config) if event.type == "audit.recorded"
                and event.body["action"] in ("till.discount", "till.price_override")]
