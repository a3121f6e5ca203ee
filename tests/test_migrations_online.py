"""Hub migrations run online (hub.db): a statement waiting for a lock gives up after lock_timeout and is tried again,
so a long transaction on its table costs the writers a moment per attempt instead of a queue behind it; a
no-transaction migration builds its index concurrently, again after an interrupted build; and a running hub keeps
ingesting while another hub process migrates the database under it (the longest stall measured)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
import trio

from hub.app import run_hub
from hub.db import LOCK_TIMEOUT_S, migrate
from hub.domains import Domain, domains
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query, wait_until
from tests.events import SUBJECT, sale_event


def probe(tmp_path: Path, **files: str) -> Domain:
    """A domain of the test's own whose migrations are `files` (name -> SQL), numbered after every real one."""
    folder = tmp_path / "probe-migrations"
    folder.mkdir(exist_ok=True)
    for name, sql in files.items():
        (folder / f"{name}.sql").write_text(sql)
    return Domain("probe", migrations=folder)


async def _on_pool(database_url: str, body: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        return await body(pool)
    finally:
        await pool.close()


class LongTransaction:
    """Another session reading `table` in a transaction it keeps open for `seconds` (a report, a pg_dump): it holds
    ACCESS SHARE, which any ALTER TABLE of that table must wait for."""

    def __init__(self, database_url: str, table: str, seconds: float) -> None:
        self._url, self._table, self._seconds = database_url, table, seconds
        self.began = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._hold(),), daemon=True)

    async def _hold(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            async with conn.transaction():
                await conn.fetchval(f"SELECT count(*) FROM {self._table}")
                self.began.set()
                await asyncio.sleep(self._seconds)
        finally:
            await conn.close()

    def start(self) -> None:
        self._thread.start()
        assert self.began.wait(10)

    def join(self) -> None:
        self._thread.join()


async def _writes_during(database_url: str, work: Callable[[asyncpg.Pool], Awaitable[Any]]) -> tuple[Any, float]:
    """Insert into `ticks` every 10 ms while `work` runs; (its result, the longest time between two inserts)."""
    done = asyncio.Event()
    longest = 0.0

    async def writer(pool: asyncpg.Pool) -> None:
        nonlocal longest
        last = time.monotonic()
        while not done.is_set():
            await pool.execute("INSERT INTO ticks DEFAULT VALUES")
            now = time.monotonic()
            longest, last = max(longest, now - last), now
            await asyncio.sleep(0.01)

    async def body(pool: asyncpg.Pool) -> Any:
        task = asyncio.create_task(writer(pool))
        try:
            return await work(pool)
        finally:
            done.set()
            await task

    result = await _on_pool(database_url, body)
    return result, longest


def _ticks(database_url: str) -> None:
    asyncio.run(_on_pool(database_url, lambda pool: pool.execute(
        "CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")))


@pytest.mark.parametrize("lock_timeout_s", [0.3, 0.0], ids=["lock_timeout", "no_lock_timeout"])
def test_an_alter_waiting_behind_a_long_transaction_gives_up_and_retries_so_writes_go_on(
        tmp_path: Path, database_url: str, lock_timeout_s: float, caplog: pytest.LogCaptureFixture) -> None:
    """0.0 turns PostgreSQL's lock_timeout off, as the runner had none: the writers then queue behind the ALTER for
    as long as the report runs (the failure the runner prevents, measured the same way)."""
    _ticks(database_url)
    domain = probe(tmp_path, **{"9001_note": "ALTER TABLE ticks ADD COLUMN note text;"})
    report = LongTransaction(database_url, "ticks", 3.0)

    async def work(pool: asyncpg.Pool) -> list[str]:
        await asyncio.sleep(0.2)
        report.start()
        return await migrate(pool, [domain], lock_timeout_s=lock_timeout_s, attempts=30)

    with caplog.at_level(logging.INFO, logger="hub.db"):
        applied, longest = asyncio.run(_writes_during(database_url, work))
    report.join()
    assert applied == ["probe/9001_note"]
    print(f"\nlock_timeout {lock_timeout_s} s: longest wait between two inserts {longest:.2f} s")
    if lock_timeout_s:
        assert longest < lock_timeout_s + 0.5, f"writes stalled {longest:.2f} s"
        retries = [r.getMessage() for r in caplog.records if "waited 0.3 s for a lock" in r.getMessage()]
        assert retries and "attempt 1 of 30 failed" in retries[0]
        assert any("applied migration probe/9001_note in" in r.getMessage() for r in caplog.records)
    else:
        assert longest > 2.5, f"writes stalled only {longest:.2f} s behind the waiting ALTER"


def test_a_migration_that_never_gets_its_lock_fails_saying_what_to_look_for_and_leaves_nothing(
        tmp_path: Path, database_url: str) -> None:
    _ticks(database_url)
    domain = probe(tmp_path, **{"9001_note": "ALTER TABLE ticks ADD COLUMN note text;"
                                             "ALTER TABLE ticks ADD COLUMN other text;"})
    report = LongTransaction(database_url, "ticks", 4.0)
    report.start()
    with pytest.raises(RuntimeError, match=r"probe/9001_note did not get its lock within 0.2 s in 2 attempts.*"
                                           r"pg_stat_activity"):
        asyncio.run(_on_pool(database_url, lambda pool: migrate(pool, [domain], lock_timeout_s=0.2, attempts=2)))
    report.join()
    columns = trio.run(query, database_url, "SELECT column_name FROM information_schema.columns "
                                            "WHERE table_name = 'ticks' ORDER BY 1")
    assert [row[0] for row in columns] == ["at", "id"]
    assert not trio.run(query, database_url, "SELECT 1 FROM schema_migrations WHERE domain = 'probe'")


def test_a_no_transaction_migration_builds_its_index_concurrently_again_after_an_interrupted_build(
        tmp_path: Path, database_url: str) -> None:
    _ticks(database_url)

    async def interrupted(pool: asyncpg.Pool) -> None:
        await pool.execute("INSERT INTO ticks (at) VALUES ('2026-01-01'), ('2026-01-01')")
        with pytest.raises(asyncpg.UniqueViolationError):  # a build that failed half-way leaves the index invalid
            await pool.execute("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ticks_at ON ticks (at)")
        await pool.execute("DELETE FROM ticks WHERE id = 2")  # the cause fixed; the invalid index stays
    asyncio.run(_on_pool(database_url, interrupted))
    domain = probe(tmp_path, **{"9001_ticks_at": "-- migration: no-transaction\n"
                                "-- one tick per instant, looked up by it\n"
                                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ticks_at ON ticks (at);\n"
                                "ALTER TABLE ticks ADD CONSTRAINT ticks_at UNIQUE USING INDEX ticks_at;\n"})

    applied, longest = asyncio.run(_writes_during(database_url, lambda pool: migrate(pool, [domain])))
    assert applied == ["probe/9001_ticks_at"]
    rows = trio.run(query, database_url, "SELECT i.indisvalid, c.contype::text FROM pg_index i JOIN pg_class x ON "
                                         "x.oid = i.indexrelid LEFT JOIN pg_constraint c ON c.conindid = x.oid "
                                         "WHERE x.relname = 'ticks_at'")
    assert [tuple(row) for row in rows] == [(True, "u")]
    assert longest < 1.0
    # recorded once: a second run applies nothing
    assert asyncio.run(_on_pool(database_url, lambda pool: migrate(pool, [domain]))) == []


ONLINE = {
    "9001_sales_note": "-- the expand step of a change: old code ignores the column, new code writes it\n"
                       "ALTER TABLE sales ADD COLUMN probe_note text;\n"
                       "ALTER TABLE inbox ADD COLUMN probe_flag boolean NOT NULL DEFAULT false;\n",
    "9002_inbox_type": "-- migration: no-transaction\n"
                       "CREATE INDEX CONCURRENTLY IF NOT EXISTS inbox_probe_type ON inbox (type, received_at);\n",
}
"""What a release's migrations may do to the tables ingest writes, while it writes them."""

RATE_S = 0.02
REPORT_S = 4.0


async def _publish_steadily(nats_server: EmbeddedNats, stop: threading.Event, sent: dict[str, float]) -> None:
    """A sale every RATE_S on the store's subject, each one's wall-clock time of publishing kept by id."""
    client = await nats.connect(nats_server.url, **nats_server.hub_options())
    js = client.jetstream()
    seq = 0
    while not stop.is_set():
        seq += 1
        event = sale_event(seq=seq)
        sent[str(event.id)] = time.time()
        await js.publish(SUBJECT, event.encode())
        await asyncio.sleep(RATE_S)
    await client.close()


async def test_ingest_keeps_flowing_while_another_hub_migrates_the_database_under_it(
        tmp_path: Path, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    """A running hub ingests a sale every 20 ms. A bulk of old events fills the inbox, a report holds the sales
    table for 4 s, and a newer hub's migrations add columns to both tables ingest writes and index the inbox
    concurrently. Every sale lands once; none waits longer than the lock timeout and a margin."""
    sent: dict[str, float] = {}
    stop = threading.Event()
    domain = probe(tmp_path, **ONLINE)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await query(database_url, "INSERT INTO inbox (event_id, tenant, store, seq, type, received_at) "
                                  "SELECT gen_random_uuid(), 'demo', 'store-' || (n % 500), n, 'sale.completed', "
                                  "now() - make_interval(secs => n) FROM generate_series(1, 300000) n")
        nursery.start_soon(trio.to_thread.run_sync, asyncio.run, _publish_steadily(nats_server, stop, sent))
        await trio.sleep(1.5)
        report = LongTransaction(database_url, "sales", REPORT_S)
        await trio.to_thread.run_sync(report.start)
        began = time.time()
        applied = await trio.to_thread.run_sync(asyncio.run, _on_pool(
            database_url, lambda pool: migrate(pool, [*domains(), domain])))
        took = time.time() - began
        await trio.to_thread.run_sync(report.join)
        await trio.sleep(1.0)
        stop.set()

        async def all_in() -> bool:
            rows = await query(database_url, "SELECT count(*) FROM inbox WHERE tenant = 'demo' AND store = "
                                             "'store-001'")
            return rows[0][0] >= len(sent)
        await wait_until(all_in, timeout=30)
        nursery.cancel_scope.cancel()

    assert applied == ["probe/9001_sales_note", "probe/9002_inbox_type"]
    rows = await query(database_url, "SELECT i.event_id::text, extract(epoch FROM i.received_at)::float8, "
                                     "s.event_id IS NOT NULL FROM inbox i LEFT JOIN sales s USING (event_id) "
                                     "WHERE i.store = 'store-001'")
    assert sorted(row[0] for row in rows) == sorted(sent) and all(row[2] for row in rows)
    during = [received - sent[event] for event, received, _ in rows if began <= sent[event] <= began + took]
    assert len(during) > REPORT_S / RATE_S / 2, "too few sales during the migration to judge"
    latencies = sorted(received - sent[event] for event, received, _ in rows)
    stall = latencies[-1]
    print(f"\nmigration took {took:.1f} s (a report held sales {REPORT_S:.0f} s); {len(during)} sales during it; "
          f"publish-to-applied median {latencies[len(latencies) // 2]:.2f} s, longest {stall:.2f} s "
          f"(lock_timeout {LOCK_TIMEOUT_S} s)")
    assert took >= REPORT_S - 0.5, "the migration did not wait for the report: the test proves nothing"
    assert stall < LOCK_TIMEOUT_S + 1.0, f"ingest stalled {stall:.2f} s during the migration"
