"""Leases: each periodic job of the hub (a sweeper, a publisher, the nightly reconciliation...) runs in one hub
process at a time, the one holding the job's lease in PostgreSQL (table hub_leases: job, holder, token,
expires_at).

Every hub process runs one lease keeper for every job the domains declare (hub.domains.Domain.jobs). Every third of
the TTL ([leases] ttl_s) it takes, in one statement, each job whose lease is free or expired and renews those it
holds, both at PostgreSQL's clock (no two hosts' clocks compared). A job whose lease it gains starts; a job it
cannot renew stops, at GIVE_UP of the TTL after its last renewal was sent, so before PostgreSQL lets another
process take it: the fence is this local deadline (the job's step is cancelled, its open transaction rolled back),
and every job's own SQL is idempotent besides (SKIP LOCKED, conditional updates, unique keys: what it was when
every hub ran every job), so that a process that stalls past its deadline and resumes mid-step does no harm. A
process waiting for a lease looks again when the holder's lease runs out: a process killed with SIGKILL has its
jobs taken over within the TTL. A process told to stop releases its leases on the way out: taken over within a
third of the TTL. Each change is one log line; novapos_hub_lease_held{lease} is 1 in the holder, 0 elsewhere (sum by
job is 1 across the hubs while all is well).

A job that returns (nothing to do, such as the nightly reconciliation without a provider) keeps its lease: it is
not started again while this process holds it, and the one lease-holder per job stays true for the metric.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence

import asyncpg
import trio
from prometheus_client import Gauge

from hub.console.context import Console
from hub.domains import Service

log = logging.getLogger(__name__)

GIVE_UP = 0.8
"""A holder that could not renew stops the job this far into the TTL after its last renewal was sent (PostgreSQL
stamps the lease later than that: the job stops before the lease runs out there)."""
RELEASE_TIMEOUT_S = 2.0

HELD = Gauge("novapos_hub_lease_held", "1 while this hub process holds the periodic job's lease (it alone runs the "
             "job), else 0; summed by lease across the hub processes: 1", ["lease"])

ROUND_SQL = """
INSERT INTO hub_leases AS l (job, holder, token, acquired_at, expires_at)
SELECT job, $2, 1, clock_timestamp(), clock_timestamp() + make_interval(secs => $3)
FROM unnest($1::text[]) AS wanted(job)
ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
    token = l.token + (l.holder <> excluded.holder)::int,
    acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at ELSE excluded.acquired_at END
WHERE l.holder = excluded.holder OR l.expires_at <= clock_timestamp()
RETURNING job, token
"""
"""Take every wanted job whose lease is free or expired, renew those held; the jobs held afterwards, with their
fencing token (one more at each change of holder). The rows are locked in the array's order (sorted): two
processes' rounds never deadlock."""
NEXT_EXPIRY_SQL = ("SELECT extract(epoch FROM min(expires_at) - clock_timestamp())::float8 FROM hub_leases"
                   " WHERE job = ANY($1::text[]) AND holder <> $2")
"""Seconds until the first lease another process holds runs out (negative: already out), None if none."""
RELEASE_SQL = "UPDATE hub_leases SET expires_at = '-infinity' WHERE job = ANY($1::text[]) AND holder = $2"


