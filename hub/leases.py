"""Leases: each periodic job of the hub (a sweeper, a publisher, the nightly reconciliation...) runs in one hub
process at a time, the one holding the job's lease in PostgreSQL (table hub_leases: job, holder, token,
expires_at).

Every hub process runs one lease keeper for every job the domains declare (hub.domains.Domain.jobs), on its own
PostgreSQL connection (not the pool ingest and the console share: a busy pool never delays a round; a failed
connection is dropped and made again at the next round). Every third of the TTL ([leases] ttl_s) it takes, in one
statement, each job it wants whose lease is free or expired and renews those it holds, both at PostgreSQL's clock
(no two hosts' clocks compared). A job whose lease it gains starts; a job it cannot renew stops, at GIVE_UP of the
TTL after its last renewal was sent, so before PostgreSQL lets another process take it: the fence is this local
deadline (the job's step is cancelled, its open transaction rolled back), and every job's own SQL is idempotent
besides (SKIP LOCKED, conditional updates, unique keys: what it was when every hub ran every job), so that a
process that stalls past its deadline and resumes mid-step does no harm. A process waiting for a lease looks again
when the holder's lease runs out: a process killed with SIGKILL has its jobs taken over within the TTL. A process
told to stop releases its leases on the way out: taken over within a third of the TTL.

A job that returns has nothing to do in this process (its config lacks the feature: no payment
provider): its lease is released at once and this process no longer asks for it, so that a process configured for
it takes it. A job that raises is logged with its traceback, its lease released, and this process asks for it again
after a growing pause (the TTL, doubling, at most RETRY_MAX_S): the other jobs and ingest carry on, and a job that
fails everywhere never takes the hubs down one after the other.

Each change is one log line. novapos_hub_lease_held{lease} exists for the jobs this process wants: 1 in the holder,
0 in the others (a job backing off after a failure is still wanted: 0); the series is removed when this process
stops wanting the job (it returned). Summed by lease across the hubs it is 1 while all is well, and absent for a
job no process wants (no alert for a feature nobody configured).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence

import asyncpg
import trio
from prometheus_client import Counter, Gauge

from hub.console.context import Console
from hub.domains import Service

log = logging.getLogger(__name__)

GIVE_UP = 0.8
"""A holder that could not renew stops the job this far into the TTL after its last renewal was sent (PostgreSQL
stamps the lease later than that: the job stops before the lease runs out there)."""
RELEASE_TIMEOUT_S = 2.0
RETRY_MAX_S = 600.0
"""A job that raised is asked for again after the TTL, doubling at each failure in a row, at most this."""
CONNECT_TIMEOUT_S = 5.0

HELD = Gauge("novapos_hub_lease_held", "1 while this hub process holds the periodic job's lease (it alone runs the "
             "job), 0 while it wants it, absent once it does not (the job returned); summed by lease across the hub "
             "processes: 1", ["lease"])
FAILURES = Counter("novapos_hub_lease_job_failures_total", "Times the periodic job raised in this hub process (its "
                   "lease released, retried after a growing pause)", ["lease"])

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
                   " WHERE job = ANY($1::text[]) AND holder <> $2 AND isfinite(expires_at)")
"""Seconds until the first lease another process holds runs out (negative: already out), None if none. (A lease
released by an older hub at '-infinity' is skipped: PostgreSQL 16 and older cannot subtract it.)"""
RELEASE_SQL = "UPDATE hub_leases SET expires_at = clock_timestamp() WHERE job = ANY($1::text[]) AND holder = $2"
"""Expired now, at PostgreSQL's clock (a finite time: any process takes it at its next round)."""


