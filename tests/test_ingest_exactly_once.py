"""Hub ingest is exactly-once in effect: duplicates and late replays never apply twice, and bad events
land in dead_letters with a reason while the hub keeps going: a poison event never holds back its batch,
an event id cannot be borrowed by another store, and a lost consumer or stream is rebuilt."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgpack
import nats
import pytest
import trio
from prometheus_client import REGISTRY

from hub.app import run_hub
from hub.db import create_pool, migrate
from hub.ingest.inbox import BatchResult, Delivery, ingest
from novapos.adapters.nats import INGEST_CONSUMER
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.subjects import EVENTS_STREAM, event_subject
from tests.conftest import ensure_stream, query, wait_until
from tests.events import SUBJECT, publish, sale_event, with_quantity


async def on_nats(nats_server: EmbeddedNats, action: Callable[[Any], Awaitable[object]]) -> None:
    """Run `action(jetstream)` with a client of the test's own, as an operator (or an accident) would."""
    async def run() -> None:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        await action(client.jetstream())
        await client.close()
    await trio.to_thread.run_sync(asyncio.run, run())


async def publish_once_stored(nats_server: EmbeddedNats, subject: str, payload: bytes, timeout: float = 15.0) -> None:
    """Publish, retrying while no stream takes the subject (until the hub has recreated it)."""
    async def run() -> None:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await client.jetstream().publish(subject, payload, timeout=1)
                break
            except nats.js.errors.NoStreamResponseError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.1)
        await client.close()
    await trio.to_thread.run_sync(asyncio.run, run())




def dead_letters(tenant: str) -> float:
    return REGISTRY.get_sample_value("novapos_hub_dead_letters_total", {"tenant": tenant}) or 0.0


