"""A return the till reported complete survives kill -9 of the edge process and lands at the hub once; a return
still open at another till carries on after the restart, and its units are still counted once."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import trio

from actors.storage import db as local_db
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query, wait_until
from tests.edges import printer_rule, start_edge, store_box
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in, sell
from tests.test_returns_hub import _ask


async def _return(http: httpx.AsyncClient, till: str, order: str, line: int, quantity: int) -> dict[str, Any]:
    assert (await http.post(f"{till}/returns", json={"order": order, "override": MANAGER_OVERRIDE})).status_code == 200
    response = await http.post(f"{till}/returns/lines", json={"original_line": line, "quantity": quantity})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_completed_return_survives_kill_9_and_lands_once(
        tmp_path: Path, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    box = store_box(tmp_path, [printer_rule(printer.port)])
    config, url = box.config, box.url
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        # the hub answers requests (its responders subscribed) before NATS goes away
        await wait_until(lambda: _ask(nats_server, "demo", "store-001", "0190a5b0-0000-7000-8000-000000000000"))
        await trio.to_thread.run_sync(nats_server.stop)
        edge = await start_edge(config, nats_server, url, http)
        first = (await sell(http, url, [(COFFEE, 2)]))["sale"]
        second = (await sell(http, url, [(MILK, 3)]))["sale"]
        till_1, till_2 = f"{url}/api/tills/till-1", f"{url}/api/tills/till-2"
        state = await _return(http, till_1, first, 1, 2)
        done = (await http.post(f"{till_1}/complete", json={"cart": state["cart"]})).json()
        await log_in(http, url, "till-2", "bob")
        open_return = await _return(http, till_2, second, 1, 1)
        edge.send_signal(signal.SIGKILL)
        edge.wait()

        await trio.to_thread.run_sync(nats_server.start)
        edge = await start_edge(config, nats_server, url, http)
        try:
            assert (await http.get(till_2)).json() == open_return  # the same return, its item still taken
            # the cashier never saw the answer: resending finds the return on disk, never a second refund
            resent = await http.post(f"{till_1}/complete", json={"cart": state["cart"]})
            assert resent.status_code == 200 and resent.json()["sale"] == done["sale"]
            finished = (await http.post(f"{till_2}/complete", json={"cart": open_return["cart"]})).json()

            async def landed() -> list[Any]:
                rows = await query(database_url, "SELECT event_id::text AS id FROM returns ORDER BY id")
                return rows if len(rows) >= 2 else []
            rows = await wait_until(landed, timeout=30)
            await trio.sleep(1.0)  # a duplicate would land meanwhile
            assert sorted(row["id"] for row in rows) == sorted([done["sale"], finished["sale"]])
            counted = await query(database_url, "SELECT sale_event_id::text AS sale, returned FROM sale_line_returns")
            assert sorted((row["sale"], row["returned"]) for row in counted) == sorted([(first, 2), (second, 1)])
            journal = local_db.connect(tmp_path / "store-001" / local_db.FILE_NAME)
            returnable = dict(journal.execute("SELECT order_id, returnable FROM store_sale_lines WHERE order_id IN "
                                              "(?, ?)", (first, second)).fetchall())
            journal.close()
            assert returnable == {first: 0, second: 2}
        finally:
            edge.send_signal(signal.SIGTERM)
            edge.wait()
        nursery.cancel_scope.cancel()
