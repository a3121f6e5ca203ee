"""Devices end to end: the edge's device manager and actors against the simulated store's hardware
(a TCP ESC/POS printer, a HID bus, serial devices on pseudo-terminals)."""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from drivers.hid_scanner import HidScanner
from edge.app import run_edge
from mocks.store import HID_SCANNER, SimulatedStore
from novapos.config import StoreConfig, load_devices
from tests.conftest import CONFIGS, wait_until
from tests.pos import COFFEE, MILK, log_in_at, sell

SCAN_INTERVAL = 0.1
DEBOUNCE = 3


@pytest.fixture
def hardware(tmp_path: Path) -> Iterator[SimulatedStore]:
    with SimulatedStore(tmp_path / "hw", terminal_auto_approve=None) as store:
        yield store


@pytest.fixture
def debounce_scans() -> int:
    """Missed scans before a device is down; a test may parametrize its own."""
    return DEBOUNCE


@pytest.fixture
def config(store_config: StoreConfig, hardware: SimulatedStore, debounce_scans: int) -> StoreConfig:
    table = hardware.devices(tomllib.loads((CONFIGS / "demo-store.toml").read_text())["devices"])
    table.update(scan_interval=SCAN_INTERVAL, debounce_scans=debounce_scans)
    return StoreConfig(**{**vars(store_config), "devices": load_devices(table, "test", store_config.tills)})


@pytest.fixture
async def edge(config: StoreConfig) -> AsyncIterator:  # type: ignore[type-arg]
    async with trio.open_nursery() as nursery:
        running = await nursery.start(run_edge, config)
        yield running
        nursery.cancel_scope.cancel()


async def status(edge, device: str) -> dict:  # type: ignore[no-untyped-def]
    return next(s for s in await edge.tree.ask("devices.manager", "statuses") if s["device"] == device)


