"""hub.leases in one process, three keepers on one real PostgreSQL (each a hub process's): each job runs in one
keeper at a time; a keeper cut off from PostgreSQL stops its jobs before another takes them over (never two at
once), and gets nothing back when it returns while others hold them; a keeper that stops hands its jobs over within
a third of the TTL. A job that returns (its feature not configured in that process) hands its lease to a keeper
that runs it, and its series leaves novapos_hub_lease_held; a job that raises is released, retried after a growing
pause, and takes down neither its keeper nor the other jobs; the keeper's own connection runs its rounds while the
hub's pool is exhausted; a released lease is finite (PostgreSQL 16 and older cannot subtract '-infinity').
(Several real hub processes, SIGKILL included: tests/test_hubs_kill9.py.)"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trio
from prometheus_client import REGISTRY

from edge_runtime import AsyncioSeam
from hub.console.context import Console
from hub.domains import Service
from hub.leases import NEXT_EXPIRY_SQL, Connect, LeaseKeeper, lease_round, release
from novapos.adapters.nats import NatsLink
from novapos.config import ConfigError, HubConfig, load_hub

TTL_S = 1.5
JOBS = ("sweeper", "publisher", "watch")
MIGRATION = Path(__file__).resolve().parent.parent / "hub" / "fleet" / "migrations" / "0198_hub_leases.sql"


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """These tests give the leases their table alone (MIGRATION), on an empty database."""
    return empty_database_url


class Journal:
    """What the fake jobs did: who runs each job now, every time two ran one at once, how often each started."""

    def __init__(self) -> None:
        self.running: dict[str, set[str]] = defaultdict(set)
        self.overlaps: list[tuple[str, frozenset[str]]] = []
        self.starts: Counter[tuple[str, str]] = Counter()

    def job(self, job: str, keeper: str, returns: bool = False, raises: bool = False) -> Service:
        async def run(console: Console) -> None:
            self.starts[job, keeper] += 1
            if raises:
                raise RuntimeError(f"{job} broke in {keeper}")
            self.running[job].add(keeper)
            if len(self.running[job]) > 1:
                self.overlaps.append((job, frozenset(self.running[job])))
            try:
                if not returns:
                    await trio.sleep_forever()
            finally:
                self.running[job].discard(keeper)
        return run

    def runner(self, job: str) -> str | None:
        runners = self.running[job]
        assert len(runners) <= 1, f"{job} runs in {sorted(runners)} at once"
        return next(iter(runners), None)


class Freezable:
    """A keeper's own connections to PostgreSQL that can stop answering (a network cut, a stalled host): every
    statement, and every new connection, waits while `frozen`."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.frozen = False
        self.opened = 0

    async def _thawed(self) -> None:
        while self.frozen:
            await asyncio.sleep(0.01)

    async def connect(self) -> Any:
        await self._thawed()
        self.opened += 1
        return FreezableConnection(await asyncpg.connect(self.database_url), self)


