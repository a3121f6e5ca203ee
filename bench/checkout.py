"""Checkout benchmark: a whole sale at the till, beside the floor the brief sets for it.

    python -m bench.checkout [--sales 200] [--card-sales 50]

A real edge (actor tree, SQLite outbox, spooler, device manager) with a simulated network printer and a
simulated card terminal on a pseudo-terminal (mocks.payment_terminal: the card is presented at once, the
issuer answers after ISSUER_S), driven over HTTP as the web till drives it. Figures in milliseconds:

- checkout_ms: one sale end to end: scan 3 lines, take cash, complete (durably committed), until
  the receipt's bytes have been rendered at the printer. Five HTTP requests.
- complete_ms: the `complete` request alone (validation, the fsync'd commit, the answer).
- floor_ms: one HTTP round trip to the same server (GET /api/store) plus one fsync'd SQLite commit
  (WAL, synchronous=FULL) of a row of the same size, measured on the same machine in the same run.
- card_checkout_ms: the same sale paid by card: scan 3 lines, start the card tender, watch the till
  state until the terminal's approval shows (the page's live stages), complete, receipt printed.
- split_checkout_ms: the same sale paid 5.00 EUR cash and the rest by card.
- card_wait_ms: from the card tender request to the approval in the till state (the till polls the
  terminal's STATUS every TERMINAL_POLL_MS over the serial line).
- card_floor_ms: what the terminal itself takes for that: one PAY and one STATUS round trip through the
  serial driver to a second simulated terminal, plus the simulated issuer's ISSUER_S; same run.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import trio

from bench.figures import progress, ratio, summary
from bench.store import demo_store
from drivers.payment_terminal import SerialPaymentTerminal
from edge.app import run_edge
from mocks.network_printer import MockNetworkPrinter
from mocks.payment_terminal import PaymentTerminalMock
from novapos.config import DeviceRule, DevicesConfig
from novapos.config.terminal import TerminalSettings
from novapos.demo.embedded_nats import EmbeddedNats
from tests.pos import log_in

BARCODES = ("4006381333931", "5000112637922", "7622210449283")
ISSUER_S = 0.02  # the simulated issuer's decision time, once the card is read
TERMINAL_POLL_MS = 50
SPLIT_CASH_MINOR = 500


def terminal_floor(folder: Path, payments: int) -> list[float]:
    """One PAY and one STATUS round trip through the serial driver, plus the issuer's time: per payment."""
    samples = []
    with PaymentTerminalMock(folder / "floor-terminal", auto_approve_after=0.0, processing_time=ISSUER_S) as mock, \
            SerialPaymentTerminal(str(mock.path)) as driver:
        for number in range(payments):
            started = time.perf_counter()
            driver.start_payment(100, "EUR", f"floor-{number}")
            driver.status(f"floor-{number}")
            samples.append(time.perf_counter() - started + ISSUER_S)
            time.sleep(ISSUER_S * 2)  # the issuer decides before the next payment may start (else BUSY)
    return samples


async def card_sale(http: httpx.AsyncClient, till: str, cash: int) -> tuple[float, dict[str, object]]:
    """Scan, pay `cash` then the rest by card, wait for the approval in the till state, complete: the time
    from the card request to its approval, and the receipt."""
    for barcode in BARCODES:
        state = (await http.post(f"{till}/lines", json={"barcode": barcode})).json()
    if cash:
        state = (await http.post(f"{till}/tenders", json={"amount_minor": cash})).json()
    tender_id = str(uuid.uuid4())
    asked = time.perf_counter()
    answer = await http.post(f"{till}/tenders", json={"method": "card", "id": tender_id,
                                                      "amount_minor": state["due"]["minor"]})
    assert answer.status_code == 200, answer.text
    while (await http.get(till)).json()["tenders"][-1]["state"] != "approved":
        await trio.sleep(0.002)
    waited = time.perf_counter() - asked
    receipt = (await http.post(f"{till}/complete", json={"cart": state["cart"]})).json()
    assert receipt["tenders"][-1]["method"] == "card", receipt
    return waited, receipt


def fsync_commit(path: Path, payload: bytes) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload BLOB)")
    started = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t (payload) VALUES (?)", (payload,))
    db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


