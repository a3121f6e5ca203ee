"""Fleet benchmark (issue 13): how many stores, each making a sale a second, one hub host serves with ingest lag
p99 under a second, beside the raw ingest floor of the same machine in the same run; how long a price change takes
to reach every store; and the same fleet with one NATS node of three killed mid-run.

    python -m bench.fleet [--quick] [--ladder 100,200,300,500,...] [--duration 60] [--processes 4] [--hubs 1]

Real parts throughout: embedded PostgreSQL, embedded NATS (one server for the search, a three-node cluster with
the events stream replicated three times for the kill), `novapos hub` child processes, and the simulator
(novapos.sim): each store its own outbox (SQLite), forwarder, wire code, NATS user and catalog sync. Figures:

- raw_ingest_floor_events_per_s: `--orders` sales (3 lines each) already in JetStream moved into PostgreSQL with
  nothing in between (bench.floors.stream_copy_floor: one pull consumer, a batch a fetch, the rows the hub wrote
  for that batch COPYed raw in one transaction, one ack): what this machine's JetStream and PostgreSQL alone
  allow. ingest_events_per_s: the same sales drained by one real hub (bench.ingest.run, exactly once checked);
  ingest_ratio = ingest / floor; hub_cpu_us_per_event: the hub's CPU per sale.
- max_stores: the largest size of the ladder (tried in order, stopping at the first that fails) at which the
  fleet ran `--duration` s with ingest_lag_p99_s < 1, its sales made on time (the simulator's sale_late_p99_s
  < 1: a store short of CPU sells late, which the lag cannot see), every outbox drained afterwards and nothing
  lost, doubled or refused. Lag is read from PostgreSQL after the run, for every sale made in the window (after a warm-up of a
  sixth of the run, at most 10 s), as the simulator defines it: the sale's received_at (the hub's applying
  transaction) minus its completed_at (the store's outbox commit). ingest_lag_p50_s / p99_s, fleet_events_per_s
  (sales landed per second in the window) and
  fleet_floor_ratio (fleet_events_per_s / raw_ingest_floor_events_per_s) are at max_stores (null when no size
  passed: max_stores 0); `runs` has every size.
- cpu_cores_*: cores each part kept busy over a run's window (bench.processes: nats, postgresql, hub, sim and
  this process), at max_stores and at the first size that failed: `limited_by` names the busiest at the last
  size tried.
  hub_host_cores_per_1000_stores: what the hub host's own parts (hub, NATS, PostgreSQL) used at the largest size
  tried, per thousand stores: the simulated stores share this machine, a chain's stores do not;
  sim_cores_per_1000_stores: the same for the simulator's workers.
- price_change_p50_s / p99_s: mid-run at max_stores (the smallest size when none passed), one price set on the hub's database as the console does
  (hub.catalog.service.set_price, its commit's wall time) until each store's catalog sync applied that version;
  price_change_stores: how many did within the run.
- node_killed_*: `--kill-stores` stores (default max_stores) selling through a three-node cluster ([stream]
  replicas = 3), the events stream's leader SIGKILLed halfway and the price changed after it: ingest lag over
  the window, and, once every outbox drained, node_killed_lost (sales the stores sold that PostgreSQL lacks) and
  node_killed_doubled (a store's sequence number landed twice), as the simulator tallies them per store.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import nats
import nats.errors

from bench.figures import progress, ratio, summary
from bench.floors import stream_copy_floor
from bench.ingest import TENANT, Hub, orders, publish, run
from bench.processes import cpu_by_process, cpu_share
from hub.catalog.changes import PriceChange
from hub.catalog.service import set_price
from hub.db import close_pool, create_pool, migrate
from novapos.config.hub import HubConfig
from novapos.demo.embedded_cluster import EmbeddedNatsCluster
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.sim import FleetReport, FleetSpec, Progress, run_fleet, seed_fleet
from novapos.wire.catalog import catalog_stream, version_subject
from novapos.wire.subjects import EVENTS_STREAM

LAG_BOUND_S = 1.0
TEMPLATE = "fleet_template"
HUB_HOST = ("hub", "nats", "postgresql")
"""The parts of bench.processes' roles that run on a hub host."""
LADDER = (100, 200, 300, 500, 750, 1000, 1500, 2000, 3000)
DRAIN_S = 120.0
"""How long after selling every outbox may take to empty and PostgreSQL to hold every acknowledged sale
(a run that needs more has failed)."""

