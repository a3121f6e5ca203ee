"""The hub's payment events down to a store, exactly once in effect: the relay publishes each outbox row once
across hubs, a store that was away catches up by position (at start and on reconnect) with nothing missed or
doubled, a second copy of an event is dropped, the tills are told once, and a declined offline approval stays
as the store's follow-up. Real NATS (with the stores' credentials), PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import trio

from actors.payments import offline
from actors.payments.cards import NAME as CARDS
from actors.payments.events import NAME as PAYMENT_EVENTS
from actors.storage import db as local_db
from edge.app import run_edge
from hub.app import run_hub
from hub.db import close_pool, create_pool, migrate
from hub.payments import catchup
from hub.payments.catchup import answer_events
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.validators import Invalid
from novapos.wire.payments import MAX_MESSAGE_BYTES
from tests.conftest import query, wait_until
from tests.payment_events import emit_async, emit_events, inbox, intent, tills_told
from tests.pos import COFFEE, log_in
from tests.test_hub_process import HubProcess, until

SUBJECT = "novapos.demo.store-001.req.pay_events"


async def _as_hub(server: EmbeddedNats) -> Any:
    return await nats.connect(server.url, **server.hub_options())


async def test_a_store_away_catches_up_on_start_and_on_reconnect_with_nothing_missed_or_doubled(
        store_config: StoreConfig, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    state = store_config.state_dir
    declined = intent(state="failed", offline=True, amount=4200)
    await trio.to_thread.run_sync(_taken_offline, state, declined)
    with tills_told(monkeypatch) as told:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            # the store is not running: these are published to nobody, and another store's are never its own
            early = [intent() for _ in range(3)]
            await emit_events(database_url, [("store-001", "payment.captured", {"intent": body}) for body in early[:2]]
                              + [("store-002", "payment.captured", intent()) for _ in range(2)]
                              + [("store-001", "payment.failed", {"intent": declined})]
                              + [("store-001", "payment.captured", {"intent": early[2]})])
            await wait_until(lambda: _published(database_url, 5))

            edge = await nursery.start(run_edge, store_config)
            assert [position for position, _, _ in await wait_until(lambda: _inbox(state, 4))] == [1, 2, 3, 4]

            # online: the next ones arrive live, well before the periodic catch-up (30 s)
            live = [intent("till-2") for _ in range(2)]
            await emit_events(database_url, [("store-001", "payment.authorized", {"intent": body}) for body in live])
            await wait_until(lambda: _inbox(state, 6), timeout=5)

            # NATS goes away; events are emitted meanwhile (the relay cannot publish them); NATS comes back
            await trio.to_thread.run_sync(nats_server.stop)
            away = [intent() for _ in range(3)]
            await emit_events(database_url, [("store-001", "payment.refunded", {"intent": body}) for body in away])
            await trio.to_thread.run_sync(nats_server.start)
            applied = await wait_until(lambda: _inbox(state, 9), timeout=20)

            # a second copy of an event, however it comes, changes nothing
            await _republish_all(database_url)
            await wait_until(lambda: _published(database_url, 11))
            first = (await query(database_url, "SELECT id, position, type, body::text AS body FROM payment_outbox "
                                               "WHERE store = 'store-001' ORDER BY position LIMIT 1"))[0]
            await trio.to_thread.run_sync(lambda: asyncio.run(_publish(nats_server, json.dumps(
                {"id": str(first["id"]), "position": 1, "type": first["type"], "body": json.loads(first["body"])}
            ).encode())))
            await trio.sleep(1.5)
            assert await _inbox(state, 9) == applied

            followups = await edge.tree.ask(CARDS, "follow_ups")
            nursery.cancel_scope.cancel()

    assert [position for position, _, _ in applied] == list(range(1, 10))
    ids = await query(database_url, "SELECT id::text AS id FROM payment_outbox WHERE store = 'store-001' "
                                    "ORDER BY position")
    assert [event_id for _, event_id, _ in applied] == [row["id"] for row in ids]
    expected = ([("till.till-1", "payment.captured", early[0]["id"]), ("till.till-1", "payment.captured", early[1]["id"]),
                 ("till.till-1", "payment.failed", declined["id"]), ("till.till-1", "payment.captured", early[2]["id"])]
                + [("till.till-2", "payment.authorized", body["id"]) for body in live]
                + [("till.till-1", "payment.refunded", body["id"]) for body in away])
    assert told.of() == expected  # each till told once per event, in order
    assert [(f["tender_id"], f["amount"], f["till"]) for f in followups] == \
        [(declined["tender_id"], {"minor": 4200, "currency": "EUR"}, "till-1")]  # the cards actor was told


def _taken_offline(state: Path, declined: dict[str, Any]) -> None:
    """The card of `declined` taken at till-1 while the hub was away: in the store's offline ledger."""
    db = local_db.connect(state / local_db.FILE_NAME)
    try:
        assert offline.reserve(db, declined["tender_id"], "till-1", 4200, "EUR") is None
    finally:
        db.close()


