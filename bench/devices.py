"""Device benchmark: hot-plug detection and receipt printing, each beside its floor.

    python -m bench.devices [--cycles 20] [--receipts 50]

A real edge (actor tree, device manager at the demo's settings: a scan every 0.5 s, a device down
after 3 missed scans) runs against the simulated store's hardware. Figures in milliseconds:

- plug_to_ready_ms: a serial scanner's pty appears -> the manager reports it ready (its actor is
  up and its port open). Expected about half a scan interval plus the start-up work.
- unplug_to_down_ms: the pty vanishes -> the manager reports it down. Expected about
  debounce_scans x scan_interval: the debounce is deliberate.
- detection_floor_ms: the work of one detection, with no waiting for the next scan: one enumeration
  of the buses the demo uses plus opening the scanner's port (measured here, repeatedly).
- receipt_ms: a completed cash sale -> its receipt fully rendered at the simulated network printer
  (spool on disk, render, ESC/POS over TCP, confirmation by status query).
- receipt_floor_ms: the same receipt sent straight through the driver with confirmation: no
  actors, no spool, no SQLite.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
import tomllib
from datetime import datetime
from pathlib import Path

import trio

from actors.printing.receipt import ReceiptContext, render_receipt
from bench.figures import progress, ratio, summary
from drivers.buses import probe_network, scan_hid, scan_serial
from drivers.escpos_printer import EscPosPrinter
from drivers.hid_socket import HidSocketBackend
from drivers.serial_scanner import SerialScanner
from edge.app import RunningEdge, run_edge
from mocks.store import SimulatedStore
from novapos.config import StoreConfig, load_devices, load_store
from novapos.config.receipt import ReceiptSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.ids import uuid7
from tests.catalog import seed_catalog

CONFIGS = Path(__file__).resolve().parent.parent / "configs"






async def state_of(edge: RunningEdge, device: str) -> str:
    statuses = await edge.tree.ask("devices.manager", "statuses")
    return str(next(s["state"] for s in statuses if s["device"] == device))


async def time_until(edge: RunningEdge, device: str, states: set[str], started: float) -> float:
    while await state_of(edge, device) not in states:
        await trio.sleep(0.002)
    return time.perf_counter() - started


async def hot_plug(edge: RunningEdge, hardware: SimulatedStore, cycles: int) -> tuple[list[float], list[float]]:
    plugs, unplugs = [], []
    scanner = hardware.serial["scanner-2"]
    await time_until(edge, "scanner-2", {"ready"}, time.perf_counter())
    for cycle in range(cycles):
        started = time.perf_counter()
        scanner.unplug()
        unplugs.append(await time_until(edge, "scanner-2", {"down"}, started))
        await trio.sleep(0.13 * (cycle % 4))  # spread plug times over the scan interval
        started = time.perf_counter()
        scanner.plug()
        plugs.append(await time_until(edge, "scanner-2", {"ready"}, started))
        progress(f"  cycle {cycle + 1}/{cycles}: down in {unplugs[-1] * 1000:.0f} ms, ready in {plugs[-1] * 1000:.0f} ms")
    return plugs, unplugs


def detection_floor(config: StoreConfig, hardware: SimulatedStore, rounds: int = 50) -> list[float]:
    hid = HidSocketBackend(hardware.hid_server.socket_path)
    paths = [rule.path for rule in config.devices.rules if rule.path]
    printers = [(rule.host, rule.port) for rule in config.devices.rules if rule.bus == "network"]
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        scan_hid(hid)
        scan_serial(paths)
        probe_network(printers)  # type: ignore[arg-type]
        port = SerialScanner(str(hardware.serial["scanner-2"].path))
        port.open()
        samples.append(time.perf_counter() - started)
        port.close()
    return samples


async def receipts(edge: RunningEdge, hardware: SimulatedStore, count: int) -> list[float]:
    printer, samples = hardware.printer, []
    await edge.tree.ask("till.till-1", "log_in", {"id": str(uuid7()), "cashier": "bench", "name": "Bench",
                                                   "roles": ["cashier"], "offline": False})
    for _ in range(count):
        already = len(printer.receipts)
        await edge.tree.ask("till.till-1", "add_line", "4006381333931", 2)
        await edge.tree.ask("till.till-1", "tender_cash", 1000)
        started = time.perf_counter()
        await edge.tree.ask("till.till-1", "complete", None)
        await trio.to_thread.run_sync(printer.wait_for_receipts, already + 1, 10.0)
        samples.append(time.perf_counter() - started)
    return samples


def receipt_floor(hardware: SimulatedStore, count: int) -> list[float]:
    body = {"till": "till-1", "cashier": "bench", "currency": "EUR", "change": {"minor": 2, "currency": "EUR"},
            "lines": [{"quantity": 2, "name": "Ground coffee 250 g", "unit_price": {"minor": 499, "currency": "EUR"},
                       "amount": {"minor": 998, "currency": "EUR"}}],
            "total": {"minor": 998, "currency": "EUR"}, "tenders": [{"method": "cash", "amount": {"minor": 1000, "currency": "EUR"}}]}
    document = render_receipt(ReceiptContext(ReceiptSettings("store-001")), {"id": "0" * 36, "seq": 1, "body": body}, datetime.now())
    samples = []
    with EscPosPrinter.network("127.0.0.1", hardware.printer.port, timeout=2.0) as printer:
        for _ in range(count):
            already = len(hardware.printer.receipts)
            started = time.perf_counter()
            printer.print_document_confirmed(document)
            hardware.printer.wait_for_receipts(already + 1, 10.0)
            samples.append(time.perf_counter() - started)
    return samples


async def main(cycles: int, count: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-") as folder:
        state = Path(folder)
        with EmbeddedNats(state / "nats") as nats, SimulatedStore(state / "hw", terminal_auto_approve=None) as hardware:
            demo = load_store(CONFIGS / "demo-store.toml")
            devices = hardware.devices(tomllib.loads((CONFIGS / "demo-store.toml").read_text())["devices"])
            config = StoreConfig(**{**vars(demo), "http_port": 0, "nats_url": nats.url, "tls": nats.tls_settings(),
                                    "state_dir": state / "edge",
                                    "devices": load_devices(devices, "bench", demo.tills)})
            seed_catalog(config.state_dir)  # the demo's products, as if synced from the hub's catalog
            async with trio.open_nursery() as nursery:
                edge = await nursery.start(run_edge, config)
                progress(f"hot-plug: {cycles} unplug/plug cycles of a serial scanner "
                         f"(scan every {config.devices.scan_interval} s, down after {config.devices.debounce_scans} misses)")
                plugs, unplugs = await hot_plug(edge, hardware, cycles)
                progress("detection floor: enumeration + port open, 50 rounds")
                floor = await trio.to_thread.run_sync(detection_floor, config, hardware)
                progress(f"receipts: {count} cash sales to the simulated network printer")
                printed = await receipts(edge, hardware, count)
                progress(f"receipt floor: {count} confirmed prints straight through the driver")
                direct = await trio.to_thread.run_sync(receipt_floor, hardware, count)
                nursery.cancel_scope.cancel()
    plug, detection, receipt, direct_print = summary(plugs), summary(floor), summary(printed), summary(direct)
    return {"plug_to_ready_ms": plug, "unplug_to_down_ms": summary(unplugs),
            "detection_floor_ms": detection, "receipt_ms": receipt, "receipt_floor_ms": direct_print,
            "plug_to_detection_floor_ratio": ratio(plug["median"], detection["median"]),
            "receipt_to_floor_ratio": ratio(receipt["median"], direct_print["median"]),
            "scan_interval_s": config.devices.scan_interval, "debounce_scans": config.devices.debounce_scans,
            "iterations": {"hot_plug_cycles": cycles, "receipts": count}, "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--receipts", type=int, default=50)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.cycles, arguments.receipts)))