async def main(sales: int, card_sales: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-checkout-") as folder:
        state = Path(folder)
        with EmbeddedNats(state / "nats") as nats_server, MockNetworkPrinter() as printer, \
                PaymentTerminalMock(state / "terminal-1", auto_approve_after=0.0, processing_time=ISSUER_S) as card:
            devices = DevicesConfig(rules=(
                DeviceRule("receipt-printer", "escpos-network", host="127.0.0.1", port=printer.port),
                DeviceRule("terminal-1", "serial-terminal", path=str(card.path), till="till-1")))
            config = demo_store(nats_server, state / "edge", devices,
                                terminal=TerminalSettings(poll_ms=TERMINAL_POLL_MS))
            checkouts, completes, floors = [], [], []
            async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
                edge = await nursery.start(run_edge, config)
                till = f"{edge.url}/api/tills/till-1"
                await log_in(http, edge.url)  # alice, with her PIN: every request below carries the cookie
                with trio.fail_after(10):
                    while any(device["state"] != "ready" for device in (await http.get(f"{edge.url}/api/devices")).json()):
                        await trio.sleep(0.05)
                for number in range(sales):
                    printed = len(printer.receipts)
                    started = time.perf_counter()
                    for barcode in BARCODES:
                        state_now = (await http.post(f"{till}/lines", json={"barcode": barcode})).json()
                    await http.post(f"{till}/tenders", json={"amount_minor": state_now["due"]["minor"]})
                    before_complete = time.perf_counter()
                    receipt = (await http.post(f"{till}/complete", json={"cart": state_now["cart"]})).json()
                    completes.append(time.perf_counter() - before_complete)
                    await trio.to_thread.run_sync(printer.wait_for_receipts, printed + 1, 10.0)
                    checkouts.append(time.perf_counter() - started)
                    payload = json.dumps(receipt).encode()
                    floor_started = time.perf_counter()
                    await http.get(f"{edge.url}/api/store")
                    round_trip = time.perf_counter() - floor_started
                    floors.append(round_trip + fsync_commit(state / "floor.sqlite3", payload))
                    if (number + 1) % 50 == 0:
                        progress(f"  {number + 1}/{sales} sales")
                card_checkouts: list[float] = []
                split_checkouts: list[float] = []
                card_waits: list[float] = []
                for number in range(card_sales):
                    for cash, checkouts_of in ((0, card_checkouts), (SPLIT_CASH_MINOR, split_checkouts)):
                        printed = len(printer.receipts)
                        started = time.perf_counter()
                        waited, _receipt = await card_sale(http, till, cash)
                        await trio.to_thread.run_sync(printer.wait_for_receipts, printed + 1, 10.0)
                        checkouts_of.append(time.perf_counter() - started)
                        card_waits.append(waited)
                    if (number + 1) % 25 == 0:
                        progress(f"  {number + 1}/{card_sales} card and split sales")
                payments = len(card.references)
                nursery.cancel_scope.cancel()
            card_floors = await trio.to_thread.run_sync(terminal_floor, state, max(card_sales, 1))
    complete, floor = summary(completes, digits=3), summary(floors, digits=3)
    card_wait, card_floor = summary(card_waits, digits=3), summary(card_floors, digits=3)
    return {"checkout_ms": summary(checkouts, digits=3), "complete_ms": complete, "floor_ms": floor,
            "complete_to_floor_ratio": ratio(complete["median"], floor["median"]),
            "requests_per_checkout": 5, "sales": sales,
            "card_checkout_ms": summary(card_checkouts, digits=3), "split_checkout_ms": summary(split_checkouts, digits=3),
            "card_wait_ms": card_wait, "card_floor_ms": card_floor,
            "card_wait_to_floor_ratio": ratio(card_wait["median"], card_floor["median"]),
            "card_sales": card_sales, "terminal_payments": payments, "terminal_poll_ms": TERMINAL_POLL_MS,
            "issuer_ms": ISSUER_S * 1000, "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=200)
    parser.add_argument("--card-sales", type=int, default=50, help="card sales, and as many split tender sales")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.sales, arguments.card_sales)))