async def _publish(server: EmbeddedNats, data: bytes) -> None:
    """(asyncio) Publish `data` to store-001's payment events as the hub."""
    client = await _as_hub(server)
    try:
        await client.publish("novapos.demo.store-001.pay.payment_captured", data)
        await client.flush()
    finally:
        await client.close()


async def _inbox(state: Path, count: int) -> list[tuple[int, str, str]] | None:
    rows = await trio.to_thread.run_sync(inbox, state)
    return rows if len(rows) >= count else None


async def _published(database_url: str, count: int) -> bool:
    rows = await query(database_url, "SELECT count(*) AS n FROM payment_outbox WHERE published_at IS NOT NULL")
    return bool(rows[0]["n"] >= count)


async def _republish_all(database_url: str) -> None:
    await query(database_url, "UPDATE payment_outbox SET published_at = NULL RETURNING 1")


async def test_a_live_event_after_a_gap_brings_the_missing_ones_at_once_and_bad_ones_are_refused(
        store_config: StoreConfig, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="actors.payments.events")
    state = store_config.state_dir
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await nursery.start(run_edge, store_config)
        await emit_events(database_url, [("store-001", "payment.captured", {"intent": intent()})])
        await wait_until(lambda: _inbox(state, 1))
        # garbage on the store's subject (the hub's bug, or bytes damaged): refused with its reason, nothing applied
        for garbage in (b"not json", b'{"id": "x", "position": 2}', json.dumps(
                {"id": str(uuid.uuid4()), "position": 2, "type": "payment.captured", "body": []}).encode()):
            await trio.to_thread.run_sync(lambda data=garbage: asyncio.run(_publish(nats_server, data)))
        # two events lost in transit, then one published: the gap before it brings them at once, not in 30 s
        await emit_events(database_url, [("store-001", "payment.captured", {"intent": intent()})] * 2,
                          each_own=False, lost=True)
        with trio.fail_after(5):
            await emit_events(database_url, [("store-001", "payment.refunded", {"intent": intent()})])
            applied = await wait_until(lambda: _inbox(state, 4), timeout=5)
        nursery.cancel_scope.cancel()
    assert [(position, kind) for position, _, kind in applied] == [
        (1, "payment.captured"), (2, "payment.captured"), (3, "payment.captured"), (4, "payment.refunded")]
    refused = [r.getMessage() for r in caplog.records if "refused a live event" in r.getMessage()]
    assert len(refused) == 3 and "is not JSON" in refused[0] and "payment event id must be an id" in refused[1] \
        and "payment event body must be a JSON object" in refused[2], refused
    assert any("event 4 arrived after 1" in r.getMessage() for r in caplog.records)


async def test_the_payment_events_actor_crashing_restarts_alone_and_the_tills_sell_on(
        store_config: StoreConfig, hub_config: HubConfig, database_url: str, monkeypatch: pytest.MonkeyPatch,
        http: httpx.AsyncClient) -> None:
    with tills_told(monkeypatch) as told:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            edge = await nursery.start(run_edge, store_config)
            await log_in(http, edge.url)
            added = await http.post(f"{edge.url}/api/tills/till-1/lines", json={"barcode": COFFEE, "quantity": 1})
            assert added.status_code == 200, added.text
            with pytest.raises(AttributeError):
                await edge.tree.ask(PAYMENT_EVENTS, "no_such_method")  # a crash of the actor
            body = intent()
            await emit_events(database_url, [("store-001", "payment.captured", {"intent": body})])
            await wait_until(lambda: _inbox(store_config.state_dir, 1))
            state = (await http.get(f"{edge.url}/api/tills/till-1")).json()
            nursery.cancel_scope.cancel()
    assert told.of() == [("till.till-1", "payment.captured", body["id"])]
    assert [line["sku"] for line in state["lines"]] == ["COF-250"]  # the till was not restarted with it


