"""A store's sequence numbers stay honest at the hub: numbers that never arrived (gaps) and numbers used by
more than one event id (reuses) are recorded as they happen, counted, narrowed when a late event fills
a gap, and listed on the console, all without scanning the inbox."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import trio

from hub.app import run_hub
from hub.db import create_pool, migrate
from hub.ingest import store_stats
from hub.ingest.inbox import Delivery, ingest
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.events import SUBJECT, publish, sale_event


def _deliveries(events: list[Envelope]) -> list[Delivery]:
    return [Delivery(SUBJECT.replace("store-001", e.store), e.encode()) for e in events]


async def _state(pool: asyncpg.Pool, store: str) -> dict[str, Any]:
    stats = await pool.fetchrow("SELECT last_seq, last_seq - seqs AS missing, events - seqs AS reused"
                                " FROM store_stats WHERE store = $1", store)
    gaps = [(r["first_seq"], r["last_seq"]) for r in await pool.fetch(
        "SELECT first_seq, last_seq FROM store_seq_gaps WHERE store = $1 ORDER BY first_seq", store)]
    reuses = [(r["seq"], r["event_id"]) for r in await pool.fetch(
        "SELECT seq, event_id FROM store_seq_reuses WHERE store = $1 ORDER BY seq, found_at", store)]
    return {**dict(stats), "gaps": gaps, "reuses": reuses}


def test_gaps_are_recorded_as_ranges_narrowed_by_late_events_and_reuses_name_the_later_event(database_url: str) -> None:
    first_two = sale_event(seq=2)
    reused = sale_event(seq=2)           # another id, the same number: a reuse (a cloned box, a reset counter)
    twins = [sale_event(seq=10), sale_event(seq=10)]

    async def run() -> list[dict[str, Any]]:
        pool = await create_pool(database_url)
        await migrate(pool)
        seen = []
        steps = [
            [sale_event(seq=1), first_two, sale_event(seq=5), sale_event(seq=6)],   # 3-4 missing
            [sale_event(seq=9)],                                                    # 7-8 missing too
            [sale_event(seq=3), reused],                                            # 3 late: 4 still missing
            [sale_event(seq=8), *twins],                                            # 7 missing; 10 twice
            [sale_event(seq=4), sale_event(seq=7)],                                 # every gap filled
        ]
        for step in steps:
            await ingest(pool, _deliveries(step), frozenset({"demo"}))
            seen.append(await _state(pool, "store-001"))
        await pool.close()
        return seen

    seen = asyncio.run(run())
    assert [(s["last_seq"], s["missing"], s["gaps"]) for s in seen] == [
        (6, 2, [(3, 4)]), (9, 4, [(3, 4), (7, 8)]), (9, 3, [(4, 4), (7, 8)]), (10, 2, [(4, 4), (7, 7)]), (10, 0, [])]
    assert [s["reused"] for s in seen] == [0, 0, 1, 2, 2]
    assert seen[-1]["reuses"] == [(2, reused.id), (10, twins[1].id)]


def test_a_replayed_batch_changes_no_figure_and_each_store_keeps_its_own_numbers(database_url: str) -> None:
    events = [sale_event(seq=1), sale_event(seq=3), sale_event(seq=1, store="store-002"),
              sale_event(seq=4, store="store-002"), sale_event(seq=4, store="store-002")]

    async def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pool = await create_pool(database_url)
        await migrate(pool)
        await ingest(pool, _deliveries(events), frozenset({"demo"}))
        before = await _state(pool, "store-002")
        await ingest(pool, _deliveries(events), frozenset({"demo"}))
        result = await _state(pool, "store-001"), before, await _state(pool, "store-002")
        await pool.close()
        return result

    one, two_before, two = asyncio.run(run())
    assert (one["missing"], one["reused"], one["gaps"], one["reuses"]) == (1, 0, [(2, 2)], [])
    assert two == two_before
    assert (two["missing"], two["reused"], two["gaps"], two["reuses"]) == (2, 1, [(2, 3)], [(4, events[4].id)])


async def test_the_console_lists_the_stores_with_gaps_or_reuses_and_only_those(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    fine = [sale_event(seq=n, store="store-002") for n in (1, 2)]
    first = sale_event(seq=1)
    again = dataclasses.replace(sale_event(seq=1), ts=first.ts + 1)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await publish(nats_server, [(SUBJECT, e.encode(), None) for e in (first, again, sale_event(seq=5))]
                      + [(SUBJECT.replace("store-001", "store-002"), e.encode(), None) for e in fine])
        await wait_until(lambda: _sales(database_url, 5))
        await sign_in_admin(http, hub.url, database_url)
        issues = (await http.get(f"{hub.url}/api/sequence-issues")).json()["items"]
        assert [(i["tenant"], i["store"], i["last_seq"], i["missing"], i["reused"]) for i in issues] == [
            ("demo", "store-001", 5, 3, 1)]
        assert [(g["first"], g["last"]) for g in issues[0]["gaps"]] == [(2, 4)]
        assert [(r["seq"], r["event_id"]) for r in issues[0]["reuses"]] == [(1, str(again.id))]
        nursery.cancel_scope.cancel()


async def _sales(database_url: str, count: int) -> bool:
    return (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"] == count


def test_the_migration_builds_from_an_existing_inbox_the_lists_ingest_keeps(database_url: str) -> None:
    """A hub upgraded with history: migration 0080 derives gaps and reuses from the inbox as ingest would."""
    migration = Path(store_stats.__file__).parent / "migrations" / "0080_sequence_issues.sql"
    backfill = migration.read_text().partition("-- What the inbox already holds")[2].partition("\n")[2]
    steps = [[sale_event(seq=1), sale_event(seq=4)], [sale_event(seq=4), sale_event(seq=9, store="store-002")],
             [sale_event(seq=2)], [sale_event(seq=1)]]

    async def run() -> tuple[list[Any], list[Any]]:
        pool = await create_pool(database_url)
        await migrate(pool)
        for step in steps:
            await ingest(pool, _deliveries(step), frozenset({"demo"}))
        lists = ("SELECT store, first_seq, last_seq FROM store_seq_gaps ORDER BY 1, 2",
                 "SELECT event_id, store, seq FROM store_seq_reuses ORDER BY 1")
        kept = [[tuple(r) for r in await pool.fetch(sql)] for sql in lists]
        await pool.execute("DELETE FROM store_seq_gaps; DELETE FROM store_seq_reuses")
        await pool.execute(backfill)
        built = [[tuple(r) for r in await pool.fetch(sql)] for sql in lists]
        await pool.close()
        return kept, built

    kept, built = asyncio.run(run())
    assert kept == built
    assert kept[0] == [("store-001", 3, 3), ("store-002", 1, 8)] and len(kept[1]) == 2