def holder_name() -> str:
    """This process's name in hub_leases: host, pid, and a random tail (a pid is reused after a restart)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


async def lease_round(pool: asyncpg.Pool, jobs: Sequence[str], holder: str,
                      ttl_s: float) -> tuple[dict[str, int], float | None]:
    """(asyncio side) One round: the jobs `holder` holds now (job -> token), and seconds until the next lease of
    another process runs out."""
    async with pool.acquire() as conn:
        held = {row["job"]: row["token"] for row in await conn.fetch(ROUND_SQL, sorted(jobs), holder, ttl_s)}
        wait = await conn.fetchval(NEXT_EXPIRY_SQL, sorted(jobs), holder)
    return held, wait


async def release(pool: asyncpg.Pool, jobs: Sequence[str], holder: str) -> None:
    """(asyncio side) Give up the leases of `jobs` that `holder` holds: other processes take them at their next round."""
    await pool.execute(RELEASE_SQL, list(jobs), holder)


class LeaseKeeper:
    """Runs `jobs` (name -> hub service) each while this process holds its lease; `run` is itself the service."""

    def __init__(self, console: Console, jobs: Mapping[str, Service], ttl_s: float, holder: str | None = None) -> None:
        self.console = console
        self.jobs = dict(jobs)
        self.ttl_s = ttl_s
        self.every_s = ttl_s / 3
        self.holder = holder or holder_name()
        self.running: dict[str, trio.CancelScope] = {}
        self.finished: set[str] = set()
        self.holding: set[str] = set()

    async def run(self) -> None:
        pool = self.console.ready_pool()
        for job in self.jobs:
            HELD.labels(job)  # the series, at 0 until held
        log.info("hub process %s runs each periodic job while it holds the job's lease (%d jobs, [leases] ttl_s "
                 "%.0f): see hub_leases for who holds which", self.holder, len(self.jobs), self.ttl_s)
        try:
            async with trio.open_nursery() as nursery:
                await self._rounds(pool, nursery)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT_S):
                try:
                    await self.console.seam.run(release, pool, sorted(self.jobs), self.holder)
                except Exception as exc:
                    log.warning("could not release the job leases on the way out (%s: %s): other hub processes take "
                                "them over once they run out, within [leases] ttl_s", type(exc).__name__, exc)
                else:
                    for job in self.holding:
                        HELD.labels(job).set(0)
                    log.info("released the job leases of hub process %s on the way out: other hub processes take "
                             "them over within %.1f s", self.holder, self.every_s)

    async def _rounds(self, pool: asyncpg.Pool, nursery: trio.Nursery) -> None:
        failures = 0
        while True:
            sent = trio.current_time()
            wait: float | None = self.every_s
            try:
                with trio.fail_after(self.every_s):
                    held, wait = await self.console.seam.run(lease_round, pool, list(self.jobs), self.holder,
                                                             self.ttl_s)
            except Exception as exc:  # PostgreSQL away or too slow: the held jobs run out at their deadline
                failures += 1
                if failures == 1:
                    log.warning("cannot renew the job leases (%s: %s): the jobs this process holds (%s) stop within "
                                "%.1f s unless PostgreSQL answers; check PostgreSQL", type(exc).__name__, exc,
                                ", ".join(sorted(self.running)) or "none", self.ttl_s * GIVE_UP)
            else:
                if failures:
                    log.info("the job leases are renewed again after %d failed attempt(s)", failures)
                    failures = 0
                self._apply(held, sent, nursery)
            pause = self.every_s if wait is None else min(self.every_s, max(wait, 0.0) + 0.05)
            await trio.sleep_until(sent + pause)

    def _apply(self, held: Mapping[str, int], sent: float, nursery: trio.Nursery) -> None:
        self.holding = set(held)
        for job, token in held.items():
            if job in self.running:
                self.running[job].deadline = sent + self.ttl_s * GIVE_UP
            elif job not in self.finished:
                HELD.labels(job).set(1)
                log.info("lease of job %s gained by hub process %s (token %d): it runs here until this process "
                         "stops or cannot renew it", job, self.holder, token)
                scope = self.running[job] = trio.CancelScope(deadline=sent + self.ttl_s * GIVE_UP)
                nursery.start_soon(self._job, job, scope)
        for job in self.running.keys() - held.keys():
            log.warning("the lease of job %s was taken by another hub process while this one ran it (it stalled "
                        "past its deadline?): stopping the job here", job)
            self.running[job].cancel()
        for job in self.finished - held.keys():
            self.finished.discard(job)
            HELD.labels(job).set(0)
            log.info("lease of job %s (finished here) moved to another hub process", job)

    async def _job(self, job: str, scope: trio.CancelScope) -> None:
        finished = False
        try:
            with scope:
                await self.jobs[job](self.console)
                finished = True
        finally:
            del self.running[job]
        if finished:
            self.finished.add(job)
            log.info("job %s has nothing to do in hub process %s: it keeps the lease and does not start it again "
                     "while it holds it", job, self.holder)
            return
        HELD.labels(job).set(0)
        if scope.cancelled_caught:
            log.warning("lease of job %s lost by hub process %s (not renewed within %.1f s: PostgreSQL away or this "
                        "process stalled): the job stopped here, another hub process takes it over; check "
                        "PostgreSQL if this repeats", job, self.holder, self.ttl_s * GIVE_UP)
