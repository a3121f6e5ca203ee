"""The hub host's own ceiling (issue 13): how many stores, each making a sale a second, one hub host (hub, NATS,
PostgreSQL) serves with ingest lag p99 under a second, when the stores cost it what real ones do but cost this
machine little: the lean store generator (bench.lean_stores) instead of the fleet simulator. Reported beside, not
instead of, bench.fleet's figure, which is the simulator's ceiling on a machine it shares with the hub.

    python -m bench.fleet_lean [--quick] [--ladder 250,500,750,1000,...] [--duration 60] [--processes 3] [--hubs 1]

Real parts: embedded PostgreSQL, embedded NATS (TLS, an NKEY user per store), `novapos hub` child processes
(bench.fleet's template, databases, hubs and floor). Each lean store has its own NATS connection, credentials and
TLS, sells a sale a second (the simulator's sale body and the real wire encoder, awaiting each PubAck), reports its
health every 5 s on its own subject (the hub keeps each report) and keeps one long catalog pull open with heartbeats
(bench.lean_stores). Figures:

- raw_ingest_floor_events_per_s, ingest_events_per_s, ingest_ratio, hub_cpu_us_per_event: bench.fleet's floor,
  measured in this run (bench.fleet.ingest_floor).
- lean_max_stores: the largest size of the ladder (tried in order, stopping at the first that fails) that ran
  `--duration` s with ingest lag p99 < 1 s (received_at in PostgreSQL minus the sale's ts, every sale made in the
  window after a warm-up: bench.fleet.lag), its sales made on time (the generator's lateness p99 < 1 s: a generator
  short of CPU stamps its sales late and hides lag), every queue drained afterwards, no hub traceback, and every
  sale in PostgreSQL exactly once (each store's sequence numbers 1..sent, one row each). lean_ingest_lag_p50_s /
  p99_s, lean_events_per_s and lean_floor_ratio (lean_events_per_s / raw_ingest_floor_events_per_s) are at it.
- health_reports_per_s, health_failed, catalog_pull_restarts, catalog_change_p99_s (a price change set mid-run
  until each store received its version marker; catalog_change_stores received it) at lean_max_stores.
- failed_by: what failed the first size that did ("ingest lag": the hub host fell behind; "generator late": the
  generator ran short, so that size says nothing of the hub host; "not drained", "lost", "doubled"). The generators
  run niced (NICE): on the cores they share with the hub host's parts, those come first.
- cpu_cores_at_lean_max_stores / _at_first_failure: cores by part (bench.processes: hub, nats, postgresql,
  generator, bench); hub_host_cores_per_1000_stores and generator_cores_per_1000_stores at the largest size tried;
  limited_by: what ran out there ("machine" when its cores were 95 % busy or more, else the busiest part);
  busiest_part; machine_busy_cores and cpu_steal_share (the whole machine over each window: anything else running
  shows as busy cores our parts do not account for, and steal as CPU the hypervisor gave elsewhere).

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.figures import progress, ratio
from bench.fleet import (
    DRAIN_S,
    LAG_BOUND_S,
    Run,
    busiest,
    change_price,
    floored,
    fresh_database,
    lag,
    measured,
    wait_catalog,
)
from bench.ingest import TENANT, Hub
from bench.processes import cpu_by_process, cpu_share, machine_share, machine_ticks
from novapos.config.hub import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.sim import FleetSpec
from novapos.sim.fleet import Worker

LADDER = (250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000)
READY_S = 60.0
READY_PER_STORE_S = 0.1
START_MARGIN_S = 1.0
NICE = 10
"""The generators' priority below the hub host's parts: on cores they share, the hub, NATS and PostgreSQL get what
they need first, and a generator left short sells late, which fails the size as the generator's limit (`failed_by`
says so), not as lag the hub host caused."""
MACHINE_FULL = 0.95
LANDED_SQL = """
SELECT store, count(*) AS rows, count(DISTINCT seq) FILTER (WHERE seq BETWEEN 1 AND ($2::jsonb ->> store)::bigint)::int AS ours
FROM sales WHERE tenant = $1 GROUP BY store"""


def landed(rows: list[asyncpg.Record], sent: dict[str, int]) -> tuple[int, int]:
    """(lost, doubled) of the stores' sales in the sales rows counted by store: lost, a sequence number 1..sent
    with no row; doubled, every row beyond one per sequence number the store sold (a sale twice, or one it never
    made)."""
    counted = {row["store"]: (row["rows"], row["ours"]) for row in rows}
    lost = sum(count - counted.get(store, (0, 0))[1] for store, count in sent.items())
    doubled = sum(total - ours for total, ours in counted.values())
    return lost, doubled


def failed_by(run: Run) -> list[str]:
    """What failed a size: "ingest lag" (p99 at or over LAG_BOUND_S: the hub host fell behind), "generator late"
    (its sales started late: the generator, not the hub host, ran short), "not drained", "lost", "doubled"."""
    checks = {"ingest lag": run.lag_p99_s >= LAG_BOUND_S, "generator late": run.late_p99_s >= LAG_BOUND_S,
              "not drained": not run.drained, "lost": run.lost > 0, "doubled": run.doubled > 0}
    return [reason for reason, failed in checks.items() if failed]


def limited_by(run: Run, extra: dict[str, Any]) -> str:
    """What ran out at a size: "machine" when its cores were all but all busy (MACHINE_FULL: every part, the
    generator's included, then waits for a core, whichever is busiest), else the busiest part."""
    return "machine" if extra["machine_busy_cores"] >= MACHINE_FULL * (os.cpu_count() or 1) else busiest(run.cores)


async def count_landed(url: str, sent: dict[str, int], expected: int, timeout: float) -> tuple[int, int]:
    """(lost, doubled) once PostgreSQL holds `expected` sales (or `timeout` passed)."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while await conn.fetchval("SELECT count(*) FROM sales WHERE tenant = $1", TENANT) < expected \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        return landed(await conn.fetch(LANDED_SQL, TENANT, json.dumps(sent)), sent)
    finally:
        await conn.close()


async def start_workers(folder: Path, server: EmbeddedNats, spec: FleetSpec, options: argparse.Namespace,
                        workers: list[Worker]) -> None:
    """A bench.lean_stores worker per share of the stores (into `workers`, so that a failure stops those started)."""
    numbers = {name: number for number, name in enumerate(spec.store_names(), 1)}
    tls = server.tls_settings()
    for index, share in enumerate(spec.shares()):
        job = {"worker": index, "tenant": spec.tenant, "nats_url": server.url,
               "stores": [(name, numbers[name], str(server.store_credentials(spec.tenant, name))) for name in share],
               "tls": {"cert_file": tls.cert_file and str(tls.cert_file), "key_file": tls.key_file and str(tls.key_file),
                       "ca_file": tls.ca_file and str(tls.ca_file)},
               "sale_every_s": spec.sale_every_s, "duration_s": options.duration, "spread": spec.stores,
               "health_interval_s": spec.health_interval_s, "drain_timeout_s": DRAIN_S, "nice": NICE}
        with (folder / f"generator-{index}.log").open("ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.lean_stores", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log_file, limit=1 << 26)
        workers.append(Worker(f"generator-{index}", process, len(share)))
        await workers[-1].send(json.dumps(job))


async def shown(workers: list[Worker], label: str, since: float, until: float) -> None:
    """A progress line every 5 s while selling."""
    while time.time() < until:
        await asyncio.sleep(5.0)
        sent, acked = (sum(int(w.tick.get(key, 0)) for w in workers) for key in ("sent", "acked"))
        progress(f"  {label} {time.time() - since:4.0f} s: sent {sent}, acked {acked}")


@dataclass
class Sold:
    """What a run's selling left: the workers (their tallies), when selling began (wall clock) and the warm-up
    left out of the figures, cores by part and the whole machine's share over the window, and the price change
    made mid-run (catalog version, its commit's wall time)."""
    workers: list[Worker]
    since: float
    warm: float
    cores: dict[str, float]
    machine: dict[str, float]
    change: tuple[int, float]


def said(folder: Path, worker: Worker) -> str:
    """The end of a worker's log (its folder goes with the run's)."""
    return (folder / f"{worker.name}.log").read_text(errors="replace")[-2000:]


async def sell(folder: Path, server: EmbeddedNats, url: str, spec: FleetSpec, options: argparse.Namespace) -> Sold:
    """The generator's workers selling for `options.duration` s against the running hubs, then draining."""
    workers: list[Worker] = []
    listeners: list[asyncio.Task[None]] = []
    label = f"{spec.stores} lean stores:"
    try:
        await start_workers(folder, server, spec, options, workers)
        listeners.extend(asyncio.create_task(worker.listen()) for worker in workers)
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in workers)), READY_S + READY_PER_STORE_S * spec.stores)
        if failed := [w for w in workers if w.process.returncode is not None]:
            raise RuntimeError(f"{failed[0].name} exited while connecting its stores:\n{said(folder, failed[0])}")
        since = time.time() + START_MARGIN_S
        for worker in workers:
            await worker.send(f"go {since!r}")
        progress(f"{label} selling for {options.duration:.0f} s")
        showing = asyncio.create_task(shown(workers, label, since, since + options.duration))
        warm = min(10.0, options.duration / 6)
        await asyncio.sleep(max(0.0, since + warm - time.time()))
        cpu_then, machine_then, measured_from = cpu_by_process(), machine_ticks(), time.monotonic()
        await asyncio.sleep(max(0.0, since + options.duration * 2 / 3 - time.time()))
        change = await change_price(url)
        progress(f"{label} price changed: catalog version {change[0]}")
        await asyncio.sleep(max(0.0, since + options.duration - 0.5 - time.time()))
        cores = cpu_share(cpu_then, cpu_by_process(), time.monotonic() - measured_from)
        machine = machine_share(machine_then, machine_ticks())
        await showing
        await asyncio.wait_for(asyncio.gather(*(w.finished.wait() for w in workers)), DRAIN_S + 30)
        if missing := [w for w in workers if not w.done]:
            raise RuntimeError(f"{missing[0].name} exited before reporting:\n{said(folder, missing[0])}")
        return Sold(workers, since, warm, cores, machine, change)
    finally:
        for worker in workers:
            if worker.process.returncode is None:
                if worker.process.stdin is not None:
                    worker.process.stdin.close()  # one still connecting gives up; one done exits anyway
                try:
                    await asyncio.wait_for(worker.process.wait(), 30)
                except TimeoutError:
                    progress(f"{worker.name} still closing its stores' connections 30 s after its tally: killed (its figures are in)")
                    worker.process.kill()
                    await worker.process.wait()
        for listener in listeners:
            listener.cancel()


