"""Stock at the running hub, on real NATS and PostgreSQL: ingested sales move stock exactly once, two hub
processes share the stream without a duplicate movement or a deadlock, a reservation expires and restocks,
a low-stock alert is emitted once per crossing (on NATS too), bad console input is refused changing
nothing, and a till asking for an item's stock gets its own and nearby locations."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace
from typing import Any

import httpx
import nats
import pytest
import trio

from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER
from novapos.wire.stock import (
    LOW_STOCK_STREAM,
    decode_answer,
    decode_low_stock,
    encode_request,
    stock_request_subject,
)
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.events import publish
from tests.stock_world import LEDGER_MISMATCH_SQL, build_world, sale

SKUS = ["COF-250", "COF-500", "COF-1K"]


def _subject(store: str) -> str:
    return event_subject("demo", store, "sale.completed")


async def _balances(database_url: str) -> dict[tuple[str, str], tuple[int, int]]:
    rows = await query(database_url, "SELECT l.location, b.sku, b.on_hand, b.reserved FROM stock_balances b"
                                     " JOIN locations l ON l.id = b.location_id")
    return {(r["location"], r["sku"]): (r["on_hand"], r["reserved"]) for r in rows}


async def _count(database_url: str, sql: str, *args: Any) -> int:
    value: int = (await query(database_url, sql, *args))[0][0]
    return value


@pytest.fixture
def two_tenant_hub(hub_config: HubConfig) -> HubConfig:
    return replace(hub_config, tenants=("demo", "other"))


async def test_sales_move_stock_once_even_replayed_and_two_hubs_never_duplicate_or_deadlock(
        two_tenant_hub: HubConfig, nats_server: EmbeddedNats, database_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Each sale sells the three SKUs in a shuffled order from two stores' floors: every batch of one hub locks
    rows another hub's batch wants, so a lock taken in line order would deadlock; replays move nothing."""
    caplog.set_level(logging.WARNING)
    rng = random.Random(7)
    events = []
    for store, floor in (("store-001", "s1-floor"), ("store-002", "s2-floor")):
        for seq in range(1, 201):
            lines = [(sku, rng.randint(1, 3)) for sku in rng.sample(SKUS, 3)]
            events.append((store, floor, sale(lines, store=store, seq=seq, version=1 + seq % 2)))
    expected: dict[tuple[str, str], int] = {}
    for _, floor, event in events:
        for line in event.body["lines"]:
            expected[(floor, line["sku"])] = expected.get((floor, line["sku"]), 0) - line["quantity"]
    rng.shuffle(events)
    # No Nats-Msg-Id and every event twice (the second copies at the end): only the inbox stands between the
    # replays and the stock.
    items = [(_subject(store), event.encode(), None) for store, _, event in events]
    items += items[: len(items) // 2]
    await build_world(database_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, two_tenant_hub)
        await nursery.start(run_hub, two_tenant_hub)
        await publish(nats_server, items)
        applied = "SELECT count(*) FROM inbox"
        await wait_until(lambda: _count_is(database_url, applied, len(events)), timeout=60)
        await trio.sleep(0.5)  # what is still in flight (the replays) lands, or would
        nursery.cancel_scope.cancel()
    lines = sum(len(event.body["lines"]) for _, _, event in events)
    assert await _count(database_url, "SELECT count(*) FROM stock_movements") == lines
    assert await _count(database_url, "SELECT count(DISTINCT (event_id, line_no)) FROM stock_movements") == lines
    assert await _balances(database_url) == {key: (on_hand, 0) for key, on_hand in expected.items()}
    assert await query(database_url, LEDGER_MISMATCH_SQL) == []
    assert await _count(database_url, "SELECT count(*) FROM dead_letters") == 0
    assert not [r for r in caplog.records if "deadlock" in r.getMessage().lower()]


async def _count_is(database_url: str, sql: str, wanted: int) -> bool:
    return await _count(database_url, sql) >= wanted


async def _post(http: httpx.AsyncClient, url: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await http.post(url, json=body)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_reservation_expires_and_the_sweeper_restocks_it(
        hub_config: HubConfig, database_url: str, http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await sign_in_admin(http, hub.url, database_url)
        await _post(http, f"{hub.url}/api/stock/receipts", {"location": "s1-floor", "sku": "COF-250", "quantity": 5})
        held = await _post(http, f"{hub.url}/api/stock/reservations",
                           {"location": "s1-floor", "sku": "COF-250", "quantity": 4, "expires_in_s": 1,
                            "note": "click and collect 12"})
        assert (held["on_hand"], held["reserved"], held["available"]) == (5, 4, 1)
        await _post(http, f"{hub.url}/api/stock/reservations", {"location": "s1-floor", "sku": "COF-250",
                                                                "quantity": 2, "expires_in_s": 60}, 409)

        async def restocked() -> bool:
            rows = (await http.get(f"{hub.url}/api/stock", params={"location": "s1-floor"})).json()["items"]
            return bool(rows) and rows[0]["available"] == 5
        await wait_until(restocked, timeout=10)
        release = await http.post(f"{hub.url}/api/stock/reservations/{held['reservation']}/release", json={})
        assert release.status_code == 409 and "already expired" in release.json()["error"]
        kinds = [m["kind"] for m in (await http.get(f"{hub.url}/api/stock/movements")).json()["items"]]
        assert kinds == ["expired", "reserved", "received"]
        nursery.cancel_scope.cancel()
    status = await query(database_url, "SELECT status FROM stock_reservations")
    assert [r["status"] for r in status] == ["expired"]


async def _low_alerts(nats_server: EmbeddedNats, wanted: int) -> list[Any]:
    async def run() -> list[Any]:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        try:
            subscription = await client.jetstream().subscribe("novapos.demo.hub.stock_low", stream=LOW_STOCK_STREAM,
                                                              ordered_consumer=True)
            alerts = []
            for _ in range(wanted):
                alerts.append(decode_low_stock((await subscription.next_msg(timeout=10)).data))
            try:
                extra = await subscription.next_msg(timeout=0.5)
                alerts.append(decode_low_stock(extra.data))
            except nats.errors.TimeoutError:
                pass
            return alerts
        finally:
            await client.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def test_one_low_stock_event_per_crossing_in_the_table_and_on_nats(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    events_sql = "SELECT count(*) FROM stock_low_events"
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await sign_in_admin(http, hub.url, database_url)
        await _post(http, f"{hub.url}/api/stock/receipts", {"location": "s1-floor", "sku": "COF-250", "quantity": 10})
        await _post(http, f"{hub.url}/api/stock/thresholds", {"location": "s1-floor", "sku": "COF-250", "threshold": 5})
        seq = 0

        async def sell(*quantities: int) -> None:
            nonlocal seq
            items = []
            for quantity in quantities:
                seq += 1
                items.append((_subject("store-001"), sale([("COF-250", quantity)], seq=seq).encode(), None))
            await publish(nats_server, items)
            await wait_until(lambda: _count_is(database_url, "SELECT count(*) FROM inbox", seq))
        await sell(1, 1, 1, 1)  # 10 -> 6: above the threshold
        assert await _count(database_url, events_sql) == 0
        await sell(2, 1, 1, 1, 1)  # 6 -> 4 (a crossing), then 3, 2, 1, 0: still the one crossing
        assert await _count(database_url, events_sql) == 1
        low = (await http.get(f"{hub.url}/api/stock/low")).json()["items"]
        assert [(r["location"], r["sku"], r["available"], r["low_threshold"]) for r in low] == [
            ("s1-floor", "COF-250", 0, 5)]
        await _post(http, f"{hub.url}/api/stock/receipts", {"location": "s1-floor", "sku": "COF-250", "quantity": 20})
        assert (await http.get(f"{hub.url}/api/stock/low")).json()["items"] == []  # back above: re-armed
        await sell(16)  # 20 -> 4: a second crossing
        assert await _count(database_url, events_sql) == 2
        alerts = await _low_alerts(nats_server, 2)
        assert [(a.location, a.sku, a.available, a.threshold) for a in alerts] == [
            ("s1-floor", "COF-250", 4, 5), ("s1-floor", "COF-250", 4, 5)]
        await wait_until(lambda: _count_is(
            database_url, "SELECT count(*) FROM stock_low_events WHERE published_at IS NOT NULL", 2))

        await _delete_stream(nats_server)  # an operator's mistake: the publisher makes it again
        await _post(http, f"{hub.url}/api/stock/receipts", {"location": "s1-floor", "sku": "COF-250", "quantity": 20})
        await sell(22)  # 24 -> 2: a third crossing
        await wait_until(lambda: _count_is(
            database_url, "SELECT count(*) FROM stock_low_events WHERE published_at IS NOT NULL", 3))
        [third] = await _low_alerts(nats_server, 1)
        assert (third.available, third.threshold) == (2, 5)
        nursery.cancel_scope.cancel()


async def _delete_stream(nats_server: EmbeddedNats) -> None:
    async def run() -> None:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        await client.jetstream().delete_stream(LOW_STOCK_STREAM)
        await client.close()
    await trio.to_thread.run_sync(asyncio.run, run())


async def _ask(nats_server: EmbeddedNats, subject: str, data: bytes) -> Any:
    async def run() -> Any:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        try:
            return await client.request(subject, data, timeout=5)
        finally:
            await client.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def test_a_till_asks_the_hub_for_stock_at_its_own_and_nearby_locations(
        two_tenant_hub: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, two_tenant_hub)
        await sign_in_admin(http, hub.url, database_url)
        for location, quantity in (("s1-back", 3), ("s2-floor", 7), ("wh-north", 40), ("s3-floor", 9)):
            await _post(http, f"{hub.url}/api/stock/receipts", {"tenant": "demo", "location": location,
                                                                "sku": "COF-250", "quantity": quantity})
        await _post(http, f"{hub.url}/api/stock/reservations", {"tenant": "demo", "location": "wh-north", "sku": "COF-250",
                                                                "quantity": 10, "expires_in_s": 600})

        async def asked(store: str, sku: str = "COF-250") -> Any:
            reply = await wait_until(lambda: _ask_or_none(nats_server, stock_request_subject("demo", store),
                                                          encode_request(sku)))
            return decode_answer(reply.data)
        mine = await asked("store-001")
        assert mine.known and mine.error is None
        assert [(s.location, s.own, s.on_hand, s.reserved, s.available) for s in mine.locations] == [
            ("s1-back", True, 3, 0, 3), ("s1-floor", True, 0, 0, 0),
            ("s2-floor", False, 7, 0, 7), ("wh-north", False, 40, 10, 30)]
        south = await asked("store-003")
        assert [(s.location, s.own, s.available) for s in south.locations] == [("s3-floor", True, 9)]
        unknown = await asked("store-001", "NOPE-1")
        assert not unknown.known and all(s.on_hand == 0 for s in unknown.locations)
        stranger = await asked("store-999")
        assert stranger.locations == () and "does not know store 'store-999'" in (stranger.error or "")
        bad = await _ask(nats_server, stock_request_subject("demo", "store-001"), b"\xc1 not msgpack")
        assert bad.headers[ERROR_CODE_HEADER] == "400" and "not msgpack" in bad.headers[ERROR_HEADER]
        nursery.cancel_scope.cancel()


async def _ask_or_none(nats_server: EmbeddedNats, subject: str, data: bytes) -> Any:
    try:
        return await _ask(nats_server, subject, data)
    except nats.errors.NoRespondersError:  # the hub has not subscribed yet
        return None


BAD_INPUT = [
    ("/api/stock/adjustments", {"location": "s1-floor", "sku": "COF-250", "quantity": -11, "reason": "count"},
     409, "below zero"),
    ("/api/stock/adjustments", {"location": "s1-floor", "sku": "COF-250", "quantity": 2}, 422, "reason"),
    ("/api/stock/adjustments", {"location": "s1-floor", "sku": "COF-250", "quantity": 0, "reason": "x"}, 422, "not be 0"),
    ("/api/stock/receipts", {"location": "s1-floor", "sku": "COF-250", "quantity": -1}, 422, "quantity must be from 1"),
    ("/api/stock/receipts", {"location": "s1-floor", "sku": "COF-250", "quantity": 10**30}, 422, "quantity"),
    ("/api/stock/receipts", {"location": "s1-floor", "sku": "COF-250", "quantity": 1.5}, 422, "whole number"),
    ("/api/stock/receipts", {"location": "nowhere", "sku": "COF-250", "quantity": 1}, 422, "no location 'nowhere'"),
    ("/api/stock/receipts", {"location": "o1-floor", "sku": "COF-250", "quantity": 1}, 422, "no location 'o1-floor'"),
    ("/api/stock/receipts", {"tenant": "other", "location": "s1-floor", "sku": "OTH-1", "quantity": 1}, 404,
     "no such tenant"),
    ("/api/stock/receipts", {"tenant": "nobody", "location": "s1-floor", "sku": "COF-250", "quantity": 1}, 404,
     "no such tenant"),
    ("/api/stock/receipts", {"location": "s1-floor", "sku": "OTH-1", "quantity": 1}, 422, "not in tenant 'demo'"),
    ("/api/stock/receipts", {"location": "s1-floor", "sku": "bad sku", "quantity": 1}, 422, "sku may use only"),
    ("/api/stock/returns", {"location": "s1-floor", "sku": "COF-250", "quantity": 1, "note": "a\u202eb"}, 422, "note"),
    ("/api/stock/transfers", {"from": "s1-floor", "to": "s1-floor", "sku": "COF-250", "quantity": 1}, 422,
     "both 's1-floor'"),
    ("/api/stock/transfers", {"from": "s1-floor", "to": "o1-floor", "sku": "COF-250", "quantity": 1}, 422,
     "no location 'o1-floor'"),
    ("/api/stock/transfers", {"from": "s1-floor", "to": "s2-floor", "sku": "COF-250", "quantity": 11}, 409,
     "cannot send 11"),
    ("/api/stock/reservations", {"location": "s1-floor", "sku": "COF-250", "quantity": 11, "expires_in_s": 60}, 409,
     "cannot be reserved"),
    ("/api/stock/reservations", {"location": "s1-floor", "sku": "COF-250", "quantity": 1, "expires_in_s": 0}, 422,
     "expires_in_s"),
    ("/api/stock/reservations/1/release", {}, 404, "no reservation 1"),
    ("/api/stock/thresholds", {"location": "s1-floor", "sku": "COF-250", "threshold": -1}, 422, "threshold"),
    ("/api/stock/thresholds", {"location": "s1-floor", "sku": "COF-250"}, 422, "threshold is required"),
]


async def test_bad_console_input_is_refused_with_a_reason_and_changes_nothing(
        two_tenant_hub: HubConfig, database_url: str, http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    snapshot = ("SELECT (SELECT count(*) FROM stock_movements), (SELECT count(*) FROM stock_reservations),"
                " (SELECT count(*) FROM stock_low_events), (SELECT coalesce(json_agg(b ORDER BY location_id, sku)"
                " , '[]')::text FROM (SELECT location_id, sku, on_hand, reserved, low_threshold FROM stock_balances) b)")
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, two_tenant_hub)
        await sign_in_admin(http, hub.url, database_url)
        await _post(http, f"{hub.url}/api/stock/receipts", {"tenant": "demo", "location": "s1-floor", "sku": "COF-250",
                                                            "quantity": 10})
        before = tuple(await query(database_url, snapshot))
        problems = []
        for path, body, status, says in BAD_INPUT:
            response = await http.post(f"{hub.url}{path}", json={"tenant": "demo", **body})
            if response.status_code != status or says not in response.json().get("error", ""):
                problems.append(f"{path} {body}: {response.status_code} {response.text}")
        for params in ({"tenant": "nobody"}, {"tenant": "other"}, {"tenant": "demo", "location": "a b"},
                       {"location": "o1-floor"}, {"tenant": "demo", "limit": "0"}, {"tenant": "demo", "limit": "x"}):
            response = await http.get(f"{hub.url}/api/stock", params=params)
            if response.status_code not in (400, 404, 422) or "error" not in response.json():
                problems.append(f"GET /api/stock {params}: {response.status_code} {response.text}")
        assert not problems, "\n".join(problems)
        assert tuple(await query(database_url, snapshot)) == before
        nursery.cancel_scope.cancel()
