"""Health reports at the hub's door, over a real authorized NATS into PostgreSQL: a store reports as itself only
(NATS refuses another store's subject), a hostile report is answered 400 with a sentence and stores nothing, a
silent store is marked offline once however many hub processes watch, and history is purged past a day."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import msgpack
import nats.errors
import pytest
import trio
from prometheus_client import REGISTRY

from hub.app import run_hub
from hub.db import create_pool
from hub.fleet.reports import REPORTS, Received
from hub.fleet.watch import enrol, mark_offline, purge, refresh_gauges
from novapos.adapters.nats import NatsLink, store_inbox_prefix
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.validators import Invalid
from novapos.wire.health import (
    MAX_DEVICES,
    Device,
    HealthReply,
    decode_reply,
    decode_report,
    encode_reply,
    encode_report,
    health_subject,
)
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER
from tests.conftest import query
from tests.fleet import a_report, fleet_world, report
from tests.stock_world import on_database

GOOD = encode_report(a_report())


def _hostile() -> list[tuple[str, bytes, str]]:
    good = msgpack.unpackb(GOOD)

    def with_(**changes: object) -> bytes:
        return bytes(msgpack.packb({**good, **changes}))
    return [
        ("garbage", b"\xc1\xff", "is not msgpack"),
        ("a list", bytes(msgpack.packb([1, 2])), "must be a map"),
        ("huge", b"\x00" * 40_000, "at most"),
        ("a float depth", with_(outbox_depth=1.5), "outbox_depth"),
        ("a negative depth", with_(outbox_depth=-1), "outbox_depth"),
        ("a time past 2**53", with_(sent_at_ms=2**60), "sent_at_ms"),
        ("a NUL in a version", with_(version="1.0\x00"), "version"),
        ("a bidi override in a detail", with_(devices=[{"name": "p", "kind": "printer", "state": "ready",
                                                        "detail": "\u202eevil"}]), "detail"),
        ("a device name with a dot", with_(devices=[{"name": "a.b", "kind": "printer", "state": "ready"}]), "name"),
        ("too many devices", with_(devices=[{"name": f"d{n}", "kind": "printer", "state": "ready"}
                                            for n in range(MAX_DEVICES + 1)]), "devices"),
        ("a device twice", with_(devices=[{"name": "p", "kind": "printer", "state": "ready"}] * 2), "twice"),
        ("a till with a space", with_(open_tills=["till 1"]), "open_tills"),
        ("an unknown reason", with_(reason="because"), "reason"),
        ("a boolean seq", with_(last_sale={"seq": True, "at_ms": 1}), "last_sale.seq"),
        ("no interval", with_(interval_s=None), "interval_s"),
        ("a leaf flag that is a number", with_(leaf=1), "leaf"),
    ]


def test_the_wire_keeps_a_report_and_refuses_each_hostile_one() -> None:
    full = a_report(outbox_depth=3, oldest_unsent_ms=1500, open_tills=("till-2", "till-1"),
                    devices=(Device("receipt-printer", "printer", "paper_out", "out of paper"),))
    back = decode_report(encode_report(full))
    assert back == replace(full, open_tills=("till-1", "till-2")) and back.devices[0].down
    for label, data, says in _hostile():
        with pytest.raises(Invalid, match=says):
            decode_report(data)
        assert label


def test_the_wire_keeps_a_leaf_reports_flag_and_the_hubs_sourced_figure_and_refuses_hostile_figures() -> None:
    assert decode_report(encode_report(a_report(leaf=True))).leaf
    assert not decode_report(GOOD).leaf and b"leaf" not in GOOD  # a direct store's report is as before
    for sourced in (0, 7, 2**53):
        assert decode_reply(encode_reply(HealthReply(1, 0, leaf_sourced_seq=sourced))).leaf_sourced_seq == sourced
    assert decode_reply(encode_reply(HealthReply(1, 0))).leaf_sourced_seq is None
    for hostile in (-1, True, 1.5, "7", 2**64 - 1):
        with pytest.raises(Invalid, match="leaf_sourced_seq"):
            decode_reply(bytes(msgpack.packb({"hub_time_ms": 1, "skew_ms": 0, "leaf_sourced_seq": hostile})))


async def _ask(nats_server: EmbeddedNats, store: str, subject: str, payloads: list[bytes]) -> list[object]:
    """Send reports with `store`'s credentials (demo tenant) on `subject`; each answer or the exception."""
    async def run() -> list[object]:
        link = NatsLink(nats_server.url, f"test-{store}", credentials=nats_server.store_credentials("demo", store),
                        inbox_prefix=store_inbox_prefix("demo", store), tls=nats_server.client_tls())
        await link.connect()
        answers: list[object] = []
        try:
            for payload in payloads:
                try:
                    reply = await link.client.request(subject, payload, timeout=2)
                    answers.append(reply)
                except (nats.errors.Error, TimeoutError) as exc:
                    answers.append(exc)
        finally:
            await link.close()
        return answers
    return await trio.to_thread.run_sync(asyncio.run, run())