async def lean_run(folder: Path, url: str, spec: FleetSpec, options: argparse.Namespace) -> tuple[Run, dict[str, Any]]:
    """`spec.stores` lean stores (over `spec.processes` generators) selling for `options.duration` s against
    `options.hubs` hub processes on one NATS server, the database at `url` seeded for `spec` (seed_fleet):
    bench.fleet's Run (the generator's lateness as the sales' lateness, nothing refused) and the figures only the
    lean run has."""
    stores, label = spec.stores, f"{spec.stores} lean stores:"
    progress(f"{label} starting NATS, {options.hubs} hub(s), {spec.processes} generator(s)")
    folder.mkdir()
    with EmbeddedNats.authorized(folder / "nats", spec.store_ids()) as server:
        hubs = []
        for number in range(options.hubs):
            (folder / f"hub-{number}").mkdir()
            hubs.append(Hub(folder / f"hub-{number}", server, url, options.batch))
        try:
            await wait_catalog(server.url, server.hub_options())
            sold = await sell(folder, server, url, spec, options)
            tallies = {name: tally for worker in sold.workers for name, tally in worker.done["stores"].items()}
            sent = {name: tally["sent"] for name, tally in tallies.items()}
            lost, doubled = await count_landed(url, sent, sum(t["acked"] for t in tallies.values()), DRAIN_S)
        finally:
            crashed = [text for text in (hub.stop() for hub in hubs) if "Traceback" in text]
    if crashed:
        progress(f"{label} a hub logged a traceback:\n{crashed[0][-3000:]}")
    events, p50, p99 = await lag(url, sold.since + sold.warm, sold.since + options.duration)
    late = round(max(float(w.done["late_p99_s"]) for w in sold.workers), 3)
    drained = all(w.done["drained"] for w in sold.workers) and not crashed
    version, changed = sold.change
    reached = [max(0.0, at - changed) for tally in tallies.values() if (at := tally["catalog"].get(str(version)))]
    run = Run(stores, p50, p99, round(events / (options.duration - sold.warm)), sold.cores, lost, doubled, drained,
              late, 0, reached)
    extra = {"health_reports_per_s": round(sum(t["health_ok"] for t in tallies.values()) / options.duration, 1),
             "health_failed": sum(t["health_failed"] for t in tallies.values()),
             "publish_failures": sum(t["publish_failures"] for t in tallies.values()),
             "catalog_pull_restarts": sum(t["catalog_restarts"] for t in tallies.values()),
             "generator_cpu_ms_per_sale": round(sum(float(w.done["cpu_s"]) for w in sold.workers)
                                                / max(1, sum(sent.values())) * 1000, 3),
             "machine_busy_cores": sold.machine["busy_cores"], "cpu_steal_share": sold.machine["steal_share"]}
    progress(f"{label} lag p50 {p50} s, p99 {p99} s over {events} sales, generator late p99 {late} s; lost {lost}, "
             f"doubled {doubled}, drained {drained}; price change reached {len(reached)} stores; cores {sold.cores}; "
             f"{extra}")
    return run, extra


