"""hub.leases in one process, three keepers on one real PostgreSQL (each a hub process's): each job runs in one
keeper at a time; a keeper cut off from PostgreSQL stops its jobs before another takes them over (never two at
once), and gets nothing back when it returns while others hold them; a keeper that stops hands its jobs over within
a third of the TTL; a job that returns is not started again while its keeper holds the lease.
(Several real hub processes, SIGKILL included: tests/test_hubs_kill9.py.)"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trio

from edge_runtime import AsyncioSeam
from hub.console.context import Console
from hub.domains import Service
from hub.leases import LeaseKeeper
from novapos.adapters.nats import NatsLink
from novapos.config import ConfigError, load_hub

TTL_S = 1.5
JOBS = ("sweeper", "publisher", "watch")
MIGRATION = Path(__file__).resolve().parent.parent / "hub" / "fleet" / "migrations" / "0198_hub_leases.sql"


class Journal:
    """What the fake jobs did: who runs each job now, every time two ran one at once, how often each started."""

    def __init__(self) -> None:
        self.running: dict[str, set[str]] = defaultdict(set)
        self.overlaps: list[tuple[str, frozenset[str]]] = []
        self.starts: Counter[tuple[str, str]] = Counter()

    def job(self, job: str, keeper: str, returns: bool = False) -> Service:
        async def run(console: Console) -> None:
            self.starts[job, keeper] += 1
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


class FreezablePool:
    """A keeper's view of PostgreSQL that can stop answering (a network cut, a stalled host): acquire waits."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.frozen = False

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        import asyncio
        while self.frozen:
            await asyncio.sleep(0.01)
        async with self.pool.acquire() as conn:
            yield conn

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.acquire() as conn:
            return str(await conn.execute(sql, *args))


async def _open(seam: AsyncioSeam, database_url: str) -> asyncpg.Pool:
    async def run() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
        await pool.execute(MIGRATION.read_text())
        return pool
    return await seam.run(run)


async def _keeper(nursery: trio.Nursery, seam: AsyncioSeam, pool: FreezablePool, name: str,
                  jobs: dict[str, Service]) -> trio.CancelScope:
    console = Console(seam, NatsLink("nats://127.0.0.1:1", "hub"), frozenset({"demo"}), pool=pool)
    keeper = LeaseKeeper(console, jobs, TTL_S, holder=name)
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
        pools = {name: FreezablePool(shared) for name in ("a", "b", "c")}
        try:
            async with trio.open_nursery() as nursery:
                scopes = {}
                for name, pool in pools.items():
                    jobs = {job: journal.job(job, name) for job in JOBS}
                    jobs["once"] = journal.job("once", name, returns=True)
                    scopes[name] = await _keeper(nursery, seam, pool, name, jobs)
                await _within(TTL_S, lambda: all(journal.runner(job) for job in JOBS), "every job started")
                await trio.sleep(TTL_S)  # several rounds: nothing moves while all is well
                first = {job: journal.runner(job) for job in JOBS}
                assert all(first.values()) and journal.overlaps == []
                assert sum(journal.starts[job, name] for job in JOBS for name in pools) == len(JOBS)
                assert sum(journal.starts["once", name] for name in pools) == 1  # returned, held: not run again

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


@pytest.mark.parametrize("ttl", ["1", "601", '"15"'])
def test_a_lease_ttl_out_of_range_is_refused_naming_the_setting(tmp_path: Path, ttl: str) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f"[leases]\nttl_s = {ttl}\n")
    with pytest.raises(ConfigError, match=r"\[leases\] ttl_s"):
        load_hub(config)
    config.write_text("[leases]\nttl_s = 2\n")
    assert load_hub(config).lease_ttl_s == 2
