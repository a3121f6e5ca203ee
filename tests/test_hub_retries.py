"""Only an event's own fault dead-letters it. A lock held by someone else, or a bug in an applier, is the
hub's trouble: the batch goes back to JetStream, is retried with backoff, and lands once the cause is gone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace

import asyncpg
import pytest
import trio
from prometheus_client import REGISTRY

from edge_runtime import Backoff
from hub.app import run_hub
from hub.domains import appliers
from hub.ingest import worker
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from tests.conftest import ensure_stream, query, wait_until
from tests.events import SUBJECT, publish, sale_event


def retries(error: str) -> float:
    return REGISTRY.get_sample_value("novapos_hub_ingest_retries_total", {"error": error}) or 0.0


class TableLock:
    """Another PostgreSQL session holding a SHARE lock on a table (reads pass, writes wait), as a bulk job or an
    operator's maintenance would, until released."""

    def __init__(self, database_url: str, table: str) -> None:
        self._url, self._table = database_url, table
        self._locked, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._hold(),), daemon=True)

    async def _hold(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {self._table} IN SHARE MODE")
                self._locked.set()
                while not self._release.is_set():
                    await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def take(self) -> None:
        self._thread.start()
        assert self._locked.wait(10.0), "could not take the lock"

    def release(self) -> None:
        self._release.set()
        self._thread.join()

    async def __aenter__(self) -> TableLock:
        await trio.to_thread.run_sync(self.take)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await trio.to_thread.run_sync(self.release)


@pytest.fixture
def short_lock_timeout(database_url: str) -> Iterator[str]:
    """Every new session of the test's database gives up on a lock after 200 ms (SQLSTATE 55P03)."""
    name = database_url.rpartition("/")[2]
    asyncio.run(_execute(database_url, f"ALTER DATABASE \"{name}\" SET lock_timeout = '200ms'"))
    yield database_url


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _counts(database_url: str) -> tuple[int, int]:
    rows = await query(database_url, "SELECT (SELECT count(*) FROM sales) AS sales, (SELECT count(*) FROM dead_letters) AS dead")
    return rows[0]["sales"], rows[0]["dead"]


async def test_a_lock_timeout_retries_the_batch_instead_of_dead_lettering_valid_sales(
        hub_config: HubConfig, nats_server: EmbeddedNats, short_lock_timeout: str) -> None:
    """The lock is held through six tries (under the 10 s backoff for a broken database the worker would then
    sleep 8 s); once it goes the sales land within a few seconds (worker.LOCK_RETRY)."""
    database_url = short_lock_timeout
    sales = [sale_event(seq=n) for n in (1, 2, 3)]
    before = retries("LockNotAvailableError")
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        async with TableLock(database_url, "sales"):
            await publish(nats_server, [(SUBJECT, event.encode(), None) for event in sales])

            async def tried_six_times_or_dead_lettered() -> bool:
                return retries("LockNotAvailableError") >= before + 6 or (await _counts(database_url))[1] > 0
            await wait_until(tried_six_times_or_dead_lettered, timeout=45)  # six lock timeouts and backoffs, on a busy machine
            assert await _counts(database_url) == (0, 0)
        released = trio.current_time()
        await wait_until(lambda: _equal(_counts(database_url), (3, 0)), timeout=30)
        assert trio.current_time() - released < 5.0, "the batch waited out a long backoff after the lock went"
        nursery.cancel_scope.cancel()


async def test_a_bug_in_an_applier_dead_letters_nothing_and_the_events_land_once_it_is_fixed(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def buggy(_conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
        if events:
            raise KeyError("tenders")
    sales = [sale_event(seq=n) for n in (1, 2)]
    before = retries("KeyError")
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        with monkeypatch.context() as patch:
            patch.setitem(appliers(), "sale.completed", (buggy,))
            await publish(nats_server, [(SUBJECT, event.encode(), None) for event in sales])

            async def tried_twice_or_dead_lettered() -> bool:
                return retries("KeyError") >= before + 2 or (await _counts(database_url))[1] > 0
            await wait_until(tried_twice_or_dead_lettered, timeout=45)  # two lock timeouts and a backoff, on a busy machine
            assert await _counts(database_url) == (0, 0)
        # the fix is deployed: the same events, still in the stream, land exactly once
        await wait_until(lambda: _equal(_counts(database_url), (2, 0)), timeout=60)  # the backoff, on a busy machine
        assert (await query(database_url, "SELECT count(*) AS n FROM inbox"))[0]["n"] == 2
        nursery.cancel_scope.cancel()


async def _equal(awaitable, expected: object) -> bool:  # type: ignore[no-untyped-def]
    return await awaitable == expected


async def test_a_hub_side_failure_keeps_a_stores_events_in_order(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seq 1 fails for the hub's sake (several times in a row, as a lock held for a while would make it) while 2
    and 3 wait behind it: with one hub they still land 1, 2, 3, since a batch given back is redelivered first."""
    originals = appliers()["sale.completed"]
    failures: list[int] = []

    async def fails_on_seq_1(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
        if len(failures) < 12 and any(event.seq == 1 for event in events):
            failures.append(1)
            raise KeyError("tenders")
        for applier in originals:
            await applier(conn, events)
    monkeypatch.setitem(appliers(), "sale.completed", (fails_on_seq_1,))
    monkeypatch.setattr(worker, "RETRY", Backoff(initial=0.05, maximum=0.2))
    await ensure_stream(nats_server)
    await publish(nats_server, [(SUBJECT, sale_event(seq=n).encode(), None) for n in (1, 2, 3)])
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, replace(hub_config, ingest_batch=1))
        await wait_until(lambda: _equal(_counts(database_url), (3, 0)), timeout=30)
        nursery.cancel_scope.cancel()
    assert len(failures) == 12
    rows = await query(database_url, "SELECT seq FROM inbox ORDER BY received_at")
    assert [row["seq"] for row in rows] == [1, 2, 3]