def with_pool(database_url: str, body: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    """(worker thread) A migrated pool on a fresh asyncio loop for `body`, closed afterwards."""
    async def run() -> Any:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            return await body(pool)
        finally:
            await pool.close()
    return asyncio.run(run())


async def test_the_same_event_delivered_three_times_is_applied_once(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    event = sale_event()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        # No Nats-Msg-Id: JetStream stores three copies, so only the hub's inbox stands between them and PostgreSQL.
        await publish(nats_server, [(SUBJECT, event.encode(), None)] * 3)
        marker = sale_event(seq=2)
        await publish(nats_server, [(SUBJECT, marker.encode(), None)])
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", marker.id))
        rows = await query(database_url, "SELECT count(*) AS n FROM sales WHERE event_id = $1", event.id)
        assert rows[0]["n"] == 1
        assert (await query(database_url, "SELECT count(*) AS n FROM inbox"))[0]["n"] == 2
        assert (await query(database_url, "SELECT count(*) AS n FROM sale_lines"))[0]["n"] == 2
        nursery.cancel_scope.cancel()


async def test_jetstream_dedups_on_the_event_id_header(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    event = sale_event()
    headers = {"Nats-Msg-Id": str(event.id)}

    async def stored() -> int:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        info = await client.jetstream().stream_info("NOVAPOS_EVENTS")
        await client.close()
        return info.state.messages
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await publish(nats_server, [(SUBJECT, event.encode(), headers)] * 3)
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales"))
        assert await trio.to_thread.run_sync(asyncio.run, stored()) == 1
        nursery.cancel_scope.cancel()


async def test_a_replay_long_after_the_dedup_window_changes_nothing(database_url: str) -> None:
    """The inbox is the final guard: the same batch ingested again (as a replay hours later would be) is a no-op."""
    events = [sale_event(seq=n, total=100 * n) for n in range(1, 6)]
    deliveries = [Delivery(SUBJECT, event.encode()) for event in events]

    async def run() -> tuple[list[int], int]:
        pool = await create_pool(database_url)
        await migrate(pool)
        first = await ingest(pool, deliveries, frozenset({"demo"}))
        again = await ingest(pool, deliveries + deliveries[:2], frozenset({"demo"}))
        total = await pool.fetchval("SELECT sum(total_minor) FROM sales")
        await pool.close()
        return [first.applied, first.duplicates, again.applied, again.duplicates], total
    counts, total = await trio.to_thread.run_sync(asyncio.run, run())
    assert counts == [5, 0, 0, 7]  # the two repeats within the second batch are duplicates too
    assert total == 100 + 200 + 300 + 400 + 500


async def test_bad_events_are_dead_lettered_with_a_reason_and_good_ones_still_land(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    other_store = sale_event(store="store-999")          # claims another store than its subject
    float_money = sale_event()
    float_money.body["total"] = {"minor": 4.99, "currency": "EUR"}
    good = sale_event(seq=3)
    counted = dead_letters("demo")
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await publish(nats_server, [
            (SUBJECT, b"\xc1 definitely not msgpack", None),
            (SUBJECT, other_store.encode(), None),
            (SUBJECT, msgpack.packb({"id": uuid.uuid4().bytes}), None),
            (SUBJECT, float_money.encode(), None),
            (SUBJECT, good.encode(), None),
        ])
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", good.id))
        reasons = [row["reason"] for row in await query(database_url, "SELECT reason FROM dead_letters ORDER BY id")]
        assert len(reasons) == 4, reasons
        assert reasons[0].startswith("not msgpack")
        assert "store-999" in reasons[1] and "store-001" in reasons[1]
        assert "has no 'type'" in reasons[2]
        assert "total.minor must be a whole number" in reasons[3]
        assert (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"] == 1
        assert dead_letters("demo") - counted == 4  # novapos_hub_dead_letters_total{tenant}
        nursery.cancel_scope.cancel()


async def test_poison_values_are_dead_lettered_and_the_rest_of_their_batch_lands(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    """Values no column can hold once made the whole batch fail and come back forever; now each is refused
    up front with its reason, and the good events published in the same batch land exactly once."""
    far_future = dataclasses.replace(sale_event(seq=2), ts=10**17)       # datetime: "year out of range"
    huge_quantity = sale_event(seq=3)
    with_quantity(huge_quantity.body, 2**31)                             # int column: OverflowError in COPY
    huge_seq = dataclasses.replace(sale_event(), seq=2**63)              # bigint column
    nul = sale_event(seq=4)
    nul.body["lines"][0]["name"] = "Ground coffee\x00"                   # PostgreSQL text refuses NUL
    good = [sale_event(seq=1), sale_event(seq=5)]
    batch = [good[0], far_future, huge_quantity, huge_seq, nul, good[1]]
    await ensure_stream(nats_server)
    await publish(nats_server, [(SUBJECT, event.encode(), None) for event in batch])
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", good[1].id))
        later = sale_event(seq=6)
        await publish(nats_server, [(SUBJECT, later.encode(), None)])
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", later.id))
        rows = await query(database_url, "SELECT event_id, reason FROM dead_letters ORDER BY id")
        assert [row["reason"].split(",")[0] for row in rows] == [
            "envelope 'ts' must be milliseconds within the years 1 to 9999",
            "lines[0].quantity must be from 1 to 9999",
            "envelope 'seq' must be between 1 and 9223372036854775807",
            "lines[0].name must not contain NUL",
        ], rows
        sales = await query(database_url, "SELECT event_id FROM sales ORDER BY seq")
        assert [row["event_id"] for row in sales] == [good[0].id, good[1].id, later.id]
        assert (await query(database_url, "SELECT count(*) AS n FROM inbox"))[0]["n"] == 3
        nursery.cancel_scope.cancel()


REFUSING_RULES = {
    # A rule of the database that the wire schema does not know: a trigger that blames the data (an integrity
    # violation of its own, SQLSTATE 23514) and a CHECK. A trigger raising anything else is the hub's failure.
    "trigger": (("CREATE FUNCTION refuse_till() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                 "IF NEW.till = 'till-9' THEN RAISE EXCEPTION 'till % was decommissioned', NEW.till USING ERRCODE = 'check_violation'; END IF; "
                 "RETURN NEW; END $$; "
                 "CREATE TRIGGER refuse_till BEFORE INSERT ON sales FOR EACH ROW EXECUTE FUNCTION refuse_till()"),
                "till till-9 was decommissioned"),
    "check": ("ALTER TABLE sale_lines ADD CONSTRAINT at_most_50 CHECK (quantity <= 50)", "at_most_50"),
}


ORPHANS = ("SELECT (SELECT count(*) FROM sales s WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = s.event_id))"
           " + (SELECT count(*) FROM sale_lines l WHERE NOT EXISTS (SELECT 1 FROM sales s WHERE s.event_id = l.event_id))"
           " + (SELECT count(*) FROM sale_tenders t WHERE NOT EXISTS (SELECT 1 FROM sales s WHERE s.event_id = t.event_id))")
"""Rows of a sale without their sale (or a sale without its inbox row): what a half-applied event would leave."""


@pytest.mark.parametrize("rule", sorted(REFUSING_RULES))
async def test_an_event_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_lands(
        rule: str, database_url: str) -> None:
    sql, says = REFUSING_RULES[rule]
    before, refused, after = sale_event(seq=1), sale_event(seq=2), sale_event(seq=3)
    refused.body["till"] = "till-9"
    with_quantity(refused.body, 51)

    async def run(pool: asyncpg.Pool) -> tuple[list[int], list[asyncpg.Record], list[asyncpg.Record], int, int]:
        await pool.execute(sql)
        result = await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (before, refused, after)],
                              frozenset({"demo"}))
        later = await ingest(pool, [Delivery(SUBJECT, sale_event(seq=4).encode())], frozenset({"demo"}))
        return ([result.applied, result.duplicates, result.rejected, later.applied],
                await pool.fetch("SELECT event_id, reason, payload FROM dead_letters"),
                await pool.fetch("SELECT event_id FROM sales ORDER BY seq"),
                await pool.fetchval("SELECT count(*) FROM inbox"), await pool.fetchval(ORPHANS))
    counts, dead, sales, inbox, orphans = await trio.to_thread.run_sync(with_pool, database_url, run)
    assert counts == [2, 0, 1, 1]
    assert len(dead) == 1 and dead[0]["event_id"] == refused.id and dead[0]["payload"] == refused.encode()
    assert dead[0]["reason"].startswith("database refused it: ") and says in dead[0]["reason"]
    assert [row["event_id"] for row in sales][:2] == [before.id, after.id] and len(sales) == 3
    assert inbox == 3  # the refused event's inbox row went with its transaction
    assert orphans == 0  # nor is any line or tender of it left behind (the sales tables have no foreign keys)


async def test_losing_the_database_mid_batch_dead_letters_nothing(database_url: str) -> None:
    """A connection lost mid-batch is the hub's trouble, not the events': the batch is retried, never dead-lettered."""
    events = [sale_event(seq=n) for n in (1, 2, 3)]
    events[1].body["till"] = "till-lost"
    deliveries = [Delivery(SUBJECT, e.encode()) for e in events]

    async def run(pool: asyncpg.Pool) -> tuple[str, int, int, int]:
        await pool.execute(
            "CREATE FUNCTION lose_connection() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.till = 'till-lost' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF; "
            "RETURN NEW; END $$; "
            "CREATE TRIGGER lose_connection BEFORE INSERT ON sales FOR EACH ROW EXECUTE FUNCTION lose_connection()")
        try:
            await ingest(pool, deliveries, frozenset({"demo"}))
            raised = "nothing"
        except Exception as exc:
            raised = type(exc).__name__
        dead = await pool.fetchval("SELECT count(*) FROM dead_letters")
        await pool.execute("DROP TRIGGER lose_connection ON sales")  # PostgreSQL is "back"
        retried = await ingest(pool, deliveries, frozenset({"demo"}))
        return raised, dead, retried.applied, await pool.fetchval("SELECT count(*) FROM dead_letters")
    raised, dead_before, applied, dead_after = await trio.to_thread.run_sync(with_pool, database_url, run)
    assert raised != "nothing"
    assert (dead_before, applied, dead_after) == (0, 3, 0), raised


def _impostor_of(legitimate: Envelope) -> Envelope:
    """store-999's own, valid sale, published on its own subject, but carrying store-001's event id."""
    return dataclasses.replace(sale_event(store="store-999", total=1), id=legitimate.id)


@pytest.mark.parametrize("first", ["legitimate", "impostor"])
async def test_another_store_cannot_suppress_a_sale_by_reusing_its_event_id(
        first: str, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    legitimate = sale_event()
    impostor = _impostor_of(legitimate)
    winner, loser = (legitimate, impostor) if first == "legitimate" else (impostor, legitimate)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        # No Nats-Msg-Id: within JetStream's 2-minute window it would drop the second publish itself.
        await publish(nats_server, [(event_subject("demo", winner.store, "sale.completed"), winner.encode(), None)])
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", winner.id))
        marker = sale_event(seq=2)
        await publish(nats_server, [
            (event_subject("demo", loser.store, "sale.completed"), loser.encode(), None),
            (SUBJECT, marker.encode(), None)])
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", marker.id))
        sales = await query(database_url, "SELECT store, total_minor FROM sales WHERE event_id = $1", legitimate.id)
        assert [(row["store"], row["total_minor"]) for row in sales] == [(winner.store, winner.body["total"]["minor"])]
        dead = await query(database_url, "SELECT event_id, subject, reason, payload FROM dead_letters")
        assert len(dead) == 1, dead
        assert dead[0]["event_id"] == legitimate.id and dead[0]["payload"] == loser.encode()
        assert dead[0]["subject"] == event_subject("demo", loser.store, "sale.completed")
        assert f"already used by demo/{winner.store}" in dead[0]["reason"]
        assert f"from demo/{loser.store}" in dead[0]["reason"]
        assert (await query(database_url, "SELECT count(*) AS n FROM inbox"))[0]["n"] == 2
        nursery.cancel_scope.cancel()


async def test_an_id_reused_by_another_store_within_one_batch_is_dead_lettered(database_url: str) -> None:
    legitimate = sale_event()
    deliveries = [Delivery(SUBJECT, legitimate.encode()), Delivery(SUBJECT, legitimate.encode()),
                  Delivery(event_subject("demo", "store-999", "sale.completed"), _impostor_of(legitimate).encode())]

    async def run(pool: asyncpg.Pool) -> tuple[list[int], list[str], list[str]]:
        result = await ingest(pool, deliveries, frozenset({"demo"}))
        return ([result.applied, result.duplicates, result.rejected],
                [row["reason"] for row in await pool.fetch("SELECT reason FROM dead_letters")],
                [row["store"] for row in await pool.fetch("SELECT store FROM sales")])
    counts, reasons, stores = await trio.to_thread.run_sync(with_pool, database_url, run)
    assert counts == [1, 1, 1]
    assert stores == ["store-001"]
    assert len(reasons) == 1 and "already used by demo/store-001" in reasons[0] and "store-999" in reasons[0]


async def test_dead_letters_are_counted_by_the_tenant_their_subject_names(database_url: str) -> None:
    deliveries = [Delivery(SUBJECT, b"not msgpack"), Delivery(SUBJECT, b"nor this"),
                  Delivery(SUBJECT + ".extra", sale_event().encode())]  # within the stream's filter, no event subject

    async def run(pool: asyncpg.Pool) -> BatchResult:
        return await ingest(pool, deliveries, frozenset({"demo"}))
    result = await trio.to_thread.run_sync(with_pool, database_url, run)
    assert result.dead_lettered == Counter({"demo": 2, "": 1}) and result.rejected == 3


@pytest.mark.parametrize("lost", ["consumer", "stream"])
async def test_ingest_recovers_when_its_consumer_or_stream_is_deleted(
        lost: str, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    before, after = sale_event(seq=1), sale_event(seq=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await publish(nats_server, [(SUBJECT, before.encode(), None)])
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", before.id))
        if lost == "consumer":
            await on_nats(nats_server, lambda js: js.delete_consumer(EVENTS_STREAM, INGEST_CONSUMER))
        else:
            await on_nats(nats_server, lambda js: js.delete_stream(EVENTS_STREAM))
        await publish_once_stored(nats_server, SUBJECT, after.encode())
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", after.id))
        await trio.sleep(0.5)  # a rebuilt consumer replays the stream from its start: `before` comes again
        assert (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"] == 2
        assert (await query(database_url, "SELECT count(*) AS n FROM dead_letters"))[0]["n"] == 0
        nursery.cancel_scope.cancel()