LAG_SQL = """
SELECT count(*) AS events,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99
FROM (SELECT extract(epoch FROM received_at - completed_at)::float8 AS lag
      FROM sales WHERE completed_at >= to_timestamp($1) AND completed_at < to_timestamp($2)) sales
"""
"""Ingest lag of every sale made in [$1, $2) (epoch seconds), as the simulator defines it: received_at (the hub's
applying transaction) minus completed_at (the store's outbox commit)."""


@dataclass
class Run:
    """One fleet run's figures."""

    stores: int
    lag_p50_s: float
    lag_p99_s: float
    events_per_s: float
    cores: dict[str, float]
    lost: int
    doubled: int
    drained: bool
    """Every outbox emptied and every acknowledged sale in PostgreSQL within DRAIN_S, no hub crashed."""
    late_p99_s: float
    """How late the stores' sales started against their schedule, p99 (the simulator short of CPU)."""
    refused: int
    """Sales a store's outbox refused."""
    price_change_s: list[float] = field(default_factory=list)

    @property
    def hub_host_cores(self) -> float:
        """Cores the hub host's own parts kept busy (hub processes, NATS, PostgreSQL): not the simulated stores,
        which in a chain are each a box of their own."""
        return round(sum(self.cores.get(role, 0.0) for role in HUB_HOST), 2)

    @property
    def passed(self) -> bool:
        """Kept up: ingest lag p99 under LAG_BOUND_S, the stores sold on time (a sale started later than that
        is lag the ingest figure cannot see), everything landed once."""
        return (self.lag_p99_s < LAG_BOUND_S and self.late_p99_s < LAG_BOUND_S and self.drained
                and self.lost == 0 and self.doubled == 0 and self.refused == 0)

    def figures(self) -> dict[str, Any]:
        return {"stores": self.stores, "ingest_lag_p50_s": measured(self.lag_p50_s),
                "ingest_lag_p99_s": measured(self.lag_p99_s),
                "events_per_s": self.events_per_s, "sale_late_p99_s": self.late_p99_s, "lost": self.lost,
                "doubled": self.doubled, "refused": self.refused, "drained": self.drained, "price_change": self.price_change(), "cpu_cores": self.cores,
                "hub_host_cores": self.hub_host_cores, "passed": self.passed}

    def price_change(self) -> dict[str, float | None]:
        """p50_s, p99_s of the price change's way to the stores (None: it reached none), how many it reached."""
        times = summary(self.price_change_s, scale=1.0, digits=3) if self.price_change_s else {}
        return {"p50_s": times.get("median"), "p99_s": times.get("p99"), "stores": len(self.price_change_s)}


def measured(seconds: float) -> float | None:
    """A figure for the JSON: None when nothing was measured (no sale landed in the window)."""
    return None if seconds == float("inf") else seconds


async def ingest_floor(folder: Path, postgres: EmbeddedPostgres, count: int, stores: int, batch: int,
                       repeats: int) -> dict[str, Any]:
    """The machine's raw ingest floor (the fastest of `repeats`) and one hub's ingest of the same sales."""
    folder.mkdir()
    with EmbeddedNats(folder / "nats") as server:
        events = orders(count, stores)
        progress(f"floor: {count} sales of 3 lines from {stores} stores into JetStream")
        await publish(server, events)
        rate, cpu_us, added, url = await run(folder, server, postgres, events, stores, 1, batch, TEMPLATE)
        progress("floor: the same sales read raw from JetStream, their rows COPYed raw, a transaction a batch")
        seconds = await stream_copy_floor(url, added, server.url, server.client_options(), EVENTS_STREAM, count, batch,
                                          repeats)
    floor = count / seconds
    progress(f"  floor {floor:,.0f} sales/s, one hub {rate:,.0f} sales/s")
    return {"raw_ingest_floor_events_per_s": round(floor), "ingest_events_per_s": round(rate),
            "ingest_ratio": ratio(rate, floor), "hub_cpu_us_per_event": round(cpu_us)}


