"""Drawer sessions at the till over real HTTP, a real outbox file and a mock network printer: float, moves,
no-sale, X report, blind close within and beyond tolerance, the Z report printed; NATS stopped, so every event
waits in the outbox where the test reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
import trio

from mocks.network_printer import MockNetworkPrinter
from novapos.config import StoreConfig
from novapos.config.cash import CashConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.edges import running_edge, waiting_events
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in, sell

FLOAT = {"2000": 5, "1000": 5, "200": 10, "50": 20}  # 100 + 50 + 20 + 10 = 180.00 EUR
FLOAT_MINOR = 18000


@asynccontextmanager
async def offline_edge(config: StoreConfig, nats_server: EmbeddedNats) -> AsyncIterator[Any]:
    await trio.to_thread.run_sync(nats_server.stop)
    async with running_edge(config) as edge:
        yield edge


def outbox_events(config: StoreConfig, event_type: str) -> list[dict[str, Any]]:
    return [event.body for event in waiting_events(config.state_dir) if event.type == event_type]


@pytest.fixture
def cash_config(store_config: StoreConfig) -> StoreConfig:
    return replace(store_config, cash=CashConfig(tolerance_minor=100))


async def test_a_shift_from_float_to_z(cash_config: StoreConfig, nats_server: EmbeddedNats,
                                       printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    async with offline_edge(cash_config, nats_server) as edge:
        drawer = f"{edge.url}/api/tills/till-1/drawer-session"
        await log_in(http, edge.url)
        assert (await http.get(drawer)).json()["drawer_session"] is None
        opened = await http.post(drawer, json={"float": FLOAT})
        assert opened.status_code == 200, opened.text
        session = opened.json()["drawer_session"]
        assert session["opened_by"] == "alice" and set(session) == {"id", "opened_at", "opened_by"}  # blind
        assert (await http.post(drawer, json={"float": FLOAT})).status_code == 409  # one open session per till

        await sell(http, edge.url, [(COFFEE, 2)], cash=2000)  # 9.98, change 10.02
        await sell(http, edge.url, [(MILK, 1)])                # 1.29 exact
        moves = [("pay_in", 5000, "change from the bank"), ("pay_out", 1250, "window cleaner"),
                 ("drop", 10000, "to the safe")]
        for kind, amount, reason in moves:
            response = await http.post(f"{drawer}/moves", json={"kind": kind, "amount_minor": amount, "reason": reason,
                                                                "override": MANAGER_OVERRIDE})  # alice is a cashier
            assert response.status_code == 200, response.text
        no_sale = await http.post(f"{drawer}/no-sale", json={"override": MANAGER_OVERRIDE, "reason": "change a note"})
        assert no_sale.status_code == 200, no_sale.text
        await trio.to_thread.run_sync(printer.wait_for_drawer_kicks, 3, 10.0)  # two cash sales and the no-sale

        blind = (await http.get(f"{drawer}/x-report")).json()
        assert "expected" not in blind and blind["sales"]["count"] == 2  # alice will count: her X keeps it blind
        await log_in(http, edge.url, "till-1", "sam")  # a supervisor's X report shows the cash expected
        x = (await http.get(f"{drawer}/x-report")).json()
        expected = FLOAT_MINOR + 998 + 129 + 5000 - 1250 - 10000
        assert x["expected"]["minor"] == expected
        assert x["sales"] == {"count": 2, "total": {"minor": 998 + 129, "currency": "EUR"}}
        assert x["tenders"] == [{"method": "cash", "count": 2, "amount": {"minor": 2000 + 129, "currency": "EUR"}}]
        assert x["change"]["minor"] == 1002 and x["no_sales"] == 1
        assert (x["pay_ins"]["count"], x["pay_outs"]["total"]["minor"], x["drops"]["total"]["minor"]) == (1, 1250, 10000)
        assert sum(tax["amount"]["minor"] for tax in x["tax"]) > 0
        assert (await http.get(f"{drawer}/x-report")).json()["sales"] == x["sales"]  # an X resets nothing
        printed = (await http.post(f"{drawer}/x-report/print", json={})).json()
        assert printed["print_job"]

        # Blind close, 0.50 short: within the tolerance of 1.00, no manager needed.
        counted = {"5000": expected // 5000, "1": expected % 5000 - 50}
        z = await http.post(f"{drawer}/close", json={"counted": counted})
        assert z.status_code == 200, z.text
        report = z.json()
        assert report["difference"] == -50 and report["expected"]["minor"] == expected
        assert report["z"]["number"] == 1 and report["z"]["sales"] == x["sales"] and "approver" not in report
        assert (await http.get(f"{edge.url}/api/tills/till-1")).json()["drawer_session"] is None
        late = await http.post(f"{drawer}/moves", json={"kind": "pay_in", "amount_minor": 100, "reason": "late",
                                                         "override": MANAGER_OVERRIDE})
        assert late.status_code == 409  # the session is closed

        texts = await trio.to_thread.run_sync(printer.wait_for_receipts, 4, 10.0)  # two sales, the X, the Z
        assert "X REPORT" in texts[2] and f"{expected // 100}.{expected % 100:02d} EUR" in texts[2]
        z_text = texts[3]
        assert "Z REPORT #1" in z_text and "Short" in z_text and "-0.50 EUR" in z_text

    closed = outbox_events(cash_config, "drawer.closed")
    assert [body["difference"] for body in closed] == [-50]
    assert [body["kind"] for body in outbox_events(cash_config, "drawer.moved")] == [
        "pay_in", "pay_out", "drop", "no_sale"]
    audits = [(body["action"], body.get("approver")) for body in outbox_events(cash_config, "audit.recorded")]
    assert audits == [("drawer.pay_in", "manager"), ("drawer.pay_out", "manager"), ("drawer.drop", "manager"),
                      ("drawer.no_sale", "manager")]


async def test_a_close_beyond_tolerance_needs_a_manager(cash_config: StoreConfig, nats_server: EmbeddedNats,
                                                        http: httpx.AsyncClient) -> None:
    async with offline_edge(cash_config, nats_server) as edge:
        drawer = f"{edge.url}/api/tills/till-1/drawer-session"
        await log_in(http, edge.url)
        assert (await http.post(drawer, json={"float": {"1000": 10}})).status_code == 200
        over = {"1000": 10, "500": 1}  # 5.00 over, tolerance 1.00
        refused = await http.post(f"{drawer}/close", json={"counted": over})
        assert refused.status_code == 409 and "manager" in refused.json()["error"]
        assert "100.00" not in refused.json()["error"]  # the expected amount stays hidden: the close is blind
        assert (await http.get(f"{edge.url}/api/tills/till-1")).json()["drawer_session"] is not None
        approved = await http.post(f"{drawer}/close", json={"counted": over, "override": MANAGER_OVERRIDE})
        assert approved.status_code == 200, approved.text
        assert approved.json()["approver"] == "manager" and approved.json()["difference"] == 500
        # The next session of the till gets the next Z number.
        assert (await http.post(drawer, json={"float": {"1000": 10}})).status_code == 200
        second = await http.post(f"{drawer}/close", json={"counted": {"1000": 10}})
        assert second.json()["z"]["number"] == 2 and second.json()["difference"] == 0
    audits = [(body["action"], body.get("approver")) for body in outbox_events(cash_config, "audit.recorded")]
    assert audits == [("drawer.close_over_tolerance", "manager")]


@pytest.mark.parametrize(("path", "body", "says"), [
    ("", {"float": {"2000": -1}}, "cannot be negative"),
    ("", {"float": {"3000": 1}}, "not a note or coin"),
    ("", {"float": {"2000": 1.5}}, "float.2000"),
    ("", {"float": [1, 2]}, "must be an object"),
    ("/moves", {"kind": "pay_in", "amount_minor": 100}, "reason"),
    ("/moves", {"kind": "pay_out", "amount_minor": 100, "reason": "   "}, "reason"),
    ("/moves", {"kind": "no_sale", "amount_minor": 100, "reason": "x"}, "kind"),
    ("/moves", {"kind": "drop", "amount_minor": -5, "reason": "safe"}, "amount_minor"),
    ("/close", {"counted": {"1000": -2}}, "cannot be negative"),
])
async def test_bad_counts_and_moves_are_refused_and_change_nothing(
        cash_config: StoreConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient,
        path: str, body: dict[str, Any], says: str) -> None:
    async with offline_edge(cash_config, nats_server) as edge:
        drawer = f"{edge.url}/api/tills/till-1/drawer-session"
        await log_in(http, edge.url)
        if path:
            assert (await http.post(drawer, json={"float": {"1000": 1}})).status_code == 200
        before = (await http.get(f"{drawer}/x-report")).json() if path else None
        response = await http.post(f"{drawer}{path}", json=body)
        assert response.status_code == 422 and says in response.json()["error"], response.text
        if path:
            after = (await http.get(f"{drawer}/x-report")).json()
            assert {**after, "at": 0} == {**(before or {}), "at": 0}
        else:
            assert (await http.get(drawer)).json()["drawer_session"] is None


async def test_refusals_of_the_shift(cash_config: StoreConfig, nats_server: EmbeddedNats,
                                     http: httpx.AsyncClient) -> None:
    config = replace(cash_config, cash=CashConfig(require_session=True))
    async with offline_edge(config, nats_server) as edge:
        till = f"{edge.url}/api/tills/till-1"
        await log_in(http, edge.url)
        refused = await http.post(f"{till}/lines", json={"barcode": COFFEE})
        assert refused.status_code == 409 and "float" in refused.json()["error"]  # require_session: open first
        assert (await http.post(f"{till}/drawer-session/x-report/print", json={})).status_code == 409
        assert (await http.post(f"{till}/drawer-session", json={"float": {"1000": 1}})).status_code == 200
        assert (await http.post(f"{till}/lines", json={"barcode": COFFEE})).status_code == 200
        with_cart = await http.post(f"{till}/drawer-session/close", json={"counted": {"1000": 1}})
        assert with_cart.status_code == 409 and "sale is open" in with_cart.json()["error"]
        too_much = await http.post(f"{till}/drawer-session/moves",
                                   json={"kind": "pay_out", "amount_minor": 1001, "reason": "more than held",
                                         "override": MANAGER_OVERRIDE})
        assert too_much.status_code == 409 and "10.00 EUR" in too_much.json()["error"]
        # till-2 has no drawer: no no-sale there; and nobody logged in there is a 401
        assert (await http.post(f"{edge.url}/api/tills/till-2/drawer-session/no-sale", json={})).status_code == 401
        await log_in(http, edge.url, "till-2", "bob")
        no_drawer = await http.post(f"{edge.url}/api/tills/till-2/drawer-session/no-sale",
                                    json={"override": MANAGER_OVERRIDE})
        assert no_drawer.status_code == 409
        assert (await http.get(f"{edge.url}/api/tills/till-9/drawer-session")).status_code == 404


async def test_no_sale_and_cash_moves_ask_for_their_permission_and_a_refusal_changes_nothing(
        cash_config: StoreConfig, nats_server: EmbeddedNats, printer: MockNetworkPrinter,
        http: httpx.AsyncClient) -> None:
    """alice is a cashier: her role has neither till.no_sale nor till.cash_moves, so both are refused with the roles
    that may, and nothing is counted, pulsed or audited; a manager's PIN lets the no-sale through once."""
    async with offline_edge(cash_config, nats_server) as edge:
        drawer = f"{edge.url}/api/tills/till-1/drawer-session"
        await log_in(http, edge.url)
        assert (await http.post(drawer, json={"float": {"1000": 5}})).status_code == 200
        kicks = len(printer.drawer_kicks)
        refused = [await http.post(f"{drawer}/no-sale", json={}),
                   await http.post(f"{drawer}/moves", json={"kind": "pay_in", "amount_minor": 100, "reason": "x"})]
        assert [response.status_code for response in refused] == [403, 403]
        assert all("supervisor" in response.json()["error"] and "yours: cashier" in response.json()["error"]
                   for response in refused), [response.json() for response in refused]
        x = (await http.get(f"{drawer}/x-report")).json()
        assert (x["no_sales"], x["pay_ins"]["count"]) == (0, 0)
        approved = await http.post(f"{drawer}/no-sale", json={"override": MANAGER_OVERRIDE})
        assert approved.status_code == 200
        await trio.to_thread.run_sync(printer.wait_for_drawer_kicks, kicks + 1, 10.0)
        assert (await http.get(f"{drawer}/x-report")).json()["no_sales"] == 1
    assert len(printer.drawer_kicks) == kicks + 1
    assert [body["kind"] for body in outbox_events(cash_config, "drawer.moved")] == ["no_sale"]
    assert [(body["action"], body.get("approver")) for body in outbox_events(cash_config, "audit.recorded")] == [
        ("drawer.no_sale", "manager")]
