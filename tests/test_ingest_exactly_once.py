"""Hub ingest is exactly-once in effect: duplicates and late replays never apply twice, and bad events
land in dead_letters with a reason while the hub keeps going."""

from __future__ import annotations

import asyncio
import uuid

import msgpack
import nats
import trio

from hub.app import run_hub
from hub.db import create_pool, migrate
from hub.ingest import Delivery, ingest
from novapos.config import HubConfig
from novapos.infra.embedded_nats import EmbeddedNats
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.events import sale_event

SUBJECT = event_subject("demo", "store-001", "sale.completed")


async def publish(url: str, items: list[tuple[str, bytes, dict[str, str] | None]]) -> None:
    """Publish with a plain nats-py client of the test's own (on a worker thread's asyncio loop)."""
    async def run() -> None:
        client = await nats.connect(url)
        js = client.jetstream()
        for subject, payload, headers in items:
            await js.publish(subject, payload, headers=headers)
        await client.close()
    await trio.to_thread.run_sync(asyncio.run, run())


async def test_the_same_event_delivered_three_times_is_applied_once(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    event = sale_event()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        # No Nats-Msg-Id: JetStream stores three copies, so only the hub's inbox stands between them and PostgreSQL.
        await publish(nats_server.url, [(SUBJECT, event.encode(), None)] * 3)
        marker = sale_event(seq=2)
        await publish(nats_server.url, [(SUBJECT, marker.encode(), None)])
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
        client = await nats.connect(nats_server.url)
        info = await client.jetstream().stream_info("NOVAPOS_EVENTS")
        await client.close()
        return info.state.messages
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await publish(nats_server.url, [(SUBJECT, event.encode(), headers)] * 3)
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
    assert counts == [5, 0, 0, 5]
    assert total == 100 + 200 + 300 + 400 + 500


async def test_bad_events_are_dead_lettered_with_a_reason_and_good_ones_still_land(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    other_store = sale_event(store="store-999")          # claims another store than its subject
    float_money = sale_event()
    float_money.body["total"] = {"minor": 4.99, "currency": "EUR"}
    good = sale_event(seq=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await publish(nats_server.url, [
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
        assert "total.minor must be an integer" in reasons[3]
        assert (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"] == 1
        nursery.cancel_scope.cancel()