def holder_name() -> str:
    """This process's name in hub_leases: host, pid, and a random tail (a pid is reused after a restart)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


async def lease_round(conn: asyncpg.Connection, jobs: Sequence[str], releasing: Sequence[str], holder: str,
                      ttl_s: float) -> tuple[dict[str, int], float | None]:
    """(asyncio side) One round: release `releasing`, then the jobs `holder` holds now among `jobs` (job -> token),
    and seconds until the next lease of another process runs out."""
    if releasing:
        await conn.execute(RELEASE_SQL, sorted(releasing), holder)
    held = {row["job"]: row["token"] for row in await conn.fetch(ROUND_SQL, sorted(jobs), holder, ttl_s)}
    return held, await conn.fetchval(NEXT_EXPIRY_SQL, sorted(jobs), holder)


async def release(conn: asyncpg.Connection, jobs: Sequence[str], holder: str) -> None:
    """(asyncio side) Give up the leases of `jobs` that `holder` holds: other processes take them at their next round."""
    await conn.execute(RELEASE_SQL, sorted(jobs), holder)


async def drop(conn: asyncpg.Connection) -> None:
    """(asyncio side) Close the keeper's connection, at once if it is stuck."""
    conn.terminate()


Connect = Callable[[], Awaitable[asyncpg.Connection]]
"""(asyncio side) Opens the keeper's own connection to PostgreSQL."""


