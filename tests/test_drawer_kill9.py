"""kill -9 of the edge process mid-shift keeps the drawer session: the same session, its float, sales and moves,
and the close after the restart counts them all, once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import trio

from actors.storage import db as local_db
from mocks.network_printer import MockNetworkPrinter
from novapos.demo.embedded_nats import EmbeddedNats
from tests.edges import printer_rule, start_edge, store_box
from tests.pos import COFFEE, MANAGER_OVERRIDE, log_in, sell


async def test_kill_9_mid_shift_keeps_the_drawer_session(
        tmp_path: Path, nats_server: EmbeddedNats, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    box = store_box(tmp_path, [printer_rule(printer.port), {"name": "drawer-1", "driver": "printer-drawer",
                                                             "printer": "receipt-printer", "till": "till-1"}])
    config, url = box.config, box.url
    drawer = f"{url}/api/tills/till-1/drawer-session"
    await trio.to_thread.run_sync(nats_server.stop)  # offline: everything waits in the outbox

    edge = await start_edge(config, nats_server, url, http)
    try:
        await log_in(http, url, cashier="sam")  # a supervisor: the X report shows the cash expected
        opened = (await http.post(drawer, json={"float": {"2000": 5}})).json()["drawer_session"]
        for _ in range(3):
            await sell(http, url, [(COFFEE, 1)], cashier="sam", cash=500)
        assert (await http.post(f"{drawer}/moves", json={"kind": "drop", "amount_minor": 5000,
                                                         "reason": "to the safe", "override": MANAGER_OVERRIDE})
                ).status_code == 200
        before = (await http.get(f"{drawer}/x-report")).json()
        os.kill(edge.pid, signal.SIGKILL)
        edge.wait()
    finally:
        if edge.poll() is None:
            edge.kill()

    edge = await start_edge(config, nats_server, url, http)
    try:
        assert (await http.get(drawer)).json()["drawer_session"] == opened
        after = (await http.get(f"{drawer}/x-report")).json()
        assert {**after, "at": 0} == {**before, "at": 0}
        assert after["sales"]["count"] == 3 and after["expected"]["minor"] == 10000 + 3 * 499 - 5000
        await sell(http, url, [(COFFEE, 1)])
        z = (await http.post(f"{drawer}/close", json={"counted": {"2000": 2, "1": 10000 + 4 * 499 - 5000 - 4000}})).json()
        assert z["z"]["sales"]["count"] == 4 and z["difference"] == 0 and z["z"]["drops"]["count"] == 1
    finally:
        edge.send_signal(signal.SIGTERM)
        edge.wait()
    db = local_db.connect(tmp_path / "store-001" / local_db.FILE_NAME)
    rows = db.execute("SELECT kind, count(*) FROM cash_ledger WHERE session = ? GROUP BY kind ORDER BY kind",
                      (opened["id"],)).fetchall()
    db.close()
    assert dict(rows) == {"sale": 4, "tender": 4, "change": 3, "tax": 4, "drop": 1}  # each once
