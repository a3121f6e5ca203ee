"""A whole day at a till with the hub out of reach, end to end: real PostgreSQL, NATS, SQLite, the PTY payment
terminal and the network printer. The drawer opens online; NATS stops; the till sells 200 times (cash, card,
split; discounts approved by a supervisor's or a manager's PIN), takes returns with receipts (cash and card
refunds) and one exchange, pays in and out, opens for a no-sale, prints an X report and closes blind to the Z, all
offline, with a cashier logged in offline. NATS comes back and the outbox drains. The hub then holds exactly that
day, once: sales, returns, drawer events, the session's cash reconciled, stock moved per SKU and the audit log."""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from edge.app import run_edge
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from mocks.payment_terminal import PaymentTerminalMock
from novapos.config import DeviceRule, HubConfig, StoreConfig
from novapos.config.login import LoginSettings
from novapos.config.terminal import TerminalSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.pricing import allocate, percent_of, pro_rata
from tests.conftest import query, wait_until
from tests.pos import MANAGER_OVERRIDE, STAFF, log_in, seed_staff

SALES = 200
OFFLINE_AFTER_S = 5
FLOAT = {"2000": 5, "1000": 5}  # 150.00 EUR
FLOAT_MINOR = 15000
BARCODES = ("4006381333931", "5000112637922", "7622210449283", "2000000000015", "3017620422003")
SUPERVISOR_OVERRIDE = {"login": "sam", "pin": STAFF["sam"][2]}
PAY_INS = ((2000, "change from the bank"), (1500, "float top-up"))
PAY_OUTS = ((800, "window cleaner"), (1200, "milk for the staff room"))


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[PaymentTerminalMock]:
    with PaymentTerminalMock(tmp_path / "terminal-1", auto_approve_after=0.0, processing_time=0.01) as mock:
        yield mock


class Day:
    """What the test did, and the figures it expects from it (its own arithmetic, never the till's)."""

    def __init__(self) -> None:
        self.sales: list[dict[str, Any]] = []    # the receipts
        self.returns: list[dict[str, Any]] = []  # the return receipts (the exchange included)
        self.cash_in = self.change = self.card_in = 0
        self.cash_tenders = self.card_tenders = 0
        self.sales_total = self.returned_value = 0
        self.cash_refunds = self.card_refunds = 0
        self.refund_count: Counter[str] = Counter()
        self.sold: Counter[str] = Counter()       # sku -> units out (the exchange's new line included)
        self.back: Counter[str] = Counter()       # sku -> units back on the floor

    def expected_cash(self) -> int:
        return (FLOAT_MINOR + self.cash_in - self.change - self.cash_refunds
                + sum(a for a, _ in PAY_INS) - sum(a for a, _ in PAY_OUTS))


class Till:
    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http, self.base, self.url = http, base, f"{base}/api/tills/till-1"

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post(f"{self.url}{path}", json=body)
        assert response.status_code == 200, (path, response.text)
        return dict(response.json())

    async def state(self) -> dict[str, Any]:
        return dict((await self.http.get(self.url)).json())

    async def card(self, amount: int) -> None:
        tender = str(uuid.uuid4())
        await self.post("/tenders", {"method": "card", "amount_minor": amount, "id": tender})

        async def approved() -> bool:
            [found] = [t for t in (await self.state())["tenders"] if t["id"] == tender]
            assert found["state"] in ("pending", "approved"), found
            return bool(found["state"] == "approved")
        await wait_until(approved, timeout=10, interval=0.02)

    async def complete(self, cart: str | None = None) -> dict[str, Any]:
        return await self.post("/complete", {"cart": cart or (await self.state())["cart"]})


def _expected_lines(state: dict[str, Any], line_bp: int, order_bp: int) -> tuple[list[int], int]:
    """The line amounts and the total the test expects: list price x quantity, a percent discount on the first
    line, an order percent shared by largest remainder (novapos.pricing, THE rounding rule); shelf prices include
    tax in the demo region."""
    gross = [line["list_price"]["minor"] * line["quantity"] for line in state["lines"]]
    after = [g - (percent_of(g, line_bp) if i == 0 and line_bp else 0) for i, g in enumerate(gross)]
    shares = allocate(percent_of(sum(after), order_bp), after) if order_bp else [0] * len(after)
    amounts = [a - s for a, s in zip(after, shares, strict=True)]
    return amounts, sum(amounts)


