"""Discounts and price overrides survive kill -9 of the edge process: the cart comes back with the same lines,
ids, overrides, discounts and shares, sells as such (once), and each privileged change was audited once."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from mocks.network_printer import MockNetworkPrinter
from novapos.demo.embedded_nats import EmbeddedNats
from tests.edges import printer_rule, start_edge, store_box, waiting_events
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in


async def test_a_discounted_cart_survives_kill_9_and_sells_once_as_discounted(
        tmp_path: Path, nats_server: EmbeddedNats, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    box = store_box(tmp_path, [printer_rule(printer.port)])
    config, url = box.config, box.url
    till = f"{url}/api/tills/till-1"
    edge = await start_edge(config, nats_server, url, http)
    try:
        await log_in(http, url)
        await http.post(f"{till}/lines", json={"barcode": COFFEE, "quantity": 2})
        coffee, milk = (await http.post(f"{till}/lines", json={"barcode": MILK, "quantity": 3})).json()["lines"]
        for path, body in ((f"lines/{coffee['line']}/price", {"unit_minor": 450, "reason": "price match",
                                                              "override": MANAGER_OVERRIDE}),
                           (f"lines/{milk['line']}/discount", {"kind": "percent", "value": 3333, "reason": "dented",
                                                                 "override": MANAGER_OVERRIDE}),  # alice: a cashier
                           ("discount", {"kind": "amount", "value": 77, "reason": "complaint",
                                         "override": MANAGER_OVERRIDE})):
            response = await http.post(f"{till}/{path}", json=body)
            assert response.status_code == 200, response.text
        before = response.json()
        edge.send_signal(signal.SIGKILL)
        edge.wait()

        edge = await start_edge(config, nats_server, url, http)
        after = (await http.get(till)).json()
        assert {key: after[key] for key in ("cart", "lines", "order_discount", "total", "tax_total")} == {
            key: before[key] for key in ("cart", "lines", "order_discount", "total", "tax_total")}
        # coffee 2 x 4.50 = 9.00; milk 3 x 1.29 = 3.87 less 33.33 % (1.2899 -> 1.29) = 2.58; 0.77 off 11.58: 60 / 17
        assert [(line["amount"]["minor"], line["order_discount"]["minor"]) for line in after["lines"]] == [
            (840, 60), (241, 17)]
        assert (await http.post(f"{till}/tenders", json={"amount_minor": 1100})).status_code == 200
        receipt = (await http.post(f"{till}/complete", json={"cart": before["cart"]})).json()
        assert receipt["total"]["minor"] == 1081 and receipt["change"]["minor"] == 19
    finally:
        edge.send_signal(signal.SIGKILL)
        edge.wait()
    events = waiting_events(tmp_path / "store-001")
    assert [(event.type, event.v) for event in events] == [("audit.recorded", 1)] * 3 + [("sale.completed", 3)]
    assert [event.body["action"] for event in events[:3]] == ["till.price_override", "till.discount", "till.discount"]
    assert [line.get("override", {}).get("approver") for line in events[3].body["lines"]] == ["manager", None]