async def migrated_template(postgres: EmbeddedPostgres) -> None:
    """Database TEMPLATE with every migration applied: each run's database is a copy (a second, where migrating
    takes ten)."""
    admin = await asyncpg.connect(postgres.url())
    await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    await admin.close()
    pool = await create_pool(postgres.url(TEMPLATE), max_size=2)
    await migrate(pool)
    await close_pool(pool)


async def fresh_database(postgres: EmbeddedPostgres, name: str, spec: FleetSpec) -> str:
    """A new database `name`, a copy of TEMPLATE, seeded with the fleet's tenant, stores and catalog."""
    admin = await asyncpg.connect(postgres.url())
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    await admin.close()
    url = postgres.url(name)
    pool = await create_pool(url, max_size=2)
    await migrate(pool)  # nothing left to apply: checks it
    await seed_fleet(pool, spec)
    await close_pool(pool)
    return url


async def wait_catalog(url: str, options: dict[str, Any], timeout: float = 60.0) -> None:
    """Until the hub published the tenant's catalog (its stream holds a version marker)."""
    client = await nats.connect(url.split(","), **options)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                await client.jetstream().get_last_msg(catalog_stream(TENANT), version_subject(TENANT))
                return
            except (nats.errors.Error, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the hub published no catalog within {timeout:.0f} s ({exc})") from exc
            await asyncio.sleep(0.2)
    finally:
        await client.close()


async def kill_stream_leader(cluster: EmbeddedNatsCluster) -> str:
    """SIGKILL the cluster member leading the events stream; its server name."""
    client = await nats.connect(cluster.url.split(","), **cluster.hub_options())
    try:
        info = await client.jetstream().stream_info(EVENTS_STREAM)
    finally:
        await client.close()
    leader = info.cluster.leader if info.cluster and info.cluster.leader else cluster.server_name(0)
    cluster.kill(cluster.index_of(leader))
    return leader


async def lag(url: str, since: float, until: float) -> tuple[int, float, float]:
    """(sales, p50 s, p99 s) of the sales made in [since, until)."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(LAG_SQL, since, until)
    finally:
        await conn.close()
    if not row["events"]:
        return 0, float("inf"), float("inf")
    return row["events"], round(row["p50"], 3), round(row["p99"], 3)


async def change_price(url: str) -> tuple[int, float]:
    """One tenant price raised by a cent, as the console's price change does: (catalog version, its commit's
    wall time)."""
    pool = await create_pool(url, max_size=1)
    try:
        row = await pool.fetchrow("SELECT sku, amount_minor FROM prices WHERE tenant = $1 AND scope = 'tenant'"
                                  " ORDER BY effective_from DESC, sku LIMIT 1", TENANT)
        version = await set_price(pool, TENANT, PriceChange(row["sku"], "tenant", "", None, row["amount_minor"] + 1))
        return version, time.time()
    finally:
        await close_pool(pool)


def reached(report: FleetReport, version: int, since: float) -> list[float]:
    """Seconds from `since` until each store's catalog sync applied `version` (stores that did not: left out)."""
    times = []
    for applied in report.catalog_applied.values():
        at = {int(number): when for number, when in applied.items()}.get(version)
        if at is not None:
            times.append(max(0.0, at - since))
    return times


