"""The print spool against a real edge, its SQLite file and the simulated network printer.

A job that cannot be rendered, or whose printer left the config, is set aside with its reason; the
spooler finds queued jobs on its own sweep; a receipt printed late says so at its top; a store file
locked by another program prints each receipt once and marks it when the file is free."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgpack
import pytest
import trio

from actors.printing.spooler import SWEEP_S
from actors.storage import db as local_db
from actors.storage.outbox import Outbox
from edge.app import run_edge
from mocks.network_printer import MockNetworkPrinter
from novapos.config import StoreConfig
from novapos.config.receipt import ReceiptSettings
from tests.conftest import wait_until
from tests.pos import MILK, log_in, sell

LATE = re.compile(r"LATE RECEIPT - sale #(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d)")


def sale_body(name: str = "Milk 1 l") -> dict[str, Any]:
    eur = {"minor": 129, "currency": "EUR"}
    return {"till": "till-1", "session": "s-1", "cashier": "alice", "currency": "EUR", "total": eur,
            "change": {"minor": 0, "currency": "EUR"}, "tenders": [{"method": "cash", "amount": eur}],
            "lines": [{"sku": "milk", "name": name, "quantity": 1, "unit_price": eur, "amount": eur}]}


@contextmanager
def spool_file(config: StoreConfig) -> Iterator[sqlite3.Connection]:
    db = local_db.connect(config.state_dir / local_db.FILE_NAME)
    try:
        yield db
    finally:
        db.close()


def queue_job(config: StoreConfig, job_id: str, printer: str, seq: int, queued_at: float,
              kind: str = "sale.completed", payload: bytes | None = None) -> None:
    """A job written straight into the spool file, as a sale committed earlier (or elsewhere) left it."""
    if payload is None:
        payload = msgpack.packb({"id": job_id, "seq": seq, "body": sale_body()})
    with spool_file(config) as db:
        db.execute("INSERT INTO print_jobs (id, printer, kind, payload, seq, queued_at) VALUES (?, ?, ?, ?, ?, ?)",
                   (job_id, printer, kind, payload, seq, queued_at))


def job_row(config: StoreConfig, job_id: str) -> dict[str, Any]:
    with spool_file(config) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM print_jobs WHERE id = ?", (job_id,)).fetchone())


async def printer_ready(http: httpx.AsyncClient, url: str) -> None:
    """Wait until the receipt printer is up, so a sale's receipt is printed at its sale, not after."""
    await log_in(http, url)  # alice: devices are behind the till login too
    async def ready() -> bool:
        devices = (await http.get(f"{url}/api/devices")).json()
        return any(device["device"] == "receipt-printer" and device["state"] == "ready" for device in devices)
    await wait_until(ready)


async def test_an_unrenderable_job_fails_alone_and_the_receipts_behind_it_print(
        store_config: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    queue_job(store_config, "job-from-the-future", "receipt-printer", 0, time.time(), "gift.card", msgpack.packb({}))
    queue_job(store_config, "job-with-a-broken-payload", "receipt-printer", 0, time.time(), payload=b"\xc1")
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        receipt = await sell(http, edge.url, [(MILK, 1)])
        printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
        assert receipt["sale"] in printed[0]

        async def settled() -> dict[str, dict]:
            jobs = {job["id"]: job for job in (await http.get(f"{edge.url}/api/print-jobs")).json()}
            return jobs if jobs.get(receipt["sale"], {}).get("state") == "printed" else {}
        jobs = await wait_until(settled)
        assert jobs["job-from-the-future"]["state"] == "failed"
        assert "cannot render a 'gift.card' job" in jobs["job-from-the-future"]["reason"]
        assert jobs["job-with-a-broken-payload"]["state"] == "failed"
        assert edge.tree.restarts == 0
        nursery.cancel_scope.cancel()


@pytest.fixture
def kathmandu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The store box in UTC+05:45, so a receipt stamped in the box's zone instead of the store's shows."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_the_receipt_shows_the_store_the_local_date_and_time_the_sale_and_the_till(
        store_config: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient, kathmandu: None) -> None:
    zone = ZoneInfo("America/New_York")
    store_config = replace(store_config, receipt=ReceiptSettings("Corner Shop", ("1 Main St",), timezone=zone.key))
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        await printer_ready(http, edge.url)
        before = datetime.now(zone).replace(second=0, microsecond=0)
        await sell(http, edge.url, [(MILK, 1)], till="till-2")
        printed = (await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0))[0]
        after = datetime.now(zone)
        nursery.cancel_scope.cancel()
    heading = printed.splitlines()[:5]
    assert [line.strip() for line in heading[:2]] == ["Corner Shop", "1 Main St"]
    stamp = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d) E[SD]T", "\n".join(heading))
    assert stamp is not None, heading
    assert before <= datetime.strptime(stamp[1], "%Y-%m-%d %H:%M").replace(tzinfo=zone) <= after  # the store's zone
    assert re.search(r"Sale #1\b", "\n".join(heading)) and "Till till-2" in "\n".join(heading)
    assert "LATE" not in printed  # printed at its sale


