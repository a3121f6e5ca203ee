"""Cards taken while the hub is away, at a real edge with the simulated terminal on a real pseudo-terminal and real
NATS with no hub answering: only under the tenant's per-payment limit and the store's total of offline approvals
(the hub's defaults, 50.00 and 200.00, as none was ever fetched), the terminal storing the card (its token in the
card.approved event), a card the terminal did not take freeing its share, and the total still counted after the
edge is stopped and started again."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import trio

from actors.payments import offline
from actors.storage import db as local_db
from edge.app import run_edge
from mocks.payment_terminal import PaymentTerminalMock
from novapos.config import DeviceRule, HubConfig, StoreConfig
from novapos.config.terminal import TerminalSettings
from novapos.tls import Certificates
from novapos.wire.payments import payment_request_subject
from tests.conftest import wait_until
from tests.edges import waiting_events
from tests.pos import COFFEE, log_in
from tests.test_till_card import Till, _device_ready, state_is

TILL = "till-1"


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[PaymentTerminalMock]:
    with PaymentTerminalMock(tmp_path / "terminal-1", processing_time=0.1) as mock:
        yield mock


def offline_config(store_config: StoreConfig, terminal: PaymentTerminalMock) -> StoreConfig:
    rules = (*store_config.devices.rules, DeviceRule("terminal-1", "serial-terminal", path=str(terminal.path), till=TILL))
    return replace(store_config, devices=replace(store_config.devices, rules=rules),
                   terminal=TerminalSettings(timeout_s=5, poll_ms=50, offline_cards=True))


@pytest.fixture
def config(store_config: StoreConfig, terminal: PaymentTerminalMock) -> StoreConfig:
    return offline_config(store_config, terminal)


async def _edge(config: StoreConfig, http: httpx.AsyncClient, nursery: trio.Nursery) -> tuple[Any, trio.CancelScope]:
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[Any]) -> None:
        with scope:
            await run_edge(config, task_status=task_status)
    running = await nursery.start(run)
    await log_in(http, running.url, TILL)
    await wait_until(lambda: _device_ready(http, running.url, "terminal-1"))
    return running, scope


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as opened:
        yield opened
        opened.cancel_scope.cancel()


async def _offline_card(till: Till, terminal: PaymentTerminalMock, amount: int, approve: bool = True) -> dict[str, Any]:
    tender_id = str(uuid.uuid4())
    response = await till.card(amount, tender_id)
    assert response.status_code == 200, response.text
    await wait_until(lambda: _waiting_for_card(terminal), interval=0.02)
    terminal.present_card(approve=approve, number="4000000000000002" if not approve else None)
    return await till.tender_when(tender_id, lambda t: t["state"] != "pending")


async def _waiting_for_card(terminal: PaymentTerminalMock) -> bool:
    return any(terminal.status_of(reference).stage == "waiting_for_card" for reference in terminal.references)


async def _gauges(http: httpx.AsyncClient, url: str) -> tuple[float, float]:
    text = (await http.get(f"{url}/metrics")).text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("novapos_edge_payment_offline_approvals")}
    return values["novapos_edge_payment_offline_approvals"], values["novapos_edge_payment_offline_approvals_minor"]


async def test_offline_cards_stay_under_the_limits_and_a_restart_does_not_reset_them(
        config: StoreConfig, terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    running, scope = await _edge(config, http, nursery)
    till = Till(http, running.url)
    await till.basket((COFFEE, 100))  # 499.00 due

    over = await till.card(5001)
    assert over.status_code == 409
    assert "the store is offline: cards over 50.00 EUR cannot be taken offline, take cash" in over.text
    assert terminal.references == []  # refused before the terminal heard of it

    approved = [await _offline_card(till, terminal, 5000) for _ in range(3)]
    assert [tender["state"] for tender in approved] == ["approved"] * 3
    refused_by_chip = await _offline_card(till, terminal, 5000, approve=False)
    assert refused_by_chip["state"] == "declined"  # not taken: its share of the total is freed
    assert (await _offline_card(till, terminal, 5000))["state"] == "approved"  # 200.00 outstanding: the total

    full = await till.card(100)
    assert full.status_code == 409 and "200.00 EUR of card payments wait for the hub already" in full.text
    assert await _gauges(http, running.url) == (4, 20000)
    approvals = [event.body for event in waiting_events(config.state_dir) if event.type == "card.approved"]
    assert len(approvals) == 4 and all(body["offline"] and body["card_token"] == "tok_4242424242424242"
                                       and "auth_code" not in body for body in approvals)

    scope.cancel()  # the edge stops; a new one on the same state folder counts what the first took
    await trio.sleep(0.5)
    running, scope = await _edge(config, http, nursery)
    till = Till(http, running.url)
    after = await till.card(100)
    assert after.status_code == 409 and "200.00 EUR of card payments wait for the hub already" in after.text
    assert await _gauges(http, running.url) == (4, 20000)
    assert len(terminal.references) == 5


async def test_a_card_tender_resent_offline_is_counted_once(
        config: StoreConfig, terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    running, _ = await _edge(config, http, nursery)
    till = Till(http, running.url)
    await till.basket((COFFEE, 20))
    tender_id = str(uuid.uuid4())
    assert (await till.card(4000, tender_id)).status_code == 200
    assert (await till.card(4000, tender_id)).status_code == 200  # a resend: the same payment, counted once
    await wait_until(lambda: _waiting_for_card(terminal), interval=0.02)
    terminal.present_card()
    await till.tender_when(tender_id, state_is("approved"))
    assert await _gauges(http, running.url) == (1, 4000)


async def test_an_offline_approval_the_busy_outbox_refused_is_committed_once_the_disk_is_free(
        config: StoreConfig, terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    running, _ = await _edge(config, http, nursery)
    till = Till(http, running.url)
    await till.basket((COFFEE, 10))
    tender_id = str(uuid.uuid4())
    assert (await till.card(4000, tender_id)).status_code == 200
    await wait_until(lambda: _waiting_for_card(terminal), interval=0.02)
    backup = sqlite3.connect(config.state_dir / local_db.FILE_NAME, isolation_level=None)
    backup.execute("BEGIN IMMEDIATE")  # a backup, a sqlite3 shell left in a transaction
    terminal.present_card()
    await till.tender_when(tender_id, state_is("approved"))
    await trio.sleep(local_db.LOCK_WAIT_S + 1.0)  # the outbox has refused card.approved once
    assert not [event for event in waiting_events(config.state_dir) if event.type == "card.approved"]
    backup.execute("ROLLBACK")
    backup.close()

    async def committed() -> list[Any]:
        return [event for event in waiting_events(config.state_dir) if event.type == "card.approved"]
    [approval] = await wait_until(committed, timeout=15)
    assert approval.body["tender"] == tender_id and approval.body["offline"]
    assert await _gauges(http, running.url) == (1, 4000)


async def test_offline_limits_kept_in_another_currency_than_the_stores_give_way_to_the_defaults(
        config: StoreConfig, terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
    db = local_db.connect(config.state_dir / local_db.FILE_NAME)
    try:  # kept when the store sold in another currency: 10 000.00 in its minor units
        offline.keep_limits(db, offline.Limits(1_000_000, 5_000_000, "JPY"))
    finally:
        db.close()
    running, _ = await _edge(config, http, nursery)
    till = Till(http, running.url)
    await till.basket((COFFEE, 20))
    over = await till.card(5001)
    assert over.status_code == 409 and "cards over 50.00 EUR cannot be taken offline" in over.text, over.text
    assert terminal.references == []


async def test_a_reservation_no_till_approved_in_time_stops_counting_and_a_late_approval_counts_again(
        config: StoreConfig, terminal: PaymentTerminalMock, http: httpx.AsyncClient, nursery: trio.Nursery,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline, "RESERVED_FOR_S", 0.5)
    config = replace(config, terminal=replace(config.terminal, timeout_s=60))
    running, _ = await _edge(config, http, nursery)
    till = Till(http, running.url)
    await till.basket((COFFEE, 10))
    tender_id = str(uuid.uuid4())
    assert (await till.card(4000, tender_id)).status_code == 200
    await wait_until(lambda: _waiting_for_card(terminal), interval=0.02)
    assert await _gauges(http, running.url) == (1, 4000)

    async def released() -> bool:
        return await _gauges(http, running.url) == (0, 0)
    await wait_until(released, timeout=15)  # the cards actor's next settle round
    terminal.present_card()  # the customer was slow, but the card is stored: it counts again
    await till.tender_when(tender_id, state_is("approved"))
    assert await _gauges(http, running.url) == (1, 4000)


async def test_a_slow_hub_holds_the_cards_actor_for_a_few_requests_per_settle_round_only(
        config: StoreConfig, hub_config: HubConfig, terminal: PaymentTerminalMock, http: httpx.AsyncClient,
        nursery: trio.Nursery) -> None:
    db = local_db.connect(config.state_dir / local_db.FILE_NAME)
    try:  # twenty approvals taken offline earlier, none confirmed by the hub yet
        for _ in range(20):
            tender_id = str(uuid.uuid4())
            assert offline.reserve(db, tender_id, TILL, 100, "EUR") is None
            db.execute("UPDATE offline_cards SET state = 'outstanding' WHERE tender_id = ?", (tender_id,))
    finally:
        db.close()
    asked: list[float] = []
    with slow_hub(hub_config, asked):  # each pay_status answered "not heard of yet", 0.3 s late
        await _edge(config, http, nursery)
        await wait_until(lambda: _asked(asked, 1), timeout=15)
        await trio.sleep(3.0)
    first_round = [at for at in asked if at - asked[0] < 3.0]
    assert len(first_round) <= 5, len(first_round)


async def _asked(asked: list[float], count: int) -> bool:
    return len(asked) >= count


@contextmanager
def slow_hub(hub_config: HubConfig, asked: list[float]) -> Iterator[None]:
    """A hub on the real NATS that answers the store's pay_status {"intent": null} after 0.3 s, noting when each
    was asked, until the block ends."""
    ready, stop = threading.Event(), threading.Event()

    async def answer() -> None:
        client = await nats.connect(hub_config.nats_url, tls=Certificates(hub_config.tls).client,
                                    **({"nkeys_seed": str(hub_config.nats_credentials)}
                                       if hub_config.nats_credentials else {}))

        async def status(msg: Any) -> None:
            asked.append(time.monotonic())
            await asyncio.sleep(0.3)
            await msg.respond(b'{"intent": null}')
        await client.subscribe(payment_request_subject("demo", "store-001", "pay_status"), cb=status)
        await client.flush()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await client.close()
    thread = threading.Thread(target=asyncio.run, args=(answer(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