class Shown:
    """The simulator's progress as one line per report on stderr, and when selling began."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.selling = asyncio.Event()
        self.since = 0.0

    def __call__(self, state: Progress) -> None:
        if state.phase == "selling" and not self.selling.is_set():
            self.since = time.time()  # within a second of it: what the price change and the kill are timed by
            self.selling.set()
        p99 = "-" if state.lag_p99_s is None else f"{state.lag_p99_s:.2f} s"
        cores = sum(process.cpu_share for process in state.processes)
        progress(f"  {self.label} {state.phase} {state.elapsed_s:5.0f} s: sent {state.sent}, acked {state.acked}, "
                 f"ingested {state.ingested}, cut {state.cut}, lag p99 {p99}, sim {cores:.2f} cores")


async def fleet_run(folder: Path, postgres: EmbeddedPostgres, stores: int, options: argparse.Namespace, *,
                    kill: bool) -> Run:
    """`stores` simulated stores selling for `duration` s (`options.duration`, or `options.kill_duration` for the
    node-killed run) against `options.hubs` hub processes: on one
    NATS server, or (`kill`) on a three-node cluster whose events stream leader is killed halfway. A price
    change mid-run (after the kill)."""
    duration = options.kill_duration if kill else options.duration
    spec = FleetSpec(stores=stores, sale_every_s=1.0, processes=options.processes, tenant=TENANT)
    label = f"{stores} stores{' (node killed)' if kill else ''}:"
    progress(f"{label} starting NATS{' (3 nodes)' if kill else ''}, PostgreSQL database, {options.hubs} hub(s)")
    folder.mkdir()
    server: EmbeddedNats | EmbeddedNatsCluster = (
        EmbeddedNatsCluster.authorized(folder / "nats", spec.store_ids()) if kill
        else EmbeddedNats.authorized(folder / "nats", spec.store_ids()))
    state = Path(tempfile.mkdtemp(prefix="novapos-bench-fleet-", dir=options.state_dir))
    try:
        await asyncio.to_thread(server.start)  # the cluster waits for JetStream with asyncio.run: not on this loop
        url = await fresh_database(postgres, f"fleet_{stores}{'_killed' if kill else ''}", spec)
        settings = "[stream]\nreplicas = 3\n" if kill else ""
        hubs = []
        for number in range(options.hubs):
            (folder / f"hub-{number}").mkdir()
            hubs.append(Hub(folder / f"hub-{number}", server, url, options.batch, settings))
        try:
            await wait_catalog(server.url, server.hub_options())
            shown = Shown(label)
            fleet = asyncio.create_task(run_fleet(
                spec, server.url, url, credentials=server.store_credentials, tls=server.tls_settings(),
                duration_s=duration, state_dir=state, drain_timeout_s=DRAIN_S, progress=shown))
            await asyncio.wait([fleet, asyncio.create_task(shown.selling.wait())], return_when=asyncio.FIRST_COMPLETED)
            if fleet.done():
                fleet.result()  # the simulator failed before selling: its error
            since, warm = shown.since, min(10.0, duration / 6)
            await asyncio.sleep(max(0.0, since + warm - time.time()))
            cpu_then, measured_from = cpu_by_process(), time.monotonic()
            if isinstance(server, EmbeddedNatsCluster):
                await asyncio.sleep(max(0.0, since + duration / 2 - time.time()))
                progress(f"{label} killing the events stream's leader, {await kill_stream_leader(server)}")
            await asyncio.sleep(max(0.0, since + duration * 2 / 3 - time.time()))
            version, changed = await change_price(url)
            progress(f"{label} price changed: catalog version {version}")
            await asyncio.sleep(max(0.0, since + duration - 0.5 - time.time()))
            cores = cpu_share(cpu_then, cpu_by_process(), time.monotonic() - measured_from)
            report = await fleet
        finally:
            crashed = [text for text in (hub.stop() for hub in hubs) if "Traceback" in text]
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
    if crashed:
        progress(f"{label} a hub logged a traceback:\n{crashed[0][-3000:]}")
    events, p50, p99 = await lag(url, report.started_at + warm, report.started_at + duration)
    late = round(max((process.sale_late_p99_s for process in report.processes), default=0.0), 3)
    refused = sum(tally.refused for tally in report.stores.values())
    result = Run(stores, p50, p99, round(events / (duration - warm)), cores, report.lost, report.doubled,
                 report.drained and not crashed, late, refused, reached(report, version, changed))
    progress(f"{label} lag p50 {p50} s, p99 {p99} s over {events} sales, sales late p99 {late} s; lost "
             f"{result.lost}, doubled {result.doubled}, refused {refused}; price change reached "
             f"{len(result.price_change_s)} stores; cores {cores}")
    return result


def busiest(cores: dict[str, float]) -> str:
    """The part that kept the most cores busy."""
    return max(cores, key=lambda role: cores[role]) if cores else ""


@asynccontextmanager
async def floored(options: argparse.Namespace, prefix: str) -> AsyncIterator[tuple[Path, EmbeddedPostgres,
                                                                                   dict[str, Any]]]:
    """A scratch folder, embedded PostgreSQL in it with TEMPLATE migrated, and the machine's ingest floor measured
    first (`options.orders` sales, `options.batch`; once with `options.quick`): what a fleet benchmark runs its
    sizes on and against."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        folder = Path(name)
        folder.chmod(0o755)
        with EmbeddedPostgres(folder / "pg") as postgres:
            await migrated_template(postgres)
            figures = await ingest_floor(folder / "floor", postgres, options.orders, 50, options.batch,
                                         1 if options.quick else 3)
            yield folder, postgres, figures


