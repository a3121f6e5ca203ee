"""A sale the till reported complete survives kill -9 of the edge process while NATS is down, and so
does a cart still being scanned."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import trio

from actors.storage import db as local_db
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query, wait_until
from tests.edges import printer_rule, start_edge, store_box
from tests.pos import COFFEE, MILK, log_in_at, sell


async def test_completed_sales_survive_kill_9_and_land_once(
        tmp_path: Path, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    box = store_box(tmp_path, [printer_rule(printer.port), {"name": "drawer-1", "driver": "printer-drawer",
                                                             "printer": "receipt-printer", "till": "till-1"}])
    config, url = box.config, box.url
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(nats_server.stop)

        edge = await start_edge(config, nats_server, url, http)
        receipts = [await sell(http, url, [(COFFEE, n), (MILK, 1)]) for n in (1, 2, 3)]
        # Meanwhile on till-2 a basket is half scanned: the cashier must not have to scan it again.
        till_2 = f"{url}/api/tills/till-2"
        await log_in_at(http, f"{till_2}", "bob")
        for barcode, quantity in ((COFFEE, 2), (MILK, 1)):
            open_cart = (await http.post(f"{till_2}/lines", json={"barcode": barcode, "quantity": quantity})).json()
        edge.send_signal(signal.SIGKILL)  # receipts may still be spooled: they must print after the restart
        edge.wait()
        spool = local_db.connect(tmp_path / "store-001" / local_db.FILE_NAME)
        marked = {seq for (seq,) in spool.execute("SELECT seq FROM print_jobs WHERE state = 'printed'")}
        spool.close()

        await trio.to_thread.run_sync(nats_server.start)
        edge = await start_edge(config, nats_server, url, http)
        try:
            assert (await http.get(till_2)).json() == open_cart  # same session, cart id, lines and total
            # The cashier never saw the last answer (the box died): resending it finds the sale on disk.
            resent = await http.post(f"{url}/api/tills/till-1/complete", json={"cart": receipts[-1]["cart"]})
            assert resent.status_code == 200 and resent.json()["sale"] == receipts[-1]["sale"]
            async def landed() -> list:
                rows = await query(database_url, "SELECT event_id::text AS id, seq, total_minor FROM sales ORDER BY seq")
                return rows if len(rows) >= 3 else []
            rows = await wait_until(landed, timeout=30)
            await trio.sleep(1.0)
            rows = await landed()
            assert [row["id"] for row in rows] == [receipt["sale"] for receipt in receipts]
            assert [row["seq"] for row in rows] == [1, 2, 3]
            assert [row["total_minor"] for row in rows] == [499 + 129, 998 + 129, 1497 + 129]
            next_sale = await sell(http, url, [(MILK, 1)])
            assert next_sale["seq"] == 4  # the sequence continues after the crash, no gap, no reuse
            async def all_printed() -> dict[int, int]:
                copies = {seq: sum(f"Sale #{seq}" in receipt.splitlines() for receipt in printer.receipts)
                          for seq in (1, 2, 3, 4)}
                return copies if all(copies.values()) else {}
            copies = await wait_until(all_printed)
            await trio.sleep(1.0)  # any further copy would have printed by now
            copies = await all_printed()
            # A job the spool had marked printed is never printed again. A job the kill caught between
            # the printer's confirmation and that mark prints once more (at least once, never lost).
            assert all(copies[seq] == 1 for seq in marked | {4}), (marked, copies)
            assert all(1 <= copies[seq] <= 2 for seq in (1, 2, 3)), copies
        finally:
            edge.send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(edge.wait) == 0
        nursery.cancel_scope.cancel()