async def wait_state(edge, device: str, *states: str, timeout: float = 10.0) -> dict:  # type: ignore[no-untyped-def]
    last: dict = {}

    async def reached() -> dict | None:
        last.update(await status(edge, device))
        return dict(last) if last["state"] in states else None
    try:
        return await wait_until(reached, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{device} not {'/'.join(states)} within {timeout} s: {last}") from None


async def all_ready(edge) -> None:  # type: ignore[no-untyped-def]
    for device in ("receipt-printer", "drawer-1", "scanner-1", "scanner-2", "drawer-2", "terminal-1", "display-1"):
        await wait_state(edge, device, "ready", "closed")


@pytest.fixture
async def http(edge) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """A client logged in at till-1 (devices, print jobs and events are behind the till login)."""
    async with httpx.AsyncClient(timeout=10) as client:
        await log_in_at(client, f"{edge.url}/api/tills/till-1", "alice")
        yield client


@asynccontextmanager
async def live_events(http: httpx.AsyncClient, edge) -> AsyncIterator[list[dict]]:  # type: ignore[no-untyped-def]
    """The web till's event stream, read in the background into the list yielded."""
    seen: list[dict] = []
    async with http.stream("GET", f"{edge.url}/api/events") as stream:
        async def read() -> None:
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            yield seen
            nursery.cancel_scope.cancel()


async def open_till(http: httpx.AsyncClient, edge, till: str) -> None:  # type: ignore[no-untyped-def]
    await log_in_at(http, f"{edge.url}/api/tills/{till}", "alice")


async def test_every_simulated_device_is_found_and_comes_up(edge, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    devices = {d["device"]: d for d in (await http.get(f"{edge.url}/api/devices")).json()}
    assert devices["scanner-1"]["kind"] == "scanner" and devices["scanner-1"]["till"] == "till-1"
    assert "0x05e0" not in devices["scanner-1"]["detail"]  # detail is readable: "hid device at ... 05e0:1200 ..."
    children = dict(await edge.tree.ask("devices", "which_children"))
    assert set(children) == {f"device.{name}" for name in devices} and all(children.values())


async def test_a_scan_becomes_a_line_on_the_scanners_own_till(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    await open_till(http, edge, "till-1")
    await open_till(http, edge, "till-2")
    hardware.command(["scan", "scanner-1", COFFEE])   # HID POS scanner, bound to till-1
    hardware.command(["scan", "scanner-2", MILK])     # serial scanner, bound to till-2
    hardware.command(["scan", "scanner-2", MILK])

    async def lines(till: str) -> list:
        return [(line["sku"], line["quantity"]) for line in (await http.get(f"{edge.url}/api/tills/{till}")).json()["lines"]]
    assert await wait_until(lambda: _equals(lines("till-1"), [("COF-250", 1)]))
    assert await wait_until(lambda: _equals(lines("till-2"), [("MLK-1L", 2)]))


async def _equals(awaitable, expected) -> bool:  # type: ignore[no-untyped-def]
    return await awaitable == expected


async def test_a_printer_dropping_as_the_sale_completes_prints_it_once_on_return(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    before = (await http.get(f"{edge.url}/metrics")).text
    printer = hardware.printer
    printer.set_online(False)  # the printer drops just as the sale completes: the job cannot get through
    await open_till(http, edge, "till-1")
    state = (await http.post(f"{edge.url}/api/tills/till-1/lines", json={"barcode": COFFEE})).json()
    await http.post(f"{edge.url}/api/tills/till-1/tenders", json={"amount_minor": 499})
    receipt = (await http.post(f"{edge.url}/api/tills/till-1/complete", json={"cart": state["cart"]})).json()
    jobs = await wait_until(lambda: _jobs_in(http, edge, "queued"))
    assert [job["id"] for job in jobs] == [receipt["sale"]]
    await trio.sleep(0.5)
    printer.set_online(True)
    printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
    await wait_until(lambda: _jobs_in(http, edge, "printed"))
    await trio.sleep(1.0)  # a second copy would have arrived by now
    assert len(printer.receipts) == 1 and receipt["sale"] in printed[0]
    metrics = (await http.get(f"{edge.url}/metrics")).text
    for sample in ('novapos_edge_device_up{device="receipt-printer",kind="printer"} 1.0',
                   'novapos_edge_device_up{device="scanner-1",kind="scanner"} 1.0',
                   'novapos_edge_print_queue_depth{device="receipt-printer"} 0.0'):
        assert sample in metrics, sample
    assert _metric(metrics, "novapos_edge_print_retries_total") >= 1
    assert _metric(metrics, 'novapos_edge_print_jobs_total{result="printed"}') >= 1
    dropped = 'novapos_edge_device_errors_total{device="receipt-printer",error="offline",kind="printer"}'
    back = 'novapos_edge_device_reconnects_total{device="receipt-printer",kind="printer"}'
    assert _metric(metrics, dropped) - _metric(before, dropped, 0.0) == 1  # device health (P13-03)
    assert _metric(metrics, back) - _metric(before, back) == 1


def _metric(text: str, name: str, absent: float | None = None) -> float:
    found = (float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))
    return next(found) if absent is None else next(found, absent)


async def _jobs_in(http: httpx.AsyncClient, edge, state: str) -> list:  # type: ignore[no-untyped-def]
    jobs = (await http.get(f"{edge.url}/api/print-jobs")).json()
    return jobs if jobs and all(job["state"] == state for job in jobs) else []


async def test_a_job_cut_off_by_an_unplug_is_printed_once_in_full(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    """The printer takes part of a job and vanishes before confirming it: the part is lost with its
    buffer, and the whole job prints once when the printer is back."""
    await all_ready(edge)
    printer = hardware.printer
    printer.hold_after(64)  # swallow the job after 64 bytes, as if unplugged mid-transfer
    await open_till(http, edge, "till-1")
    state = (await http.post(f"{edge.url}/api/tills/till-1/lines", json={"barcode": COFFEE, "quantity": 3})).json()
    await http.post(f"{edge.url}/api/tills/till-1/tenders", json={"amount_minor": 2000})
    receipt = (await http.post(f"{edge.url}/api/tills/till-1/complete", json={"cart": state["cart"]})).json()
    await trio.to_thread.run_sync(printer.wait_for_raw, 64, 10.0)
    printer.set_online(False)
    await wait_state(edge, "receipt-printer", "down", "offline")
    printer.set_online(True)
    printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 15.0)
    await trio.sleep(1.0)
    assert len(printer.receipts) == 1
    assert "3 x Ground coffee 250 g" in printed[0] and receipt["sale"] in printed[0]


@pytest.mark.parametrize("debounce_scans", [10])  # a drop of 2 scans stays well inside it on a busy box
async def test_a_brief_drop_is_debounced_and_a_long_one_marks_the_device_down(
        edge, hardware: SimulatedStore, debounce_scans: int) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    restarts = edge.tree.restarts
    events: list[str] = []
    hardware.unplug("scanner-2")
    await trio.sleep(SCAN_INTERVAL * 2)
    hardware.plug("scanner-2")
    await trio.sleep(SCAN_INTERVAL * debounce_scans * 1.5)
    assert (await status(edge, "scanner-2"))["state"] != "down", "a drop shorter than the debounce took it down"
    events.append((await wait_state(edge, "scanner-2", "ready"))["state"])

    hardware.unplug("scanner-2")
    down = await wait_state(edge, "scanner-2", "down", timeout=10)
    assert f"missing for {debounce_scans} scans" in down["detail"]
    assert "device.scanner-2" not in dict(await edge.tree.ask("devices", "which_children"))
    hardware.plug("scanner-2")
    await wait_state(edge, "scanner-2", "ready", timeout=5)
    assert edge.tree.restarts == restarts, "hot-plug is not a crash: nothing was restarted"


async def test_device_identity_survives_replug_on_another_port(
        edge, hardware: SimulatedStore) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    hardware.unplug("scanner-1")
    await wait_state(edge, "scanner-1", "down")
    moved = dict(HID_SCANNER, path=b"sim-usb-2-4:1.0")  # same scanner (same serial number), another USB port
    hardware.hid_bus.add_device(**moved)
    up = await wait_state(edge, "scanner-1", "ready")
    assert up["device"] == "scanner-1"
    statuses = await edge.tree.ask("devices.manager", "statuses")
    assert [s["device"] for s in statuses].count("scanner-1") == 1


async def test_a_crashing_driver_is_restarted_and_the_till_keeps_selling(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    restarts = edge.tree.restarts
    real_read = HidScanner.read_barcodes
    crashed = []

    def buggy_read(self: HidScanner, timeout: float) -> list[str]:  # a driver bug, once
        if not crashed:
            crashed.append(True)
            raise RuntimeError("driver bug: index out of range")
        return real_read(self, timeout)
    monkeypatch.setattr(HidScanner, "read_barcodes", buggy_read)

    await wait_until(lambda: _restarted(edge, restarts))
    await open_till(http, edge, "till-1")
    response = await http.post(f"{edge.url}/api/tills/till-1/lines", json={"barcode": MILK})
    assert response.status_code == 200
    await wait_state(edge, "scanner-1", "ready")
    with trio.fail_after(10):  # "ready" may still be the crashed instance's: scan once the new one reads
        while await trio.to_thread.run_sync(hardware.hid_bus.scan, HID_SCANNER["path"], COFFEE) == 0:
            await trio.sleep(0.05)

    async def coffee_added() -> bool:
        lines = (await http.get(f"{edge.url}/api/tills/till-1")).json()["lines"]
        return any(line["sku"] == "COF-250" for line in lines)
    await wait_until(coffee_added)
    assert edge.tree.healthy()


async def _restarted(edge, before: int) -> bool:  # type: ignore[no-untyped-def]
    return edge.tree.restarts > before


async def test_paper_out_is_surfaced_and_jobs_wait_for_paper(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    hardware.command(["paper", "receipt-printer", "out"])
    assert (await wait_state(edge, "receipt-printer", "paper_out"))["detail"] == "paper out"
    await open_till(http, edge, "till-1")
    state = (await http.post(f"{edge.url}/api/tills/till-1/lines", json={"barcode": MILK})).json()
    await http.post(f"{edge.url}/api/tills/till-1/tenders", json={"amount_minor": 129})
    assert (await http.post(f"{edge.url}/api/tills/till-1/complete", json={"cart": state["cart"]})).status_code == 200
    await trio.sleep(1.0)
    assert hardware.printer.receipts == []
    hardware.command(["paper", "receipt-printer", "ok"])
    await wait_state(edge, "receipt-printer", "ready")
    await trio.to_thread.run_sync(hardware.printer.wait_for_receipts, 1, 10.0)


async def test_cash_sales_kick_each_tills_drawer_on_the_wire(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    for till in ("till-1", "till-2"):
        await open_till(http, edge, till)
        state = (await http.post(f"{edge.url}/api/tills/{till}/lines", json={"barcode": MILK})).json()
        await http.post(f"{edge.url}/api/tills/{till}/tenders", json={"amount_minor": 200})
        await http.post(f"{edge.url}/api/tills/{till}/complete", json={"cart": state["cart"]})
    # till-1: drawer on the printer's port: ESC p 0 (pin 2) in the printer's byte stream
    assert await trio.to_thread.run_sync(hardware.printer.wait_for_drawer_kicks, 1, 5.0) == [2]
    assert b"\x1bp\x00" in hardware.printer.raw
    # till-2: standalone serial drawer on its pty
    drawer = hardware.serial["drawer-2"]
    assert await trio.to_thread.run_sync(drawer.wait_for_kicks, 1, 5.0) == [2]  # type: ignore[attr-defined]
    await wait_state(edge, "drawer-2", "open")
    hardware.command(["close-drawer", "drawer-2"])
    await wait_state(edge, "drawer-2", "closed")


async def test_unknown_devices_are_ignored_with_one_log_line(
        edge, hardware: SimulatedStore, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="actors.devices.manager")
    await all_ready(edge)
    hardware.hid_bus.add_device(b"sim-usb-9:1.0", 0x1234, 0x5678, "X1", "Mystery gadget", "keyboard")

    def ignored() -> list[str]:
        return [r.getMessage() for r in caplog.records if "ignoring unknown" in r.getMessage()]

    async def logged() -> list[str]:
        return ignored()
    await wait_until(logged)
    await trio.sleep(SCAN_INTERVAL * 5)  # later scans see it again: still one line
    lines = ignored()
    assert len(lines) == 1 and "1234:5678" in lines[0] and "Mystery gadget" in lines[0]
    assert "device.X1" not in dict(await edge.tree.ask("devices", "which_children"))


async def test_malformed_device_bytes_never_crash_an_actor(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    restarts = edge.tree.restarts
    await open_till(http, edge, "till-2")
    serial_scanner = hardware.serial["scanner-2"]
    serial_scanner.send_raw(b"\x00\xff\xfe garbage \x1b[31m" + b"9" * 500 + b"\r")  # type: ignore[attr-defined]
    serial_scanner.send_raw(b"\x80\x81\x82")  # type: ignore[attr-defined]
    for report in (b"", b"\x02", b"\x02\xff" + b"x" * 10, bytes(64)):
        hardware.hid_bus.send_raw(HID_SCANNER["path"], report)
    await trio.sleep(0.5)
    hardware.command(["scan", "scanner-2", MILK])  # joins the unterminated junk: discarded whole, never half-read
    await trio.sleep(0.5)
    hardware.command(["scan", "scanner-2", MILK])  # the cashier scans again

    async def milk() -> bool:
        lines = (await http.get(f"{edge.url}/api/tills/till-2")).json()["lines"]
        return [(line["sku"], line["quantity"]) for line in lines] == [("MLK-1L", 1)]
    await wait_until(milk)
    await trio.sleep(0.3)
    assert await milk()
    assert edge.tree.restarts == restarts
    assert (await status(edge, "scanner-1"))["state"] == "ready"


async def test_a_sale_with_its_drawer_unplugged_completes_and_tells_the_cashier(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    hardware.unplug("drawer-2")
    await wait_state(edge, "drawer-2", "down")
    async with live_events(http, edge) as seen:
        async def told() -> list[dict]:
            return [e for e in seen if e.get("type") == "till_message"]
        receipt = await sell(http, edge.url, [(MILK, 1)], till="till-2")
        messages = await wait_until(told)
    assert messages == [{"type": "till_message", "till": "till-2",
                         "error": "drawer drawer-2 is unplugged: open it with its key"}]
    assert receipt["seq"] == 1  # the sale is committed all the same
    assert hardware.serial["drawer-2"].kicks == []  # type: ignore[attr-defined]


async def test_device_status_streams_live_to_the_web_till(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    async with live_events(http, edge) as seen:
        await wait_until(lambda: _has(seen, "receipt-printer", "ready"))  # the snapshot comes first
        hardware.unplug("receipt-printer")
        await wait_until(lambda: _has(seen, "receipt-printer", "down"), timeout=10)
        hardware.plug("receipt-printer")
        await wait_until(lambda: _has_after_down(seen, "receipt-printer"), timeout=10)


async def _has(seen: list[dict], device: str, state: str) -> bool:
    return any(e.get("device") == device and e.get("state") == state for e in seen)


async def _has_after_down(seen: list[dict], device: str) -> bool:
    states = [e["state"] for e in seen if e.get("device") == device]
    return "down" in states and "ready" in states[states.index("down"):]


async def test_a_device_replugged_elsewhere_within_the_debounce_follows_it(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    """Unplugged and plugged into another port faster than the debounce: the old actor holds a dead
    handle, so the manager restarts it on the new port, and scans keep reaching the till."""
    await all_ready(edge)
    await open_till(http, edge, "till-1")
    new_port = b"sim-usb-3-1:1.0"
    hardware.unplug("scanner-1")
    hardware.hid_bus.add_device(**dict(HID_SCANNER, path=new_port))

    with trio.fail_after(10):  # a scan reaches the till only once the scanner's actor has the new port open
        while await trio.to_thread.run_sync(hardware.hid_bus.scan, new_port, COFFEE) == 0:
            await trio.sleep(0.05)
    assert "sim-usb-3-1" in (await wait_state(edge, "scanner-1", "ready"))["detail"]

    async def coffee() -> bool:
        lines = (await http.get(f"{edge.url}/api/tills/till-1")).json()["lines"]
        return [(line["sku"], line["quantity"]) for line in lines] == [("COF-250", 1)]
    await wait_until(coffee)


async def test_the_customer_display_follows_the_sale(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    display = hardware.serial["display-1"]
    await open_till(http, edge, "till-1")
    await trio.to_thread.run_sync(display.wait_for_text, "Welcome", 5.0)  # type: ignore[attr-defined]
    hardware.command(["scan", "scanner-1", COFFEE])
    top, bottom = await trio.to_thread.run_sync(display.wait_for_text, "TOTAL", 5.0)  # type: ignore[attr-defined]
    assert top == "Ground coffee 2 4.99" and bottom == "TOTAL           4.99"  # 20 columns: the name gives way
    state = (await http.get(f"{edge.url}/api/tills/till-1")).json()
    await http.post(f"{edge.url}/api/tills/till-1/tenders", json={"amount_minor": 1000})
    await http.post(f"{edge.url}/api/tills/till-1/complete", json={"cart": state["cart"]})
    top, bottom = await trio.to_thread.run_sync(display.wait_for_text, "CHANGE", 5.0)  # type: ignore[attr-defined]
    assert top.rstrip().endswith("5.01") and bottom.startswith("Thank you!")
    hardware.unplug("display-1")  # the till sells on without it
    await wait_state(edge, "display-1", "down")
    assert (await http.post(f"{edge.url}/api/tills/till-1/lines", json={"barcode": MILK})).status_code == 200


async def test_a_printer_fault_is_reported_with_what_to_do_and_jobs_wait_for_it(
        edge, hardware: SimulatedStore, http: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await all_ready(edge)
    hardware.command(["fault", "receipt-printer", "cutter"])
    faulted = await wait_state(edge, "receipt-printer", "error")
    assert faulted["detail"] == "autocutter error: clear the paper jam at the cutter"
    await open_till(http, edge, "till-1")
    state = (await http.post(f"{edge.url}/api/tills/till-1/lines", json={"barcode": MILK})).json()
    await http.post(f"{edge.url}/api/tills/till-1/tenders", json={"amount_minor": 129})
    await http.post(f"{edge.url}/api/tills/till-1/complete", json={"cart": state["cart"]})
    hardware.command(["fault", "receipt-printer", "cover_open"])
    await wait_until(lambda: _detail_is(edge, "cover open: close the printer's cover"))
    assert hardware.printer.receipts == []
    hardware.command(["fault", "receipt-printer", "none"])
    await wait_state(edge, "receipt-printer", "ready")
    await trio.to_thread.run_sync(hardware.printer.wait_for_receipts, 1, 10.0)


async def _detail_is(edge, detail: str) -> bool:  # type: ignore[no-untyped-def]
    return (await status(edge, "receipt-printer"))["detail"] == detail