def _answer(database_url: str, requests: list[tuple[str, bytes]]) -> list[Any]:
    async def run() -> list[Any]:
        pool = await create_pool(database_url, max_size=1)
        try:
            await migrate(pool)
            answers: list[Any] = []
            for subject, data in requests:
                try:
                    answers.append(json.loads(await answer_events(pool, subject, data)))
                except Invalid as exc:
                    answers.append(str(exc))
            return answers
        finally:
            await close_pool(pool)
    return asyncio.run(run())


async def test_pay_events_answers_the_asking_store_after_its_position_capped_and_refuses_bad_requests(
        database_url: str) -> None:
    big = {"intent": intent(), "note": "x" * 2000}
    await emit_events(database_url, [("store-001", "payment.captured", big)] * 600
                      + [("store-002", "payment.captured", {"intent": intent()})] * 3, each_own=False)
    answers = await trio.to_thread.run_sync(_answer, database_url, [
        (SUBJECT, b'{"after": 0, "limit": 5}'),
        (SUBJECT, b'{"after": 598, "limit": 10}'),
        (SUBJECT, b'{"after": 600}'),
        (SUBJECT, b'{"after": 0, "limit": 100000}'),
        ("novapos.demo.store-002.req.pay_events", b'{"after": 1, "limit": 10}'),
        (SUBJECT, b'{"after": -1}'),
        (SUBJECT, b'{"after": 0, "limit": 0}'),
        (SUBJECT, b'{"after": "0"}'),
        (SUBJECT, b'[1]'),
        (SUBJECT, b'not json'),
        ("novapos.demo.store-001.req.pay_other", b'{}'),
    ])
    assert [e["position"] for e in answers[0]["events"]] == [1, 2, 3, 4, 5]
    assert answers[0]["events"][0]["type"] == "payment.captured" and answers[0]["events"][0]["body"] == big
    assert [e["position"] for e in answers[1]["events"]] == [599, 600]
    assert answers[2] == {"events": []}
    capped = answers[3]["events"]  # capped by bytes (the store's largest message) before the 500 events
    assert 0 < len(capped) < catchup.MAX_LIMIT and [e["position"] for e in capped] == list(range(1, len(capped) + 1))
    assert len(json.dumps(answers[3], separators=(",", ":"))) <= MAX_MESSAGE_BYTES
    assert [e["position"] for e in answers[4]["events"]] == [2, 3]  # store-002's own, numbered apart
    assert answers[5:] == [
        "after must be from 0 to 9223372036854775807, got -1",
        "limit must be from 1 to 1000000, got 0",
        "after must be a whole number, got '0'",
        "pay_events request must be a JSON object",
        "pay_events request is not JSON",
        "subject is not a pay_events request subject: 'novapos.demo.store-001.req.pay_other'",
    ]