async def main(options: argparse.Namespace) -> dict[str, Any]:
    load = os.getloadavg()
    async with floored(options, "novapos-bench-lean-") as (folder, postgres, figures):
        runs: list[tuple[Run, dict[str, Any]]] = []
        for stores in options.ladder:
            spec = FleetSpec(stores=stores, processes=min(options.processes, stores), tenant=TENANT)
            url = await fresh_database(postgres, f"lean_{stores}", spec)
            runs.append(await lean_run(folder / f"lean-{stores}", url, spec, options))
            if not runs[-1][0].passed:
                break
    passing = [(run, extra) for run, extra in runs if run.passed]
    best, best_extra = passing[-1] if passing else (None, {})
    last, last_extra = runs[-1]
    failed = last if not last.passed else None
    change = best.price_change() if best else {}
    figures.update({
        "lean_max_stores": best.stores if best else 0,
        "lean_ingest_lag_p50_s": measured(best.lag_p50_s) if best else None,
        "lean_ingest_lag_p99_s": measured(best.lag_p99_s) if best else None,
        "lean_events_per_s": best.events_per_s if best else None,
        "lean_floor_ratio": ratio(best.events_per_s, figures["raw_ingest_floor_events_per_s"]) if best else None,
        "health_reports_per_s": best_extra.get("health_reports_per_s"),
        "health_failed": best_extra.get("health_failed"),
        "catalog_pull_restarts": best_extra.get("catalog_pull_restarts"),
        "catalog_change_p99_s": change.get("p99_s"), "catalog_change_stores": change.get("stores"),
        "cpu_cores_at_lean_max_stores": best.cores if best else {},
        "cpu_cores_at_first_failure": failed.cores if failed else {},
        "failed_by": failed_by(failed) if failed else [],
        "limited_by": limited_by(last, last_extra),
        "busiest_part": busiest(last.cores),
        "hub_host_cores_per_1000_stores": round(last.hub_host_cores / last.stores * 1000, 2),
        "generator_cores_per_1000_stores": round(last.cores.get("generator", 0.0) / last.stores * 1000, 2),
        "generator_cpu_ms_per_sale": last_extra["generator_cpu_ms_per_sale"],
        "machine_busy_cores": last_extra["machine_busy_cores"], "cpu_steal_share": last_extra["cpu_steal_share"],
        "runs": [{**run.figures(), **extra, "failed_by": failed_by(run)} for run, extra in runs], "duration_s": options.duration,
        "generator_processes": options.processes, "hubs": options.hubs, "cpus": os.cpu_count(),
        "load_average_at_start": [round(value, 2) for value in load], "python": platform.python_version(),
    })
    return figures


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke test: 4,000 sales for the floor (once), "
                        "20 stores for 10 s")
    parser.add_argument("--ladder", default=",".join(map(str, LADDER)),
                        help="store counts to try, in order, stopping at the first that fails")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of selling per run")
    parser.add_argument("--processes", type=int, default=3, help="generator worker processes (each one asyncio loop)")
    parser.add_argument("--hubs", type=int, default=1, help="hub processes sharing the ingest consumer")
    parser.add_argument("--batch", type=int, default=HubConfig.ingest_batch, help="the hub's [ingest] batch")
    parser.add_argument("--orders", type=int, default=20_000, help="sales for the floor and the hub's backlog drain")
    options = parser.parse_args(argv)
    if options.quick:
        options.orders, options.ladder, options.duration, options.processes = 4000, "20", 10.0, 2
    options.ladder = [int(count) for count in str(options.ladder).split(",")]
    return options


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(arguments()))))