async def test_a_store_reports_as_itself_only_and_hostile_reports_store_nothing(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    await fleet_world(database_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        own: object = None
        with trio.fail_after(10):
            while not hasattr(own, "data"):  # the hub's responders subscribe just after it says it is ready
                own, = await _ask(nats_server, "store-001", health_subject("demo", "store-001"),
                                  [encode_report(a_report())])
        reply = decode_reply(own.data)  # type: ignore[attr-defined]
        assert isinstance(reply, HealthReply) and reply.error is None and abs(reply.skew_ms) < 2000
        assert reply.leaf_sourced_seq is None  # not a leaf store: the hub looks nothing up
        with trio.fail_after(20):  # the fleet watch (a leased job, started once the lease is won) enrols every store
            while (await query(database_url, "SELECT count(*) AS n FROM stores s WHERE s.status = 'active' AND NOT"
                                             " EXISTS (SELECT FROM fleet_status f WHERE f.tenant = s.tenant"
                                             " AND f.store = s.store)"))[0]["n"]:
                await trio.sleep(0.1)
        before = await query(database_url, "SELECT store, last_seen, online FROM fleet_status ORDER BY store")
        history = await query(database_url, "SELECT count(*) AS n FROM fleet_history")

        posing, = await _ask(nats_server, "store-001", health_subject("demo", "store-002"), [GOOD])
        assert isinstance(posing, (nats.errors.Error, TimeoutError)), posing  # NATS refused the subject

        answers = await _ask(nats_server, "store-001", health_subject("demo", "store-001"),
                             [data for _, data, _ in _hostile()])
        for (label, _, says), answer in zip(_hostile(), answers, strict=True):
            headers = getattr(answer, "headers", None) or {}
            assert headers.get(ERROR_CODE_HEADER) == "400" and says in headers.get(ERROR_HEADER, ""), (label, answer)
        nursery.cancel_scope.cancel()
    after = await query(database_url, "SELECT store, last_seen, online FROM fleet_status ORDER BY store")
    assert [tuple(row) for row in after] == [tuple(row) for row in before]
    assert not any(row["store"] == "store-002" and row["last_seen"] for row in after)
    assert (await query(database_url, "SELECT count(*) AS n FROM fleet_history"))[0]["n"] == history[0]["n"]


async def test_a_silent_store_goes_offline_once_whichever_hub_marks_it(database_url: str) -> None:
    await fleet_world(database_url)
    await report(database_url, "demo", "store-001", a_report())
    await report(database_url, "demo", "store-002", a_report())
    await query(database_url, "UPDATE fleet_status SET last_seen = now() - interval '30 seconds'"
                              " WHERE store = 'store-001'")

    async def two_hubs(pool: asyncpg.Pool) -> list[int]:
        return list(await asyncio.gather(*(mark_offline(pool, 20) for _ in range(4))))
    marked = await on_database(database_url, two_hubs)
    assert sorted(marked) == [0, 0, 0, 1]
    rows = await query(database_url, "SELECT store, online, rank, offline_since = last_seen AS since_last"
                                     " FROM fleet_status ORDER BY store")
    assert [(r["store"], r["online"], r["rank"]) for r in rows] == [("store-001", False, 0), ("store-002", True, 1)]
    assert rows[0]["since_last"]
    offline = await query(database_url, "SELECT store FROM fleet_history WHERE kind = 'offline'")
    assert [row["store"] for row in offline] == ["store-001"]

    await report(database_url, "demo", "store-001", a_report(version="0.2.0"))  # back, upgraded
    kinds = await query(database_url, "SELECT kind, details->>'to' AS version FROM fleet_history"
                                      " WHERE store = 'store-001' ORDER BY id")
    assert [row["kind"] for row in kinds][-2:] == ["online", "version"] and kinds[-1]["version"] == "0.2.0"


async def test_reports_from_many_stores_at_once_are_kept_in_a_few_transactions_by_two_hubs_without_deadlock(
        database_url: str) -> None:
    """Group commit: 120 stores reporting at once through two hub processes' pools (each its own writer, locking
    rows in one order) take a handful of write transactions, not 240; every report is kept, the last of each store
    wins, an unknown store in a batch is told so and the rest of its batch is kept."""
    await fleet_world(database_url)
    stores = [f"s-{n:03d}" for n in range(120)]
    await query(database_url, "INSERT INTO stores (tenant, store, region, name) SELECT 'demo', s, 'north', s"
                              " FROM unnest($1::text[]) s", stores)

    async def two_hubs(pool: asyncpg.Pool) -> tuple[int, list[str | None]]:
        other = await create_pool(database_url)
        try:
            before = await pool.fetchval("SELECT pg_current_xact_id()::text::bigint")
            answers: list[str | None] = []
            for depth in (1, 2):  # two rounds: the first makes the rows, the second updates them
                answers = list(await asyncio.gather(
                    *(REPORTS.submit(hub, Received("demo", store, a_report(outbox_depth=depth), 0))
                      for store in stores for hub in (pool, other)),
                    REPORTS.submit(pool, Received("demo", "nobody", a_report(), 0))))
            after = await pool.fetchval("SELECT pg_current_xact_id()::text::bigint")
            return after - before - 1, answers
        finally:
            await other.close()
    transactions, answers = await on_database(database_url, two_hubs)
    assert answers[:-1] == [None] * 240
    assert answers[-1] == "the hub does not know store 'nobody' of tenant 'demo': it must be provisioned"
    assert transactions <= 16, f"{transactions} write transactions for 482 reports: not grouped"
    rows = await query(database_url, "SELECT outbox_depth, online FROM fleet_status WHERE store LIKE 's-%'")
    assert len(rows) == 120 and {(row["outbox_depth"], row["online"]) for row in rows} == {(2, True)}
    online = await query(database_url, "SELECT count(*) AS n FROM fleet_history WHERE kind = 'online'")
    assert online[0]["n"] == 120  # each store came online once, whichever hub took its first report


async def test_history_is_kept_a_day_then_purged(database_url: str) -> None:
    await fleet_world(database_url)
    await report(database_url, "demo", "store-001", a_report())
    await query(database_url, "INSERT INTO fleet_history (tenant, store, at, kind) SELECT 'demo', 'store-001',"
                              " now() - interval '25 hours' - n * interval '1 second', 'sample'"
                              " FROM generate_series(1, 25000) n")
    before = (await query(database_url, "SELECT count(*) AS n FROM fleet_history"))[0]["n"]

    async def purged(pool: asyncpg.Pool) -> int:
        return await purge(pool)
    assert await on_database(database_url, purged) == 25000
    rows = await query(database_url, "SELECT count(*) AS n, min(at) > now() - interval '1 day' AS fresh"
                                     " FROM fleet_history")
    assert rows[0]["n"] == before - 25000 > 0 and rows[0]["fresh"]


async def test_a_revoked_or_unknown_store_is_told_its_report_was_not_kept(database_url: str) -> None:
    await fleet_world(database_url)
    assert await report(database_url, "demo", "store-001", a_report()) is None  # its first: the row is made
    await query(database_url, "UPDATE stores SET status = 'revoked' WHERE store = 'store-001'")
    assert await report(database_url, "demo", "store-001", a_report(version="9")) == (
        "store 'store-001' of tenant 'demo' is revoked: its reports are not kept")
    assert await report(database_url, "other", "store-001", a_report()) == (
        "the hub does not know store 'store-001' of tenant 'other': it must be provisioned")
    rows = await query(database_url, "SELECT tenant, version FROM fleet_status")
    assert [tuple(row) for row in rows] == [("demo", "0.1.0")]


async def test_the_fleet_gauges_cover_active_stores_that_have_reported(database_url: str) -> None:
    """NovaPosStoreOffline reads novapos_hub_fleet_online: a store added but never installed, or revoked, has no
    series (it would page forever); the fleet page still lists the one never seen, offline."""
    await fleet_world(database_url)
    await report(database_url, "demo", "store-001", a_report())
    await report(database_url, "demo", "store-003", a_report())

    async def revoke_then_export(pool: asyncpg.Pool) -> list[str]:
        await pool.execute("UPDATE stores SET status = 'revoked' WHERE tenant = 'demo' AND store = 'store-003'")
        await enrol(pool)
        await refresh_gauges(pool)
        return [row["store"] for row in await pool.fetch(
            "SELECT store FROM fleet_status WHERE tenant = 'demo' AND NOT online ORDER BY store")]
    offline_rows = await on_database(database_url, revoke_then_export)
    assert "store-002" in offline_rows  # enrolled for the console's fleet page, as before

    def online(store: str) -> float | None:
        return REGISTRY.get_sample_value("novapos_hub_fleet_online", {"tenant": "demo", "store": store})
    assert online("store-001") == 1
    assert online("store-002") is None, "a store that never reported must not page as offline"
    assert online("store-003") is None, "a revoked store must not page as offline"
    assert REGISTRY.get_sample_value("novapos_hub_fleet_outbox_depth", {"tenant": "demo", "store": "store-003"}) is None