async def test_the_relay_survives_nats_going_away_and_publishes_what_waited(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(nats_server.stop)
        await emit_events(database_url, [("store-001", "payment.captured", {"intent": intent()}) for _ in range(5)])
        await trio.sleep(1.0)
        assert not await _published(database_url, 1)
        await trio.to_thread.run_sync(nats_server.start)
        await wait_until(lambda: _published(database_url, 5), timeout=30)

        async def listen() -> Any:  # the relay goes on after the outage: the next event is published at once
            client = await _as_hub(nats_server)
            try:
                subscription = await client.subscribe("novapos.*.*.pay.>")
                await client.flush()
                [event_id] = await emit_async(database_url, [("store-001", "payment.failed", {"intent": intent()})], True)
                return event_id, await subscription.next_msg(timeout=10)
            finally:
                await client.close()
        event_id, message = await trio.to_thread.run_sync(lambda: asyncio.run(listen()))
        nursery.cancel_scope.cancel()
    assert message.subject == "novapos.demo.store-001.pay.payment_failed"
    assert message.headers["Nats-Msg-Id"] == event_id
    received = json.loads(message.data)
    assert (received["id"], received["position"], received["type"]) == (event_id, 6, "payment.failed")


def test_two_hub_processes_relay_each_event_once(tmp_path: Path, nats_server: EmbeddedNats, database_url: str) -> None:
    """The relay runs in the hub holding its lease (hub.leases); that hub stops halfway (SIGTERM) and the other takes
    the relay over: each event published once, none missed, both hubs having relayed some."""
    hubs: list[HubProcess] = []
    try:
        _relay_with(hubs, tmp_path, nats_server, database_url)
    finally:
        for hub in hubs:
            hub.kill()


def _relay_with(hubs: list[HubProcess], tmp_path: Path, nats_server: EmbeddedNats, database_url: str) -> None:
    for number in (1, 2):
        folder = tmp_path / f"hub-{number}"
        folder.mkdir()
        hubs.append(HubProcess(folder, nats_server.url, database_url, nats_server.hub_credentials,
                               "[leases]\nttl_s = 3\n", tls=nats_server.tls_settings()))
    for hub in hubs:
        until(lambda hub=hub: (hub.health() or (0, {}))[0] == 200, timeout=60, what="both hubs ready")  # type: ignore[misc]
    stores = ("store-001", "store-002", "store-003")
    count = 900
    until(lambda: any(_relays(hub) for hub in hubs), timeout=10, what="one hub holding the relay's lease")
    holder, other = sorted(hubs, key=_relays, reverse=True)
    stopped: list[int] = []

    async def scenario() -> tuple[list[str], list[Any]]:
        client = await _as_hub(nats_server)
        received: list[Any] = []

        async def keep(message: Any) -> None:
            received.append(message)
        await client.subscribe("novapos.*.*.pay.>", cb=keep)
        await client.flush()
        ids: list[str] = []
        for start in range(0, count, 30):  # in many transactions, the relay moving halfway
            ids += await emit_async(database_url, [(stores[n % 3], "payment.captured", {"intent": intent()})
                                                   for n in range(start, start + 30)], each_own=False)
            await asyncio.sleep(0.02)
            if start == count // 2:
                await asyncio.to_thread(lambda: stopped.append(holder.stop()))
        deadline = asyncio.get_running_loop().time() + 30
        while len(received) < count and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a second copy would have come by now
        await client.close()
        return ids, received
    ids, received = asyncio.run(scenario())
    assert sorted(message.headers["Nats-Msg-Id"] for message in received) == sorted(ids)  # each once, none missed
    assert all(json.loads(message.data)["id"] == message.headers["Nats-Msg-Id"] for message in received)
    by_store: dict[str, list[int]] = {}
    for message in received:
        by_store.setdefault(message.subject.split(".")[2], []).append(json.loads(message.data)["position"])
    assert {store: sorted(positions) for store, positions in by_store.items()} == \
        {store: list(range(1, count // 3 + 1)) for store in stores}
    assert 0 < _published_by(other) < count, "the relay did not move halfway: the test proved nothing"
    assert stopped == [0] and other.stop() == 0
    for hub in hubs:
        assert "Traceback" not in hub.log, hub.log
    assert "lease of job payment_relay gained" in other.log


def _relays(hub: HubProcess) -> bool:
    """Whether `hub` holds the relay's lease, by its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{hub.port}/metrics", timeout=5) as response:
        return 'novapos_hub_lease_held{lease="payment_relay"} 1.0' in response.read().decode()


def _published_by(hub: HubProcess) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{hub.port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    [line] = [line for line in metrics.splitlines() if line.startswith("novapos_hub_payment_events_published_total")]
    return int(float(line.split()[-1]))


async def test_a_bad_event_in_a_catch_up_is_refused_at_its_place_and_those_after_it_still_apply(
        store_config: StoreConfig, hub_config: HubConfig, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    state = store_config.state_dir
    with tills_told(monkeypatch) as told:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            bodies = [intent() for _ in range(3)]
            ids = await emit_events(database_url, [("store-001", "payment.captured", {"intent": body})
                                                   for body in bodies])
            await query(database_url, "UPDATE payment_outbox SET body = '[1]'::jsonb WHERE id = $1::uuid RETURNING 1",
                        ids[1])  # the hub's bug: an event no store can read
            await wait_until(lambda: _published(database_url, 3))
            await nursery.start(run_edge, store_config)  # it catches up: one page with the bad event in the middle
            applied = await wait_until(lambda: _inbox(state, 3))
            nursery.cancel_scope.cancel()
    assert [(position, event_id) for position, event_id, _ in applied] == [(1, ids[0]), (2, "refused:2"), (3, ids[2])]
    assert told.of() == [("till.till-1", "payment.captured", bodies[0]["id"]),
                         ("till.till-1", "payment.captured", bodies[2]["id"])]
    db = local_db.connect(state / local_db.FILE_NAME)
    try:
        [(reason,)] = db.execute("SELECT refused FROM payment_inbox WHERE refused IS NOT NULL").fetchall()
    finally:
        db.close()
    assert "body must be a JSON object" in reason
