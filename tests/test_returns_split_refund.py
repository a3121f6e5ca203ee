"""A sale paid partly in cash and partly by card, returned: the card gets back at most what it paid (the terminal
is asked for that, never the cash part too), the rest is paid back in cash from the drawer; a later return of the
same sale refunds the card only what is left on it. Real edge, real PTY terminal mock, real outbox file."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import httpx
import trio

from edge.app import run_edge
from mocks.network_printer import MockNetworkPrinter
from mocks.payment_terminal import PaymentTerminalMock
from novapos.config import DeviceRule, StoreConfig
from novapos.config.terminal import TerminalSettings
from tests.conftest import printer_only, wait_until
from tests.pos import COFFEE, MANAGER_OVERRIDE, log_in
from tests.test_till_card import outbox


async def _ready(http: httpx.AsyncClient, base: str) -> bool:
    return any(d["device"] == "terminal-1" and d["state"] == "ready" for d in (await http.get(f"{base}/api/devices")).json())


async def _post(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(url, json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_split_sale_refunds_its_card_at_most_what_the_card_paid(
        store_config: StoreConfig, printer: MockNetworkPrinter, http: httpx.AsyncClient, tmp_path: Path) -> None:
    with PaymentTerminalMock(tmp_path / "terminal", auto_approve_after=0.0, processing_time=0.01) as terminal:
        rules = (*printer_only(printer.port).rules,
                 DeviceRule("terminal-1", "serial-terminal", path=str(terminal.path), till="till-1"))
        config = dataclasses.replace(store_config, devices=dataclasses.replace(store_config.devices, rules=rules),
                                     terminal=TerminalSettings(timeout_s=5, poll_ms=50))
        async with trio.open_nursery() as nursery:
            edge = await nursery.start(run_edge, config)
            till = f"{edge.url}/api/tills/till-1"
            await log_in(http, edge.url)
            await wait_until(lambda: _ready(http, edge.url))
            state = await _post(http, f"{till}/lines", {"barcode": COFFEE, "quantity": 4})  # 4 x 4.99 = 19.96
            await _post(http, f"{till}/tenders", {"method": "cash", "amount_minor": 1500})
            tender = str(uuid.uuid4())
            await _post(http, f"{till}/tenders", {"method": "card", "amount_minor": 496, "id": tender})

            async def approved() -> bool:
                found = [t for t in (await http.get(till)).json()["tenders"] if t["id"] == tender]
                return bool(found and found[0]["state"] == "approved")
            await wait_until(approved, timeout=10, interval=0.02)
            order = (await _post(http, f"{till}/complete", {"cart": state["cart"]}))["sale"]

            shown: list[tuple[int, str, int]] = []  # what the till showed: refund, refund_to, the card's part

            async def give_back(units: int) -> dict[str, Any]:
                await _post(http, f"{till}/returns", {"order": order, "override": MANAGER_OVERRIDE})
                state = await _post(http, f"{till}/returns/lines", {"original_line": 1, "quantity": units})
                shown.append((state["refund"]["minor"], state["refund_to"], state["refund_card"]["minor"]))
                return await _post(http, f"{till}/complete", {"cart": state["cart"]})

            first = await give_back(2)  # 9.98 back: 4.96 to the card (all it paid), 5.02 in cash
            assert [(r["method"], r["amount"]["minor"]) for r in first["refunds"]] == [("card", 496), ("cash", 502)]
            [reference] = terminal.references[1:]
            assert terminal.status_of(reference).amount_minor == 496  # the terminal refunded only the card's part
            second = await give_back(1)  # the card has nothing left: cash
            assert [(r["method"], r["amount"]["minor"]) for r in second["refunds"]] == [("cash", 499)]
            assert shown == [(998, "card", 496), (499, "cash", 0)]
            assert len(terminal.references) == 2  # the payment and one refund, no second refund
            nursery.cancel_scope.cancel()
    bodies = [event["body"] for event in outbox(config.state_dir) if event["type"] == "return.completed"]
    assert [[r["method"] for r in body["refunds"]] for body in bodies] == [["card", "cash"], ["cash"]]
