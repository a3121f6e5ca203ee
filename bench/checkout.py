"""Checkout benchmark: a whole sale at the till, beside the floor the brief sets for it.

    python -m bench.checkout [--sales 200]

A real edge (actor tree, SQLite outbox, spooler, device manager) with a simulated network printer,
driven over HTTP as the web till drives it. Figures in milliseconds:

- checkout_ms: one sale end to end: scan 3 lines, take cash, complete (durably committed), until
  the receipt's bytes have been rendered at the printer. Five HTTP requests.
- complete_ms: the `complete` request alone (validation, the fsync'd commit, the answer).
- floor_ms: one HTTP round trip to the same server (GET /api/store) plus one fsync'd SQLite commit
  (WAL, synchronous=FULL) of a row of the same size, measured on the same machine in the same run.

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
from pathlib import Path

import httpx
import trio

from bench.figures import progress, ratio, summary
from edge.app import run_edge
from mocks.network_printer import MockNetworkPrinter
from novapos.config import DeviceRule, DevicesConfig, StoreConfig, load_store
from novapos.demo.embedded_nats import EmbeddedNats
from tests.catalog import seed_catalog
from tests.pos import log_in, seed_staff

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BARCODES = ("4006381333931", "5000112637922", "7622210449283")




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


async def main(sales: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-checkout-") as folder:
        state = Path(folder)
        with EmbeddedNats(state / "nats") as nats_server, MockNetworkPrinter() as printer:
            demo = load_store(CONFIGS / "demo-store.toml")
            devices = DevicesConfig(rules=(DeviceRule("receipt-printer", "escpos-network", host="127.0.0.1",
                                                      port=printer.port),))
            config = StoreConfig(**{**vars(demo), "http_port": 0, "nats_url": nats_server.url,
                                    "state_dir": state / "edge", "devices": devices})
            seed_catalog(config.state_dir)  # the demo's products, as if synced from the hub's catalog
            seed_staff(config.state_dir)  # alice and the others, as if the hub's staff list had come
            checkouts, completes, floors = [], [], []
            async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
                edge = await nursery.start(run_edge, config)
                till = f"{edge.url}/api/tills/till-1"
                await log_in(http, edge.url)  # alice, with her PIN: every request below carries the cookie
                with trio.fail_after(10):
                    while (await http.get(f"{edge.url}/api/devices")).json()[0]["state"] != "ready":
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
                nursery.cancel_scope.cancel()
    complete, floor = summary(completes, digits=3), summary(floors, digits=3)
    return {"checkout_ms": summary(checkouts, digits=3), "complete_ms": complete, "floor_ms": floor,
            "complete_to_floor_ratio": ratio(complete["median"], floor["median"]),
            "requests_per_checkout": 5, "sales": sales, "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=200)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.sales)))
