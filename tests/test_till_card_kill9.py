"""A card payment the issuer approves while the edge lies dead (kill -9 mid-processing) is found again by
STATUS after the restart: the sale completes once, and the terminal holds one payment."""

from __future__ import annotations

import signal
import tomllib
import uuid
from pathlib import Path

import httpx
import tomli_w
import trio

from mocks.network_printer import MockNetworkPrinter
from mocks.payment_terminal import PaymentTerminalMock
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import wait_until
from tests.edges import printer_rule, start_edge, store_box
from tests.pos import COFFEE, log_in


async def test_a_card_approved_while_the_edge_was_killed_is_found_by_status_and_sold_once(
        tmp_path: Path, nats_server: EmbeddedNats, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    with PaymentTerminalMock(tmp_path / "terminal-1", processing_time=2.0) as terminal:
        box = store_box(tmp_path, [printer_rule(printer.port), {"name": "terminal-1", "driver": "serial-terminal",
                                                                 "path": str(terminal.path), "till": "till-1"}])
        config, url = box.config, box.url
        data = tomllib.loads(config.read_text())
        data["terminal"] = {"timeout_s": 30, "poll_ms": 50}
        config.write_text(tomli_w.dumps(data))
        till = f"{url}/api/tills/till-1"
        tender_id = str(uuid.uuid4())
        reference = uuid.UUID(tender_id).hex

        async def tender() -> dict:
            return next(t for t in (await http.get(till)).json()["tenders"] if t["id"] == tender_id)

        edge = await start_edge(config, nats_server, url, http)
        try:
            await log_in(http, url)
            cart = (await http.post(f"{till}/lines", json={"barcode": COFFEE, "quantity": 3})).json()
            started = await http.post(f"{till}/tenders", json={"method": "card", "id": tender_id,
                                                              "amount_minor": cart["due"]["minor"]})
            assert started.status_code == 200, started.text
            await wait_until(lambda: _is(tender, "waiting_for_card"))
            await trio.to_thread.run_sync(terminal.present_card)
            await wait_until(lambda: _is(tender, "processing"))
            edge.send_signal(signal.SIGKILL)  # the issuer's answer comes while nobody listens
            edge.wait()
            await wait_until(lambda: _approved_at(terminal, reference), timeout=10)

            edge = await start_edge(config, nats_server, url, http)
            approved = await wait_until(lambda: _is(tender, None, "approved"), timeout=15)
            assert approved["card"]["auth_code"] == terminal.status_of(reference).auth_code
            receipt = (await http.post(f"{till}/complete", json={"cart": cart["cart"]})).json()
            assert [(t["id"], t["card"]["reference"]) for t in receipt["tenders"]] == [(tender_id, reference)]
            again = (await http.post(f"{till}/complete", json={"cart": cart["cart"]})).json()
            assert again["sale"] == receipt["sale"]
            assert terminal.references == [reference]  # one payment, never a second PAY after the restart
        finally:
            edge.send_signal(signal.SIGTERM)
            edge.wait()


async def _is(tender, stage: str | None, state: str = "pending") -> dict | None:  # type: ignore[no-untyped-def]
    found = await tender()
    return found if found["state"] == state and (stage is None or found["stage"] == stage) else None


async def _approved_at(terminal: PaymentTerminalMock, reference: str) -> bool:
    return terminal.status_of(reference).stage == "approved"
