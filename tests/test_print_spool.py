"""The print spool: a job that cannot be rendered is set aside with its reason; receipts behind it print."""

from __future__ import annotations

import time

import httpx
import msgpack
import trio

from actors.storage import db as local_db
from edge.app import run_edge
from mocks.network_printer import MockNetworkPrinter
from novapos.config import StoreConfig
from tests.conftest import wait_until
from tests.pos import MILK, sell


async def test_an_unrenderable_job_fails_alone_and_the_receipts_behind_it_print(
        store_config: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    db = local_db.connect(store_config.state_dir / local_db.FILE_NAME)
    db.executemany("INSERT INTO print_jobs (id, printer, kind, payload, seq, queued_at) VALUES (?, ?, ?, ?, ?, ?)", [
        ("job-from-the-future", "receipt-printer", "gift.card", msgpack.packb({}), 0, time.time()),
        ("job-with-a-broken-payload", "receipt-printer", "sale.completed", b"\xc1", 0, time.time()),
    ])
    db.close()
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
