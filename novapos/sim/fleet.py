"""Running a simulated fleet against a hub: the worker processes (novapos.sim.worker), the schedule, and the
figures, read where they happen (ingest lag in the hub's PostgreSQL, CPU and memory in each worker).

The hub, NATS and PostgreSQL are the caller's, already running; the tenant and its stores exist in the hub's
records (seed_fleet) and each store has its NATS credentials (`credentials(tenant, store)`: a seed file).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from novapos.sim.report import FleetReport, ProcessUsage, Progress, StoreTally
from novapos.sim.spec import FleetSpec
from novapos.tls import TlsSettings

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
READY_PER_STORE_S = 1.0
"""How long the workers may take to start their stores (TLS, a NATS login, the SQLite files made, the first catalog
sync): 0.1-0.3 s each, 8 at a time per worker, on a busy machine."""
START_MARGIN_S = 1.0
RECENT_LAG_SQL = """
SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - completed_at))::float8
FROM sales WHERE tenant = $1 AND store = ANY($2::text[]) AND received_at > now() - interval '10 seconds'"""
INGESTED_SQL = "SELECT count(*) FROM sales WHERE tenant = $1 AND store = ANY($2::text[]) AND completed_at >= $3"
SAMPLES_SQL = """
SELECT store, seq, extract(epoch FROM received_at - completed_at)::float8 AS lag
FROM sales WHERE tenant = $1 AND store = ANY($2::text[]) AND completed_at >= $3"""


@dataclass
class Worker:
    """One worker process and what it last said."""
    name: str
    process: asyncio.subprocess.Process
    stores: int
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    tick: dict[str, Any] = field(default_factory=dict)
    done: dict[str, Any] = field(default_factory=dict)

    async def listen(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            message = json.loads(raw)
            if message["kind"] == "ready":
                self.ready.set()
            elif message["kind"] == "tick":
                self.tick = message
            elif message["kind"] == "done":
                self.done = message
                self.finished.set()
        self.ready.set()  # it exited: nobody waits for it any more
        self.finished.set()

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    def usage(self, selling_s: float) -> ProcessUsage:
        """Its CPU and memory: over the whole selling span once it is done, else so far."""
        source = self.done or self.tick
        cpu = float(source.get("cpu_s", 0.0))
        span = selling_s if self.done else float(self.tick.get("wall_s", 0.0))
        return ProcessUsage(self.name, self.process.pid, self.stores, cpu, cpu / span if span >= 0.5 else 0.0,
                            int(source.get("rss", 0)), dict(self.done.get("roles", {})),
                            float(self.done.get("late_p99_s", 0.0)))


def _own_usage(cpu_from: float, selling_s: float) -> ProcessUsage:
    cpu = time.process_time() - cpu_from
    return ProcessUsage("sim", os.getpid(), 0, cpu, cpu / selling_s if selling_s > 0 else 0.0,
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


async def _start_workers(workers: list[Worker], spec: FleetSpec, nats_url: str, credentials: Callable[[str, str], Path],
                         tls: TlsSettings, duration_s: float, state_dir: Path, drain_timeout_s: float) -> None:
    """Start a worker per share of the stores into `workers` (so that a failure halfway stops those started)."""
    numbers = {name: number for number, name in enumerate(spec.store_names(), 1)}
    cuts = [(o.at_s, o.for_s, o.cut(spec.store_names())) for o in spec.outages]
    for index, share in enumerate(spec.shares()):
        job = {"worker": index, "tenant": spec.tenant, "nats_url": nats_url, "state_dir": str(state_dir),
               "stores": [(name, numbers[name], str(credentials(spec.tenant, name))) for name in share],
               "tls": {"cert_file": tls.cert_file and str(tls.cert_file), "key_file": tls.key_file and str(tls.key_file),
                       "ca_file": tls.ca_file and str(tls.ca_file)},
               "sale_every_s": spec.sale_every_s, "duration_s": duration_s, "spread": spec.stores,
               "outages": cuts, "catalog": spec.catalog, "health_interval_s": spec.health_interval_s,
               "drain_timeout_s": drain_timeout_s}
        with (state_dir / f"worker-{index}.log").open("ab") as log_file:  # what escapes logging (at exit) too
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "novapos.sim.worker", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log_file, limit=1 << 26)
        worker = Worker(f"worker-{index}", process, len(share))
        workers.append(worker)
        await worker.send(json.dumps(job))


async def _recent(pool: asyncpg.Pool, spec: FleetSpec, since: float) -> tuple[int, float | None]:
    names = spec.store_names()
    ingested = await pool.fetchval(INGESTED_SQL, spec.tenant, names, datetime.fromtimestamp(since, UTC))
    lag = await pool.fetchval(RECENT_LAG_SQL, spec.tenant, names)
    return int(ingested), lag


async def run_fleet(spec: FleetSpec, nats_url: str, database_url: str, *, credentials: Callable[[str, str], Path],
                    tls: TlsSettings, duration_s: float, state_dir: Path, drain_timeout_s: float = 60.0,
                    progress: Callable[[Progress], None] | None = None) -> FleetReport:
    """Run `spec` against the hub behind `nats_url` and `database_url` for `duration_s` seconds of selling, then
    drain (every outbox empty, every released sale in PostgreSQL: up to `drain_timeout_s` each) and report.
    `progress` is called about once a second. The stores' SQLite files and the workers' logs go under `state_dir`
    (kept between runs: a store's sequence numbers go on where they stopped, as a real store's do)."""
    if duration_s <= 0:
        raise ValueError(f"duration: more than 0 s, not {duration_s!r}")
    if late := [o for o in spec.outages if o.at_s + o.for_s > duration_s]:
        raise ValueError(f"an outage ends after the selling does ({late[0].at_s:g} + {late[0].for_s:g} s > "
                         f"{duration_s:g} s): the drain would wait for it")
    state_dir.mkdir(parents=True, exist_ok=True)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    workers: list[Worker] = []
    listeners: list[asyncio.Task[None]] = []
    clock_from, cpu_from = time.monotonic(), time.process_time()
    phase = "starting"
    started_at = 0.0

    def report_progress(ingested: int, lag: float | None) -> None:
        if progress is None:
            return
        selling = max(0.0, min(time.time() - started_at, duration_s)) if started_at else 0.0  # for the sim's own
        progress(Progress(phase, time.monotonic() - clock_from,
                          sum(int(w.tick.get("sent", 0)) for w in workers),
                          sum(int(w.tick.get("acked", 0)) for w in workers), ingested,
                          sum(int(w.tick.get("cut", 0)) for w in workers), lag,
                          [w.usage(selling) for w in workers] + [_own_usage(cpu_from, selling)]))
    try:
        await _start_workers(workers, spec, nats_url, credentials, tls, duration_s, state_dir, drain_timeout_s)
        listeners.extend(asyncio.create_task(worker.listen()) for worker in workers)
        ready = asyncio.gather(*(w.ready.wait() for w in workers))
        await asyncio.wait_for(ready, READY_TIMEOUT_S + READY_PER_STORE_S * spec.stores)
        for worker in workers:
            if worker.process.returncode is not None:
                raise RuntimeError(f"{worker.name} exited with code {worker.process.returncode} while starting its "
                                   f"stores; see {state_dir}/{worker.name}.log")
        started_at = time.time() + START_MARGIN_S
        cpu_from = time.process_time()
        for worker in workers:
            await worker.send(f"go {started_at!r}")
        phase = "selling"
        since = datetime.fromtimestamp(started_at, UTC)
        deadline = time.monotonic() + START_MARGIN_S + duration_s + drain_timeout_s + 30.0
        while not all(w.finished.is_set() for w in workers):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the workers did not finish within {deadline - clock_from:.0f} s")
            if time.time() > started_at + duration_s:
                phase = "draining"
            report_progress(*await _recent(pool, spec, started_at))
            await asyncio.sleep(1.0)
        for worker in workers:
            if not worker.done:
                raise RuntimeError(f"{worker.name} exited with code {await worker.process.wait()} before reporting; "
                                   f"see {state_dir}/{worker.name}.log")
        own = _own_usage(cpu_from, duration_s)
        phase = "draining"
        tallies = {name: counts for w in workers for name, counts in w.done["stores"].items()}
        released = sum(t["sent"] - t["left"] for t in tallies.values())
        rows: list[asyncpg.Record] = []
        waited_until = time.monotonic() + drain_timeout_s
        while True:
            rows = await pool.fetch(SAMPLES_SQL, spec.tenant, spec.store_names(), since)
            ours = _ours(rows, tallies)
            if ours >= released or time.monotonic() > waited_until:
                break
            report_progress(ours, None)
            await asyncio.sleep(0.5)
    finally:
        for worker in workers:
            if worker.process.returncode is None:
                if (worker.finished.is_set() or phase == "starting") and worker.process.stdin is not None:
                    worker.process.stdin.close()  # done, or never told to go: it stops its stores and exits
                else:
                    worker.process.terminate()  # given up mid-run (an error, a cancel): the outboxes keep what is unsent
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 30.0)
            except TimeoutError:
                log.warning("%s did not stop within 30 s: killing it", worker.name)
                worker.process.kill()
                await worker.process.wait()
        for listener in listeners:
            listener.cancel()
        await pool.close()
    return _report(spec, started_at, duration_s, workers, own, tallies, rows, released)


def _ours(rows: list[asyncpg.Record], tallies: dict[str, dict[str, Any]]) -> int:
    """How many distinct sales of this run (by store and sequence number) the rows hold."""
    return len({(r["store"], r["seq"]) for r in rows
                if (t := tallies.get(r["store"])) and t["first_seq"] <= r["seq"] <= t["last_seq"]})


def _report(spec: FleetSpec, started_at: float, selling_s: float, workers: list[Worker], own: ProcessUsage,
            tallies: dict[str, dict[str, Any]], rows: list[asyncpg.Record], released: int) -> FleetReport:
    seen: dict[str, dict[int, int]] = {}
    lags: list[float] = []
    for row in rows:
        tally = tallies.get(row["store"])
        if tally and tally["first_seq"] <= row["seq"] <= tally["last_seq"]:
            per_store = seen.setdefault(row["store"], {})
            per_store[row["seq"]] = per_store.get(row["seq"], 0) + 1
            lags.append(row["lag"])
    stores = {}
    for name, tally in tallies.items():
        counts = seen.get(name, {})
        stores[name] = StoreTally(sent=tally["sent"], acked=tally["sent"] - tally["left"], ingested=len(counts),
                                  doubled=sum(count - 1 for count in counts.values()), left=tally["left"],
                                  first_seq=tally["first_seq"], last_seq=tally["last_seq"], refused=tally["refused"])
    drained = all(w.done.get("drained") for w in workers) and sum(len(counts) for counts in seen.values()) >= released
    catalog = {store: {int(version): at for version, at in versions.items()}
               for w in workers for store, versions in w.done.get("catalog", {}).items()}
    return FleetReport(spec, started_at, selling_s, drained, stores, lags,
                       [w.usage(selling_s) for w in workers] + [own], catalog)


def run_fleet_sync(spec: FleetSpec, nats_url: str, database_url: str, *, credentials: Callable[[str, str], Path],
                   tls: TlsSettings, duration_s: float, state_dir: Path, drain_timeout_s: float = 60.0,
                   progress: Callable[[Progress], None] | None = None) -> FleetReport:
    """run_fleet on a loop of its own (from code that is not on asyncio)."""
    return asyncio.run(run_fleet(spec, nats_url, database_url, credentials=credentials, tls=tls, duration_s=duration_s,
                                 state_dir=state_dir, drain_timeout_s=drain_timeout_s, progress=progress))
