"""Points the hub took while the edge lay dead (kill -9 between the hub's taking them and the till's saving its
answer) are owed back after the restart, not lost: the hub holds a redemption until a sale uses it or the till gives
it back. The page's retry of the same tender then confirms them, taken once (tests.loyalty_hub on the real NATS, the
edge a process of its own)."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx

from mocks.network_printer import MockNetworkPrinter
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import wait_until
from tests.edges import printer_rule, start_edge, store_box
from tests.loyalty_hub import ANN, LoyaltyHub
from tests.pos import COFFEE, MANAGER_OVERRIDE, log_in


class DyingHub(LoyaltyHub):
    """Takes the first points_redeem and kills the edge that asked before answering it."""

    edge: subprocess.Popen[bytes] | None = None

    async def _answer(self, msg: Any) -> None:
        if msg.subject.endswith(".points_redeem") and self.edge is not None:
            edge, self.edge = self.edge, None
            self.answer("points_redeem", json.loads(msg.data))  # the points are taken...
            edge.send_signal(signal.SIGKILL)  # ...and the till dies before it hears so
            edge.wait()
            return
        await super()._answer(msg)


async def test_points_taken_while_the_till_died_are_owed_back_after_the_restart_and_a_retry_takes_them_once(
        tmp_path: Path, nats_server: EmbeddedNats, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    box = store_box(tmp_path, [printer_rule(printer.port)])
    till = f"{box.url}/api/tills/till-1"
    tender_id = str(uuid.uuid4())
    with DyingHub(nats_server) as hub:
        edge = await start_edge(box.config, nats_server, box.url, http)
        try:
            await log_in(http, box.url)
            await http.post(f"{till}/lines", json={"barcode": COFFEE, "quantity": 2})
            assert (await http.get(f"{till}/customers", params={"q": "ann@example.com"})).status_code == 200
            assert (await http.put(f"{till}/customer", json={"customer": ANN})).status_code == 200
            hub.edge = edge
            try:
                await http.post(f"{till}/tenders", json={"method": "points", "amount_minor": 300, "id": tender_id})
            except httpx.TransportError:
                pass  # the edge died mid-request
            assert edge.wait(10) == -signal.SIGKILL and hub.customers[ANN].points == 4700

            edge = await start_edge(box.config, nats_server, box.url, http)
            await log_in(http, box.url)
            state = (await http.get(till)).json()
            assert state["tenders"] == [] and state["loyalty_reversals_owed"] == 1  # owed, not forgotten

            retried = await http.post(f"{till}/tenders", json={"method": "points", "amount_minor": 300,
                                                               "id": tender_id})
            assert retried.status_code == 200, retried.text
            assert retried.json()["loyalty_reversals_owed"] == 0  # the retry confirmed it: the tender uses it
            assert [t["id"] for t in retried.json()["tenders"]] == [tender_id]
            assert hub.customers[ANN].points == 4700  # taken once

            async def given_back() -> bool:  # voided now: the redemption goes back to Ann at once
                return hub.customers[ANN].points == 5000
            voided = await http.request("DELETE", f"{till}/tenders/{tender_id}", json={"override": MANAGER_OVERRIDE})
            assert voided.status_code == 200, voided.text
            await wait_until(given_back, timeout=10)
        finally:
            edge.send_signal(signal.SIGTERM)
            edge.wait()