class LeaseKeeper:
    """Runs `jobs` (name -> hub service) each while this process holds its lease; `run` is itself the service.
    `connect` opens the keeper's own connection (default: [database] url)."""

    def __init__(self, console: Console, jobs: Mapping[str, Service], ttl_s: float, holder: str | None = None,
                 connect: Connect | None = None) -> None:
        self.console = console
        self.jobs = dict(jobs)
        self.ttl_s = ttl_s
        self.every_s = ttl_s / 3
        self.holder = holder or holder_name()
        self.connect = connect or (lambda: asyncpg.connect(console.config.database_url, timeout=CONNECT_TIMEOUT_S))
        self.conn: asyncpg.Connection | None = None
        self.running: dict[str, trio.CancelScope] = {}
        self.holding: set[str] = set()
        self.done: set[str] = set()
        """Jobs that returned: no longer asked for in this process."""
        self.retry_at: dict[str, float] = {}
        """Jobs that raised: asked for again at this trio time."""
        self.failures: dict[str, int] = {}
        self.releasing: set[str] = set()
        self.wake = trio.Event()

    def wanted(self) -> list[str]:
        now = trio.current_time()
        return [job for job in self.jobs if job not in self.done and self.retry_at.get(job, now) <= now]

    async def run(self) -> None:
        for job in self.jobs:
            HELD.labels(job)  # the series, at 0 until held
        log.info("hub process %s runs each periodic job while it holds the job's lease (%d jobs, [leases] ttl_s "
                 "%.0f): see hub_leases for who holds which", self.holder, len(self.jobs), self.ttl_s)
        try:
            async with trio.open_nursery() as nursery:
                await self._rounds(nursery)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT_S):
                await self._release_all()

    async def _release_all(self) -> None:
        try:
            if self.conn is not None:
                try:
                    await self.console.seam.run(release, self.conn, sorted(self.jobs), self.holder)
                except Exception:  # a round cancelled on it mid-statement: once more on a new connection
                    await self.console.seam.run(drop, self.conn)
                    self.conn = None
            if self.conn is None:
                self.conn = await self.console.seam.run(self.connect)
                await self.console.seam.run(release, self.conn, sorted(self.jobs), self.holder)
        except Exception as exc:
            log.warning("could not release the job leases on the way out (%s: %s): other hub processes take "
                        "them over once they run out, within [leases] ttl_s", type(exc).__name__, exc)
        else:
            for job in self.holding - self.done:
                HELD.labels(job).set(0)
            log.info("released the job leases of hub process %s on the way out: other hub processes take "
                     "them over within %.1f s", self.holder, self.every_s)
        finally:
            if self.conn is not None:
                await self.console.seam.run(drop, self.conn)
                self.conn = None

    async def _rounds(self, nursery: trio.Nursery) -> None:
        failures = 0
        while True:
            sent = trio.current_time()
            wait: float | None = self.every_s
            releasing = sorted(self.releasing)
            try:
                with trio.fail_after(self.every_s):
                    if self.conn is None:
                        self.conn = await self.console.seam.run(self.connect)
                    held, wait = await self.console.seam.run(lease_round, self.conn, self.wanted(), releasing,
                                                             self.holder, self.ttl_s)
            except Exception as exc:  # PostgreSQL away or too slow: the held jobs run out at their deadline
                if self.conn is not None:  # made again at the next round
                    await self.console.seam.run(drop, self.conn)
                    self.conn = None
                failures += 1
                if failures == 1:
                    log.warning("cannot renew the job leases (%s: %s): the jobs this process holds (%s) stop within "
                                "%.1f s unless PostgreSQL answers; check PostgreSQL", type(exc).__name__, exc,
                                ", ".join(sorted(self.running)) or "none", self.ttl_s * GIVE_UP)
            else:
                if failures:
                    log.info("the job leases are renewed again after %d failed attempt(s)", failures)
                    failures = 0
                self.releasing.difference_update(releasing)
                self._apply(held, sent, nursery)
            pause = self.every_s if wait is None else min(self.every_s, max(wait, 0.0) + 0.05)
            now = trio.current_time()
            retry = min((at for at in self.retry_at.values() if at > now), default=sent + pause)
            with trio.move_on_at(min(sent + pause, retry)):  # or at once when a job ends: release it
                await self.wake.wait()
            self.wake = trio.Event()

    def _apply(self, held: Mapping[str, int], sent: float, nursery: trio.Nursery) -> None:
        self.holding = set(held)
        wanted = self.wanted()
        for job in self.retry_at.keys() & set(wanted):
            del self.retry_at[job]
        for job, token in held.items():
            if job in self.running:
                self.running[job].deadline = sent + self.ttl_s * GIVE_UP
            elif job in wanted and job not in self.releasing:  # not one that ended while the round was out
                HELD.labels(job).set(1)
                FAILURES.labels(job)  # the series from 0: increase() sees a first failure
                log.info("lease of job %s gained by hub process %s (token %d): it runs here until this process "
                         "stops or cannot renew it", job, self.holder, token)
                scope = self.running[job] = trio.CancelScope(deadline=sent + self.ttl_s * GIVE_UP)
                nursery.start_soon(self._job, job, scope)
        for job in self.running.keys() - held.keys():
            log.warning("the lease of job %s was taken by another hub process while this one ran it (it stalled "
                        "past its deadline?): stopping the job here", job)
            self.running[job].cancel()

    async def _job(self, job: str, scope: trio.CancelScope) -> None:
        started = trio.current_time()
        returned = False
        try:
            with scope:
                try:
                    await self.jobs[job](self.console)
                    returned = True
                except Exception:
                    self._failed(job, started)
                    return
        finally:
            del self.running[job]
        if returned:
            self.done.add(job)
            self.releasing.add(job)
            self.wake.set()
            HELD.remove(job)
            log.info("job %s returned in hub process %s: nothing to do here (its config lacks what it needs, such as "
                     "a payment provider); lease released and no longer asked for here, so a hub "
                     "process configured for it takes it; restart this one after changing its config", job,
                     self.holder)
            return
        HELD.labels(job).set(0)
        if scope.cancelled_caught:
            log.warning("lease of job %s lost by hub process %s (not renewed within %.1f s: PostgreSQL away or this "
                        "process stalled): the job stopped here, another hub process takes it over; check "
                        "PostgreSQL if this repeats", job, self.holder, self.ttl_s * GIVE_UP)

    def _failed(self, job: str, started: float) -> None:
        """The job raised: release its lease, ask for it again after a growing pause; ingest and the others go on."""
        now = trio.current_time()
        failures = self.failures[job] = 1 if now - started > RETRY_MAX_S else self.failures.get(job, 0) + 1
        delay = min(RETRY_MAX_S, self.ttl_s * 2 ** (failures - 1))
        self.retry_at[job] = now + delay
        self.releasing.add(job)
        self.wake.set()
        HELD.labels(job).set(0)
        FAILURES.labels(job).inc()
        log.error("job %s failed in hub process %s (failure %d in a row, traceback attached): its lease is released "
                  "for another hub process and this one asks for it again in %.0f s; the other jobs and ingest carry "
                  "on; fix the cause (the traceback says where) if this repeats", job, self.holder, failures, delay,
                  exc_info=True)