async def _sell(till: Till, rng: random.Random, number: int, day: Day) -> None:
    for barcode in rng.sample(BARCODES, rng.randint(1, 3)):
        state = await till.post("/lines", {"barcode": barcode, "quantity": rng.randint(1, 3)})
    line_bp = 1000 if number % 10 == 5 else 0      # 10 % off the first line, a supervisor's PIN
    order_bp = 500 if number % 25 == 7 else 0      # 5 % off the order, a manager's PIN
    if line_bp:
        state = await till.post(f"/lines/{state['lines'][0]['line']}/discount", {
            "kind": "percent", "value": line_bp, "reason": "damaged box", "override": SUPERVISOR_OVERRIDE})
    if order_bp:
        state = await till.post("/discount", {"kind": "percent", "value": order_bp, "reason": "loyal customer",
                                              "override": MANAGER_OVERRIDE})
    amounts, total = _expected_lines(state, line_bp, order_bp)
    assert [line["amount"]["minor"] for line in state["lines"]] == amounts and state["total"]["minor"] == total
    if number % 4 == 2:                             # card
        await till.card(total)
        day.card_in, day.card_tenders = day.card_in + total, day.card_tenders + 1
    elif number % 8 == 3 and total > 1:             # split: half in cash, the rest on a card
        await till.post("/tenders", {"method": "cash", "amount_minor": total // 2})
        await till.card(total - total // 2)
        day.cash_in, day.card_in = day.cash_in + total // 2, day.card_in + total - total // 2
        day.cash_tenders, day.card_tenders = day.cash_tenders + 1, day.card_tenders + 1
    else:                                           # cash, every third rounded up to the next 10.00
        cash = -(-total // 1000) * 1000 if number % 3 == 0 else total
        await till.post("/tenders", {"method": "cash", "amount_minor": cash})
        day.cash_in, day.change, day.cash_tenders = day.cash_in + cash, day.change + cash - total, day.cash_tenders + 1
    receipt = await till.complete(state["cart"])
    assert receipt["total"]["minor"] == total and receipt["drawer_session"]
    day.sales.append(receipt)
    day.sales_total += total
    day.sold.update({line["sku"]: line["quantity"] for line in receipt["lines"]})


def _methods(sale: dict[str, Any]) -> set[str]:
    return {tender["method"] for tender in sale["tenders"]}


async def _take_back(till: Till, sale: dict[str, Any], day: Day) -> int:
    """Start a return of `sale`'s first line, one unit, resaleable; the refund the test expects for it."""
    await till.post("/returns", {"order": sale["sale"], "override": MANAGER_OVERRIDE})  # a cashier: a manager's PIN
    line = sale["lines"][0]
    await till.post("/returns/lines", {"original_line": 1, "quantity": 1, "condition": "resaleable"})
    value = pro_rata(line["amount"]["minor"], line["quantity"], 0, 1)
    day.returned_value += value
    day.back[line["sku"]] += 1
    return value


async def _returns(till: Till, day: Day) -> None:
    plain = [s for s in day.sales if len(s["tenders"]) == 1]
    cash_sales = [s for s in plain if _methods(s) == {"cash"}]
    card_sales = [s for s in plain if _methods(s) == {"card"}]
    for sale in cash_sales[:3] + card_sales[:3]:
        refund = await _take_back(till, sale, day)
        state = await till.state()
        method = "card" if _methods(sale) == {"card"} else "cash"
        assert (state["refund"]["minor"], state["refund_to"]) == (refund, method)
        receipt = await till.complete()
        assert [(r["method"], r["amount"]["minor"]) for r in receipt["refunds"]] == [(method, refund)]
        day.returns.append(receipt)
        day.refund_count[method] += 1
        if method == "cash":
            day.cash_refunds += refund
        else:
            day.card_refunds += refund
    # The exchange: one unit of a cash sale's first line back, a coffee (4.99) out; the customer pays the rest.
    sale = cash_sales[3]
    value = await _take_back(till, sale, day)
    state = await till.post("/lines", {"barcode": BARCODES[0]})
    owed = 499 - value
    assert owed > 0 and state["total"]["minor"] == owed and state["due"]["minor"] == owed
    await till.post("/tenders", {"method": "cash", "amount_minor": owed})
    receipt = await till.complete()
    assert receipt["refunds"] == [] and receipt["total"]["minor"] == owed
    day.returns.append(receipt)
    day.cash_in, day.cash_tenders = day.cash_in + owed, day.cash_tenders + 1
    day.sold["COF-250"] += 1


def _check_figures(report: dict[str, Any], day: Day) -> None:
    """An X or Z report's figures against the test's own."""
    def money(minor: int) -> dict[str, Any]:
        return {"minor": minor, "currency": "EUR"}

    def by_method(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
        merged: dict[str, tuple[int, int]] = {}
        for row in rows:
            count, amount = merged.get(row["method"], (0, 0))
            merged[row["method"]] = (count + row["count"], amount + row["amount"]["minor"])
        return merged

    assert report["float"] == money(FLOAT_MINOR)
    assert report["sales"] == {"count": SALES, "total": money(day.sales_total)}
    assert report["returns"] == {"count": len(day.returns), "total": money(day.returned_value)}
    assert by_method(report["tenders"]) == {"cash": (day.cash_tenders, day.cash_in),
                                            "card": (day.card_tenders, day.card_in)}
    assert by_method(report["refunds"]) == {"cash": (day.refund_count["cash"], day.cash_refunds),
                                            "card": (day.refund_count["card"], day.card_refunds)}
    assert report["change"] == money(day.change)
    assert report["pay_ins"] == {"count": len(PAY_INS), "total": money(sum(a for a, _ in PAY_INS))}
    assert report["pay_outs"] == {"count": len(PAY_OUTS), "total": money(sum(a for a, _ in PAY_OUTS))}
    assert report["drops"]["count"] == 0 and report["no_sales"] == 1 and report["voids"] == 0
    assert report["expected"] == money(day.expected_cash())


async def _logins_offline(http: httpx.AsyncClient, base: str, offline: bool) -> bool:
    return bool((await http.get(f"{base}/healthz")).json().get("logins_offline") is offline)


async def _depth(edge: Any) -> bool:
    return bool(await edge.tree.ask("outbox", "depth") == 0)


async def test_a_whole_day_offline_reaches_the_hub_once_and_reconciles(
        store_config: StoreConfig, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        terminal: PaymentTerminalMock, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    rules = (*store_config.devices.rules,
             DeviceRule("terminal-1", "serial-terminal", path=str(terminal.path), till="till-1"))
    config = dataclasses.replace(store_config, devices=dataclasses.replace(store_config.devices, rules=rules),
                                 terminal=TerminalSettings(timeout_s=5, poll_ms=50), staff_refresh_s=1.0,
                                 login=LoginSettings(offline_after_s=OFFLINE_AFTER_S))
    day, rng = Day(), random.Random(9)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, config)
        till = Till(http, edge.url)
        # The seeded list's version is above the hub's, so this hub never confirms it: the test does, as the hub
        # would (the same version again: confirmed now), and logs in within OFFLINE_AFTER_S.
        seed_staff(config.state_dir)
        assert (await log_in(http, edge.url))["session"]["offline"] is False
        session = (await till.post("/drawer-session", {"float": FLOAT}))["drawer_session"]["id"]
        await wait_until(lambda: query(database_url, "SELECT 1 FROM drawer_sessions WHERE session = $1", session))

        await trio.to_thread.run_sync(nats_server.stop)
        offline_at = time.perf_counter()
        await wait_until(lambda: _logins_offline(http, edge.url, True))
        assert (await log_in(http, edge.url, cashier="alice"))["session"]["offline"] is True
        for number in range(SALES):
            if number == SALES // 2:  # the shift changes hands: bob logs in, offline too
                assert (await log_in(http, edge.url, cashier="bob"))["session"]["offline"] is True
            await _sell(till, rng, number, day)
        selling_s = time.perf_counter() - offline_at
        await _returns(till, day)
        for amount, reason in PAY_INS:
            await till.post("/drawer-session/moves", {"kind": "pay_in", "amount_minor": amount, "reason": reason,
                                                      "override": MANAGER_OVERRIDE})
        for amount, reason in PAY_OUTS:
            await till.post("/drawer-session/moves", {"kind": "pay_out", "amount_minor": amount, "reason": reason,
                                                      "override": MANAGER_OVERRIDE})
        await till.post("/drawer-session/no-sale", {"reason": "change a note", "override": MANAGER_OVERRIDE})
        x = dict((await http.get(f"{till.url}/drawer-session/x-report")).json())
        assert "expected" not in x  # bob will count the drawer: the X report he reads keeps the close blind
        _check_figures({**x, "expected": {"minor": day.expected_cash(), "currency": "EUR"}}, day)
        assert (await till.post("/drawer-session/x-report/print", {}))["print_job"]
        expected = day.expected_cash()
        counted = {"5000": expected // 5000, "1": expected % 5000}  # the cashier counts exactly what is there
        z = await till.post("/drawer-session/close", {"counted": counted})
        assert z["difference"] == 0 and z["z"]["number"] == 1
        assert z["expected"]["minor"] == expected
        _check_figures({**z["z"], "expected": z["expected"]}, day)
        offline_s = time.perf_counter() - offline_at
        # each sale and return, a merchant copy of each card payment and card refund, the X and the Z
        slips = SALES + len(day.returns) + day.card_tenders + day.refund_count["card"] + 2
        printed = await trio.to_thread.run_sync(printer.wait_for_receipts, slips, 60.0)
        merchant = [text for text in printed if "MERCHANT COPY" in text]
        assert sum(1 for text in printed if "Sale #" in text and text not in merchant) == SALES
        assert len(merchant) == day.card_tenders + day.refund_count["card"]
        [x_text] = [text for text in printed if "X REPORT" in text]
        [z_text] = [text for text in printed if "Z REPORT #1" in text]
        assert f"{expected // 100}.{expected % 100:02d} EUR" in z_text and "Expected" not in x_text
        depth = await edge.tree.ask("outbox", "depth")
        assert depth > SALES + len(day.returns)  # all of it waited in the outbox

        await trio.to_thread.run_sync(nats_server.start)
        drain_from = time.perf_counter()
        await wait_until(lambda: _depth(edge), timeout=60, interval=0.2)
        drained_s = time.perf_counter() - drain_from
        await wait_until(lambda: query(database_url, "SELECT 1 FROM z_reports WHERE session = $1", session), timeout=30)
        await trio.sleep(0.5)  # a resend, if any, would land now
        nursery.cancel_scope.cancel()

    # Each event once: the inbox holds exactly the outbox's day, by id.
    sale_ids = {uuid.UUID(sale["sale"]) for sale in day.sales}
    return_ids = {uuid.UUID(ret["sale"]) for ret in day.returns}
    assert len(sale_ids) == SALES and len(return_ids) == len(day.returns) == 7
    assert {row["event_id"] for row in await query(database_url, "SELECT event_id FROM sales")} == sale_ids
    assert {row["event_id"] for row in await query(database_url, "SELECT event_id FROM returns")} == return_ids
    types = Counter({row["type"]: row["n"] for row in await query(
        database_url, "SELECT type, count(*) AS n FROM inbox WHERE store = 'store-001' GROUP BY type")})
    assert types["sale.completed"] == SALES and types["return.completed"] == len(day.returns)
    assert (types["drawer.opened"], types["drawer.moved"], types["drawer.closed"]) == (1, 5, 1)

    # The session at the hub reconciles with the sales and returns the hub holds.
    [opened] = await query(database_url, "SELECT float_minor, opened_by FROM drawer_sessions WHERE session = $1",
                           session)
    assert (opened["float_minor"], opened["opened_by"]) == (FLOAT_MINOR, "alice")
    [cash] = await query(database_url, """
        SELECT (SELECT coalesce(sum(t.amount_minor), 0) FROM sale_tenders t JOIN sales s USING (event_id)
                 WHERE s.drawer_session = $1 AND t.method = 'cash') AS cash_in,
               (SELECT coalesce(sum(change_minor), 0) FROM sales WHERE drawer_session = $1) AS change,
               (SELECT coalesce(sum(refunded_minor), 0) FROM returns WHERE store = 'store-001' AND refund_methods = '{cash}') AS refunds,
               (SELECT coalesce(sum(total_minor), 0) FROM returns WHERE store = 'store-001' AND total_minor > 0)
                 AS exchanged,
               (SELECT coalesce(sum(amount_minor) FILTER (WHERE kind = 'pay_in'), 0)
                     - coalesce(sum(amount_minor) FILTER (WHERE kind = 'pay_out'), 0)
                  FROM drawer_moves WHERE session = $1) AS moves""", session)
    hub_expected = FLOAT_MINOR + cash["cash_in"] + cash["exchanged"] - cash["change"] - cash["refunds"] + cash["moves"]
    [zrow] = await query(database_url, "SELECT z_number, expected_minor, counted_minor, difference_minor, z "
                                       "FROM z_reports WHERE session = $1", session)
    assert hub_expected == zrow["expected_minor"] == expected and zrow["difference_minor"] == 0
    assert json.loads(zrow["z"]) == z["z"] and zrow["z_number"] == 1
    attached = await query(database_url, "SELECT kind, count(*) AS n, sum(total_minor) AS total, bool_or(late) AS late"  # a return: its goods' value
                                         " FROM drawer_sales WHERE session = $1 GROUP BY kind ORDER BY kind", session)
    assert [(row["kind"], row["n"], row["total"], row["late"]) for row in attached] == [
        ("return", len(day.returns), day.returned_value, False), ("sale", SALES, day.sales_total, False)]
    [attached_sales] = await query(database_url, "SELECT count(*) AS n, sum(total_minor) AS total FROM sales "
                                                 "WHERE drawer_session = $1", session)
    assert (attached_sales["n"], attached_sales["total"]) == (SALES, day.sales_total)
    moves = await query(database_url, "SELECT kind, amount_minor, approver FROM drawer_moves WHERE session = $1 "
                                      "ORDER BY seq", session)
    assert [tuple(row) for row in moves] == [
        *(("pay_in", a, "manager") for a, _ in PAY_INS), *(("pay_out", a, "manager") for a, _ in PAY_OUTS),
        ("no_sale", 0, "manager")]

    # Stock: what was sold minus what came back, per SKU.
    stock = {row["sku"]: row["n"] for row in await query(
        database_url, "SELECT sku, sum(on_hand_change) AS n FROM stock_movements GROUP BY sku")}
    assert stock == {sku: day.back[sku] - day.sold[sku] for sku in day.sold | day.back}

    # The audit log: both offline logins, every discount with its approver, the refunds, the cash moves.
    audits = Counter((row["action"], row["actor"], row["approver"]) for row in await query(
        database_url, "SELECT action, actor, details->>'approver' AS approver FROM audit_records "
                      "WHERE store = 'store-001'"))
    line_discounts = sum(1 for n in range(SALES) if n % 10 == 5)
    order_discounts = sum(1 for n in range(SALES) if n % 25 == 7)
    assert audits[("till.offline_login", "alice", None)] == 1 and audits[("till.offline_login", "bob", None)] == 1
    discounts = Counter(approver for (action, _actor, approver), n in audits.items() if action == "till.discount"
                        for _ in range(n))
    assert discounts == {"sam": line_discounts, "manager": order_discounts}
    assert sum(n for (action, _, _), n in audits.items() if action == "till.refund") == len(day.returns)
    assert audits[("drawer.no_sale", "bob", "manager")] == 1
    print(f"offline day: {SALES} sales, {len(day.returns)} returns in {offline_s:.1f} s offline "
          f"(selling {selling_s:.1f} s), outbox of {depth} drained in {drained_s:.1f} s, "
          f"whole test {time.perf_counter() - started:.1f} s")