class FreezableConnection:
    def __init__(self, conn: asyncpg.Connection, switch: Freezable) -> None:
        self.conn = conn
        self.switch = switch

    async def execute(self, sql: str, *args: Any) -> str:
        await self.switch._thawed()
        return str(await self.conn.execute(sql, *args))

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        await self.switch._thawed()
        return list(await self.conn.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        await self.switch._thawed()
        return await self.conn.fetchval(sql, *args)

    def terminate(self) -> None:
        self.conn.terminate()


async def _open(seam: AsyncioSeam, database_url: str) -> asyncpg.Pool:
    async def run() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
        await pool.execute(MIGRATION.read_text())
        return pool
    return await seam.run(run)


async def _keeper(nursery: trio.Nursery, seam: AsyncioSeam, connect: Connect | None, name: str,
                  jobs: dict[str, Service], console: Console | None = None) -> trio.CancelScope:
    console = console or Console(seam, NatsLink("nats://127.0.0.1:1", "hub"), frozenset({"demo"}))
    keeper = LeaseKeeper(console, jobs, TTL_S, holder=name, connect=connect)
    scope = trio.CancelScope()

    async def run() -> None:
        with scope:
            await keeper.run()
    nursery.start_soon(run)
    return scope


async def _within(seconds: float, check: Callable[[], bool], what: str) -> float:
    started = trio.current_time()
    while not check():
        assert trio.current_time() - started <= seconds, f"not within {seconds} s: {what}"
        await trio.sleep(0.01)
    return trio.current_time() - started


async def test_one_runner_per_job_a_cut_off_holder_stops_first_and_a_stopping_one_hands_over(
        database_url: str) -> None:
    journal = Journal()
    with AsyncioSeam() as seam:
        shared = await _open(seam, database_url)
        pools = {name: Freezable(database_url) for name in ("a", "b", "c")}
        try:
            async with trio.open_nursery() as nursery:
                scopes = {}
                for name, pool in pools.items():
                    jobs = {job: journal.job(job, name) for job in JOBS}
                    scopes[name] = await _keeper(nursery, seam, pool.connect, name, jobs)
                await _within(TTL_S, lambda: all(journal.runner(job) for job in JOBS), "every job started")
                await trio.sleep(TTL_S)  # several rounds: nothing moves while all is well
                first = {job: journal.runner(job) for job in JOBS}
                assert all(first.values()) and journal.overlaps == []
                assert sum(journal.starts[job, name] for job in JOBS for name in pools) == len(JOBS)

                cut = first["sweeper"]
                assert cut is not None
                pools[cut].frozen = True  # its rounds hang: it must stop its jobs before anyone takes them
                moved = [job for job, runner in first.items() if runner == cut]
                took = await _within(TTL_S + 1.0, lambda: all(journal.runner(job) not in (None, cut) for job in moved),
                                     "the cut-off holder's jobs taken over within the TTL")
                assert journal.overlaps == [], "a job ran in two keepers at once"
                pools[cut].frozen = False
                await trio.sleep(TTL_S)  # back, it finds its jobs held by others: it starts nothing
                assert journal.overlaps == [] and all(journal.runner(job) != cut for job in JOBS)
                assert pools[cut].opened >= 2, "the cut-off keeper made its connection again"

                stopping = journal.runner("sweeper")
                assert stopping is not None
                scopes[stopping].cancel()  # a clean stop releases: handed over within a third of the TTL
                handed = await _within(TTL_S / 3 + 0.5, lambda: journal.runner("sweeper") not in (None, stopping),
                                       "a stopping keeper's job taken over within a third of the TTL")
                assert journal.overlaps == []
                print(f"cut-off holder's jobs taken over in {took:.2f} s, a stopping one's in {handed:.2f} s "
                      f"(ttl {TTL_S} s)")
                nursery.cancel_scope.cancel()
        finally:
            await seam.run(shared.close)


def _held(lease: str) -> float | None:
    """This process's novapos_hub_lease_held{lease}: None without the series."""
    return REGISTRY.get_sample_value("novapos_hub_lease_held", {"lease": lease})


def _failures(lease: str) -> float:
    """novapos_hub_lease_job_failures_total{lease}, summed over the keepers of this process (one registry)."""
    return REGISTRY.get_sample_value("novapos_hub_lease_job_failures_total", {"lease": lease}) or 0.0


async def _rows(seam: AsyncioSeam, pool: asyncpg.Pool) -> dict[str, tuple[str, bool]]:
    """hub_leases: job -> (holder, still held at PostgreSQL's clock)."""
    rows = await seam.run(pool.fetch, "SELECT job, holder, expires_at > clock_timestamp() AS live FROM hub_leases")
    return {row["job"]: (row["holder"], row["live"]) for row in rows}


async def test_a_job_that_returns_hands_its_lease_to_a_keeper_that_runs_it_and_leaves_the_metric(
        database_url: str) -> None:
    journal = Journal()
    with AsyncioSeam() as seam:
        shared = await _open(seam, database_url)
        try:
            async with trio.open_nursery() as nursery:
                # a: its config lacks the feature: both its jobs return at once
                await _keeper(nursery, seam, Freezable(database_url).connect, "a",
                              {"leaf_sources": journal.job("leaf_sources", "a", returns=True),
                               "lonely": journal.job("lonely", "a", returns=True)})
                await _within(TTL_S, lambda: journal.starts["lonely", "a"] == 1, "a's jobs started")
                await trio.sleep(0.3)
                # b: configured, it runs the job for ever, and must get it although a got it first
                await _keeper(nursery, seam, Freezable(database_url).connect, "b",
                              {"leaf_sources": journal.job("leaf_sources", "b")})
                took = await _within(TTL_S, lambda: journal.runner("leaf_sources") == "b",
                                     "the returned job's lease taken by the keeper that runs it")
                await trio.sleep(TTL_S)  # several rounds: a asks for neither again
                assert journal.starts["leaf_sources", "a"] == journal.starts["lonely", "a"] == 1
                assert journal.runner("leaf_sources") == "b" and journal.starts["leaf_sources", "b"] == 1
                rows = await _rows(seam, shared)
                assert rows["leaf_sources"] == ("b", True) and rows["lonely"] == ("a", False), rows  # released
                assert _held("lonely") is None, "a job no process wants exports no series (the sum is absent)"
                assert _held("leaf_sources") == 1
                print(f"a returned job's lease taken by a keeper that runs it in {took:.2f} s (ttl {TTL_S} s)")
                nursery.cancel_scope.cancel()
        finally:
            await seam.run(shared.close)


async def test_a_job_that_raises_is_released_and_retried_after_a_growing_pause_and_the_rest_carries_on(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal()
    caplog.set_level(logging.ERROR, "hub.leases")
    failures_before = _failures("broken")
    with AsyncioSeam() as seam:
        shared = await _open(seam, database_url)
        try:
            async with trio.open_nursery() as nursery:
                for name in ("a", "b"):
                    await _keeper(nursery, seam, Freezable(database_url).connect, name,
                                  {"broken": journal.job("broken", name, raises=True),
                                   f"steady_{name}": journal.job(f"steady_{name}", name)})
                await _within(TTL_S, lambda: journal.starts["broken", "a"] + journal.starts["broken", "b"] >= 2,
                              "the failed job's lease released and taken by the other keeper")
                await trio.sleep(3 * TTL_S)  # pauses of 1, 2, 4 TTLs: three starts at most in each keeper
                assert journal.starts["broken", "a"] >= 1 and journal.starts["broken", "b"] >= 1, journal.starts
                assert max(journal.starts["broken", "a"], journal.starts["broken", "b"]) <= 3, journal.starts
                assert journal.runner("steady_a") == "a" and journal.runner("steady_b") == "b"  # the keepers live on
                assert journal.starts["steady_a", "a"] == journal.starts["steady_b", "b"] == 1
                await _within(TTL_S / 3, lambda: _held("broken") == 0,  # not the instant a retry starts and raises
                              "still wanted while it backs off (the series at 0): the alert sees nobody runs it")
                failed = [r.getMessage() for r in caplog.records if "job broken failed" in r.getMessage()]
                assert len(failed) == journal.starts["broken", "a"] + journal.starts["broken", "b"]
                assert all(r.exc_info for r in caplog.records if "job broken failed" in r.getMessage())
                assert _failures("broken") - failures_before == len(failed)  # one per failure, both keepers
                assert _failures("steady_a") == _failures("steady_b") == 0
                print(f"a job raising in two keepers: {dict(journal.starts)} starts in {4 * TTL_S:.1f} s")
                nursery.cancel_scope.cancel()
        finally:
            await seam.run(shared.close)


async def test_the_keeper_runs_its_rounds_on_its_own_connection_while_the_hubs_pool_is_exhausted(
        database_url: str) -> None:
    journal = Journal()
    with AsyncioSeam() as seam:
        shared = await _open(seam, database_url)
        busy = await seam.run(lambda: asyncpg.create_pool(database_url, min_size=1, max_size=1))
        taken = await seam.run(busy.acquire)  # ingest and the console hold every connection of the hub's pool
        console = Console(seam, NatsLink("nats://127.0.0.1:1", "hub"), frozenset({"demo"}), pool=busy,
                          config=HubConfig(database_url=database_url))
        try:
            async with trio.open_nursery() as nursery:
                await _keeper(nursery, seam, None, "a", {"sweeper": journal.job("sweeper", "a")}, console)  # [database] url
                await _within(TTL_S, lambda: journal.runner("sweeper") == "a", "the job started, the pool busy")
                await trio.sleep(TTL_S)
                assert journal.runner("sweeper") == "a" and journal.starts["sweeper", "a"] == 1  # renewed, kept
                nursery.cancel_scope.cancel()
            assert (await _rows(seam, shared))["sweeper"] == ("a", False)  # released on the way out
        finally:
            await seam.run(busy.release, taken)
            await seam.run(busy.close)
            await seam.run(shared.close)


def test_a_released_lease_is_finite_so_the_next_expiry_can_be_computed(database_url: str) -> None:
    async def run() -> tuple[float | None, dict[str, int]]:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(MIGRATION.read_text())
            await lease_round(conn, ["x", "y"], [], "A", 15.0)
            await release(conn, ["x", "y"], "A")
            wait = await conn.fetchval(NEXT_EXPIRY_SQL, ["x", "y"], "B")  # raised on PostgreSQL <= 16
            held, _ = await lease_round(conn, ["x", "y"], [], "B", 15.0)
            return wait, held
        finally:
            await conn.close()
    wait, held = asyncio.run(run())
    assert wait is not None and math.isfinite(wait) and wait <= 0
    assert held == {"x": 2, "y": 2}  # taken at once, one more token each


@pytest.mark.parametrize("ttl", ["1", "601", '"15"'])
def test_a_lease_ttl_out_of_range_is_refused_naming_the_setting(tmp_path: Path, ttl: str) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f"[leases]\nttl_s = {ttl}\n")
    with pytest.raises(ConfigError, match=r"\[leases\] ttl_s"):
        load_hub(config)
    config.write_text("[leases]\nttl_s = 2\n")
    assert load_hub(config).lease_ttl_s == 2