async def main(options: argparse.Namespace) -> dict[str, Any]:
    async with floored(options, "novapos-bench-fleet-") as (folder, postgres, figures):
        runs: list[Run] = []
        for stores in options.ladder:
            runs.append(await fleet_run(folder / f"fleet-{stores}", postgres, stores, options, kill=False))
            if not runs[-1].passed:
                break
        passing = [run for run in runs if run.passed]
        best = passing[-1] if passing else None
        failed = runs[-1] if not runs[-1].passed else None
        last = runs[-1]
        killed = await fleet_run(folder / "killed", postgres, options.kill_stores or (best or last).stores, options,
                                 kill=True)
    price, killed_price = (best or runs[0]).price_change(), killed.price_change()
    figures.update({
        "max_stores": best.stores if best else 0,
        "ingest_lag_p50_s": measured(best.lag_p50_s) if best else None,
        "ingest_lag_p99_s": measured(best.lag_p99_s) if best else None,
        "fleet_events_per_s": best.events_per_s if best else None,
        "fleet_floor_ratio": ratio(best.events_per_s, figures["raw_ingest_floor_events_per_s"]) if best else None,
        "price_change_p50_s": price["p50_s"], "price_change_p99_s": price["p99_s"],
        "price_change_stores": price["stores"], "cpu_cores_at_max_stores": best.cores if best else {},
        "cpu_cores_at_first_failure": failed.cores if failed else {},
        "limited_by": busiest(last.cores),
        "hub_host_cores_per_1000_stores": round(last.hub_host_cores / last.stores * 1000, 2),
        "sim_cores_per_1000_stores": round(last.cores.get("sim", 0.0) / last.stores * 1000, 2),
        "node_killed_stores": killed.stores, "node_killed_ingest_lag_p50_s": measured(killed.lag_p50_s),
        "node_killed_ingest_lag_p99_s": measured(killed.lag_p99_s), "node_killed_lost": killed.lost,
        "node_killed_doubled": killed.doubled, "node_killed_drained": killed.drained,
        "node_killed_price_change_p99_s": killed_price["p99_s"],
        "node_killed_price_change_stores": killed_price["stores"],
        "runs": [run.figures() for run in [*runs, killed]], "duration_s": options.duration,
        "sim_processes": options.processes, "hubs": options.hubs, "cpus": os.cpu_count(),
        "python": platform.python_version(),
    })
    return figures


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 4,000 sales for the floor (once), 10 stores for 8 s, then for 30 s with a node killed")
    parser.add_argument("--ladder", default=",".join(map(str, LADDER)),
                        help="store counts to try, in order, stopping at the first that fails")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of selling per run")
    parser.add_argument("--processes", type=int, default=2 * (os.cpu_count() or 1),
                        help="simulator worker processes (default: two a core; a worker is bound by its GIL and "
                             "its hundreds of threads before it is by a core: 4 kept up with 200 stores here, 2 with 150)")
    parser.add_argument("--hubs", type=int, default=1, help="hub processes sharing the ingest consumer")
    parser.add_argument("--batch", type=int, default=HubConfig.ingest_batch, help="the hub's [ingest] batch")
    parser.add_argument("--orders", type=int, default=20_000, help="sales for the floor and the hub's backlog drain")
    parser.add_argument("--kill-duration", type=float, default=60.0,
                        help="seconds of selling in the node-killed run (killed at half, the price changed at two thirds)")
    parser.add_argument("--kill-stores", type=int, default=0, help="stores in the node-killed run (default: max_stores)")
    parser.add_argument("--state-dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                        help="where the simulated stores keep their SQLite files (default: /dev/shm, memory)")
    options = parser.parse_args()
    if options.quick:
        # the node-killed run sells long enough for a price change made after the kill to outlast nats-server's
        # election (4-9 s) of the catalog stream's leader too, when it was on the killed node
        options.orders, options.ladder, options.duration, options.kill_stores = 4000, "10", 8.0, 10
        options.kill_duration = 30.0
        options.processes = min(options.processes, 2)
    options.ladder = [int(count) for count in str(options.ladder).split(",")]
    return options


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(arguments()))))