async def test_jobs_for_a_printer_no_longer_configured_fail_with_the_reason_at_start(
        store_config: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient,
        caplog: pytest.LogCaptureFixture) -> None:
    queue_job(store_config, "job-for-a-renamed-printer", "old-printer", 3, time.time() - 60)
    caplog.set_level(logging.WARNING, logger="actors.printing.spooler")
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)

        async def failed() -> dict[str, Any]:
            job = job_row(store_config, "job-for-a-renamed-printer")
            return job if job["state"] == "failed" else {}
        job = await wait_until(failed, timeout=5.0)
        await sell(http, edge.url, [(MILK, 1)])  # the configured printer prints on
        await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
        nursery.cancel_scope.cancel()
    assert job["reason"].startswith("printer 'old-printer' is no longer configured: ")
    assert job["attempts"] == 0  # never tried, never retried
    warning = [record.getMessage() for record in caplog.records if "old-printer" in record.getMessage()]
    assert len(warning) == 1 and "sale #3" in warning[0] and "receipt-printer" in warning[0], warning


async def test_a_job_nobody_announced_prints_within_the_sweep_interval(
        store_config: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        await sell(http, edge.url, [(MILK, 1)])  # the printer is up and the spooler idle
        await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0)
        outbox = Outbox(store_config.state_dir / local_db.FILE_NAME, store_config.tenant, store_config.store)
        committed = outbox.append("sale.completed", 1, sale_body("Unannounced oat milk"), print_on="receipt-printer")
        outbox.close()  # committed behind the till's back: no one tells the spooler
        started = time.monotonic()
        printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 2, SWEEP_S + 5.0)
        assert time.monotonic() - started <= SWEEP_S + 1.0
        assert "Unannounced oat milk" in printed[1] and str(committed.id) in printed[1]
        nursery.cancel_scope.cancel()


async def test_a_receipt_queued_long_before_it_prints_is_headed_late(
        store_config: StoreConfig, printer: MockNetworkPrinter) -> None:
    queued_at = time.time() - 3600
    queue_job(store_config, "job-from-an-hour-ago", "receipt-printer", 41, queued_at)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_edge, store_config)
        printed = (await trio.to_thread.run_sync(printer.wait_for_receipts, 1, 10.0))[0]
        nursery.cancel_scope.cancel()
    late = LATE.search(printed.splitlines()[0])
    assert late is not None, printed
    assert late[1] == "41" and late[2] == datetime.fromtimestamp(queued_at).strftime("%Y-%m-%d %H:%M")


async def test_a_receipt_printed_after_the_printer_came_back_is_headed_late(
        store_config: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        await printer_ready(http, edge.url)
        first = await sell(http, edge.url, [(MILK, 1)])

        async def confirmed() -> bool:  # else its confirmation would read "paper out" and print it again
            return job_row(store_config, first["sale"])["state"] == "printed"
        await wait_until(confirmed)
        printer.set_paper("out")
        receipt = await sell(http, edge.url, [(MILK, 2)])

        async def attempted() -> dict[str, Any]:
            job = job_row(store_config, receipt["sale"])
            return job if job["attempts"] else {}
        await wait_until(attempted)  # the printer said "paper out" when the receipt was due
        printer.set_paper("ok")
        printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 2, 15.0)
        nursery.cancel_scope.cancel()
    assert "LATE" not in printed[0]
    late = LATE.search(printed[1].splitlines()[0])
    assert late is not None and late[1] == "2", printed[1]


async def test_receipts_print_once_under_a_locked_store_file_and_are_marked_once_it_is_free(
        store_config: StoreConfig, printer: MockNetworkPrinter) -> None:
    now = time.time()
    queue_job(store_config, "job-1", "receipt-printer", 1, now)
    queue_job(store_config, "job-2", "receipt-printer", 2, now)
    lock = sqlite3.connect(store_config.state_dir / local_db.FILE_NAME, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another program holds the file: the spooler reads, cannot write
    try:
        async with trio.open_nursery() as nursery:
            edge = await nursery.start(run_edge, store_config)
            printed = await trio.to_thread.run_sync(printer.wait_for_receipts, 2, 15.0)
            await trio.sleep(3 * SWEEP_S)  # how long the lock lasts (several sweeps): not a synchronisation
            assert printer.receipts == printed and len(printed) == 2  # printed once, not at every sweep
            assert job_row(store_config, "job-1")["state"] == "queued"  # its mark waits for the file
            assert edge.tree.restarts == 0
            lock.execute("COMMIT")

            async def marked() -> bool:
                return all(job_row(store_config, job)["state"] == "printed" for job in ("job-1", "job-2"))
            await wait_until(marked, timeout=SWEEP_S + 5)
            assert printer.receipts == printed and edge.tree.restarts == 0
            nursery.cancel_scope.cancel()
    finally:
        if lock.in_transaction:
            lock.execute("COMMIT")
        lock.close()
