"""Shift close benchmark: closing a drawer session of 10,000 sales, beside the floor of summing its rows.

    python -m bench.shift [--sales 10000] [--rounds 5]

A real edge (actor tree, SQLite outbox with the cash journal, spooler, device manager) with a simulated network
printer, driven over HTTP. Each round opens a drawer session (POST .../drawer-session), gives it `--sales`
sales (cash, card and split tenders, two tax rates) through the cash journal in one setup transaction (not
timed: selling them over HTTP would take minutes), then closes it with a blind count. Figures in milliseconds:

- close_ms: POST .../drawer-session/close until its answer: the Z report computed from the ledger, the
  drawer.closed event validated and committed (fsync'd, the journal checking the figures again in the same
  transaction), its print job queued, and the audit record when one is due.
- close_printed_ms: the same, until the Z report's bytes were cut at the simulated printer.
- floor_ms: one SQLite query summing the same session's ledger rows (count, sum of amounts, sum of cash) on a
  fresh connection, the least any Z could cost; measured in the same run.

Peers take 15 minutes past a thousand orders (field notes section 5). Progress goes to stderr; the last line
of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from actors.cash.journal import cash_journal
from actors.storage import db as local_db
from bench.figures import progress, ratio, summary
from bench.store import demo_store
from edge.app import run_edge
from mocks.network_printer import MockNetworkPrinter
from novapos.config import DeviceRule, DevicesConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from tests.pos import log_in

FLOOR_SQL = "SELECT count(*), sum(amount), sum(cash) FROM cash_ledger WHERE session = ?"


def _eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def _sale(n: int, session: str) -> dict[str, Any]:
    """The n-th sale: two lines at two tax rates; cash with change, card, or split."""
    first, second = 499 + n % 300, 129 + n % 50
    total = first + second
    if n % 3 == 0:
        tenders, change = [{"method": "cash", "amount": _eur(total + 100)}], 100
    elif n % 3 == 1:
        tenders, change = [{"method": "card", "amount": _eur(total), "card": {"scheme": "visa"}}], 0
    else:
        tenders = [{"method": "cash", "amount": _eur(500)},
                   {"method": "card", "amount": _eur(total - 500), "card": {"scheme": "mastercard"}}]
        change = 0
    lines = [{"amount": _eur(first), "tax": {"rate_ppm": 200_000, "amount": _eur(first // 6)}},
             {"amount": _eur(second), "tax": {"rate_ppm": 55_000, "amount": _eur(second // 19)}}]
    return {"till": "till-1", "drawer_session": session, "currency": "EUR", "lines": lines, "total": _eur(total),
            "tenders": tenders, "change": _eur(change)}


def seed(path: Path, session: str, sales: int) -> None:
    """`sales` sales of the session through the cash journal, in one transaction (setup, not timed)."""
    db = local_db.connect(path)
    with local_db.immediate(db):
        for n in range(sales):
            cash_journal(db, Envelope(id=uuid7(), type="sale.completed", v=3, tenant="demo", store="store-001",
                                      seq=n + 1, ts=1_767_000_000_000, body=_sale(n, session)))
    db.close()


def floor(path: Path, session: str) -> float:
    db = sqlite3.connect(path)
    started = time.perf_counter()
    db.execute(FLOOR_SQL, (session,)).fetchone()
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


async def main(sales: int, rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-shift-") as folder:
        state = Path(folder)
        with EmbeddedNats(state / "nats") as nats_server, MockNetworkPrinter() as printer:
            devices = DevicesConfig(rules=(DeviceRule("receipt-printer", "escpos-network", host="127.0.0.1",
                                                      port=printer.port),))
            config = demo_store(nats_server, state / "edge", devices)
            db_path = config.state_dir / local_db.FILE_NAME
            closes, printed, floors = [], [], []
            async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30) as http:
                edge = await nursery.start(run_edge, config)
                drawer = f"{edge.url}/api/tills/till-1/drawer-session"
                await log_in(http, edge.url, cashier="sam")  # a supervisor, PIN from the staff list: his X report shows the cash expected
                with trio.fail_after(10):
                    while (await http.get(f"{edge.url}/api/devices")).json()[0]["state"] != "ready":
                        await trio.sleep(0.05)
                for number in range(rounds):
                    opened = (await http.post(drawer, json={"float": {"1000": 10}})).json()
                    session = opened["drawer_session"]["id"]
                    await trio.to_thread.run_sync(seed, db_path, session, sales)
                    floors.append(min([floor(db_path, session) for _ in range(5)]))
                    expected = (await http.get(f"{drawer}/x-report")).json()["expected"]["minor"]
                    count = {"5000": expected // 5000, "1": expected % 5000}
                    cut = len(printer.receipts)
                    started = time.perf_counter()
                    response = await http.post(f"{drawer}/close", json={"counted": count})
                    closes.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                    z = response.json()
                    assert z["z"]["sales"]["count"] == sales and z["difference"] == 0, z
                    texts = await trio.to_thread.run_sync(printer.wait_for_receipts, cut + 1, 30.0)
                    printed.append(time.perf_counter() - started)
                    assert f"Z REPORT #{number + 1}" in texts[-1]
                    progress(f"  round {number + 1}/{rounds}: closed {sales} sales in {closes[-1] * 1000:.1f} ms")
                nursery.cancel_scope.cancel()
    close, floor_ms = summary(closes), summary(floors, digits=3)
    return {"close_ms": close, "close_printed_ms": summary(printed), "floor_ms": floor_ms,
            "close_to_floor_ratio": ratio(close["median"], floor_ms["median"]), "sales": sales, "rounds": rounds,
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.sales, arguments.rounds)))
