"""`python -m novapos.sim.worker`: one worker process of a simulated fleet (novapos.sim.fleet starts them).

It reads its job (one JSON line) on stdin, starts its stores (novapos.sim.store) on one AsyncioSeam and says
`ready`; at `go <time>` on stdin every store sells from that wall-clock time on, a sale every `sale_every_s`
(phases spread over the interval), and the outages cut and restore links on schedule; once selling is over it
waits for every outbox to empty (up to `drain_timeout_s`), says `done` with each store's tally, stops the stores
and exits. Each line on stdout is one JSON object (`ready`, `tick` once a second, `done`); its log goes to
`worker-N.log` in the state folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sqlite3
import sys
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykka
import trio
from prometheus_client import REGISTRY

from actors.protocol import Rejected
from actors.storage import db as local_db
from edge_runtime import AsyncioSeam, Tree, supervision_tree
from novapos import logs
from novapos.adapters.nats import NatsLink
from novapos.sim.store import CATALOG_THREAD, SALE_VERSION, CutLink, cart_key, sale_body, store_link, store_tree
from novapos.tls import Certificates, TlsSettings

log = logging.getLogger(__name__)

TICK_S = 1.0
SALE_SLOT_S = 0.02
"""Sales start on the next multiple of this (trio's clock): the stores due within one slot sell on one wake-up of
the worker's trio thread, not one each (a wake-up costs as much CPU as a sale's commit)."""
APPEND_TIMEOUT_S = 10.0
LINK_CLOSE_TIMEOUT_S = 5.0
START_AT_ONCE = 8
FILES_PER_STORE = 12
DRAIN_POLL_S = 0.5  # each poll opens every store's file: not too often at a thousand stores
APPLIED_PREFIX = "catalog sync: version %d applied"


@dataclass
class SimStore:
    name: str
    number: int
    link: CutLink
    tree: Tree
    state_dir: Path
    sent: int = 0
    refused: int = 0
    first_seq: int = 0
    last_seq: int = 0
    late: list[float] = field(default_factory=list)
    """How late each sale started against its schedule: a worker short of CPU sells late."""


class CatalogTimes(logging.Handler):
    """Times each catalog version a store applies, from the catalog sync's own log line (on a thread named for
    the store: novapos.sim.store.StoreThread)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.applied: dict[str, dict[int, float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith(APPLIED_PREFIX) and record.args \
                and record.threadName and record.threadName.startswith(CATALOG_THREAD):
            version = record.args[0] if isinstance(record.args, tuple) else None
            if isinstance(version, int):
                self.applied.setdefault(record.threadName[len(CATALOG_THREAD):], {})[version] = record.created


def say(kind: str, **fields: Any) -> None:
    print(json.dumps({"kind": kind, **fields}), flush=True)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def cpu_by_role() -> dict[str, float]:
    """CPU seconds this process's threads have used, by role (the actor's name, the seam, the timers, trio):
    where a simulated store's cost goes."""
    ticks = os.sysconf("SC_CLK_TCK")
    roles: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        role = thread.name.split("@")[0]
        roles[role] = roles.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return dict(sorted(roles.items(), key=lambda item: -item[1]))


def left_in_outbox(store: SimStore) -> int:
    """This run's sales still in the store's outbox (read-only, beside the running outbox: WAL allows it)."""
    if not store.sent:
        return 0
    db = sqlite3.connect(f"file:{store.state_dir / local_db.FILE_NAME}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM outbox WHERE seq >= ?", (store.first_seq,)).fetchone()[0])
    finally:
        db.close()


async def close_link(seam: AsyncioSeam, link: NatsLink) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(LINK_CLOSE_TIMEOUT_S):
        await seam.run(link.close)


async def keep_store(job: dict[str, Any], seam: AsyncioSeam, certificates: Certificates, name: str, number: int,
                     credentials: Path, starting: trio.CapacityLimiter, stores: list[SimStore], stop: trio.Event,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run one store's tree (and link) until `stop`; started once its actors are up. The stores of a worker
    start (at most `starting` at a time) and stop side by side: one after the other would take a second each
    (a catalog sync or a health report in flight finishes first)."""
    state_dir = Path(job["state_dir"]) / name
    state_dir.mkdir(parents=True, exist_ok=True)
    link = store_link(job["nats_url"], job["tenant"], name, credentials, certificates.client,
                      certificates.verifies_servers)
    try:
        async with AsyncExitStack() as stack:
            async with starting:
                tree = await stack.enter_async_context(supervision_tree(store_tree(
                    state_dir, job["tenant"], name, seam, link, catalog=job["catalog"],
                    health_interval_s=job["health_interval_s"])))
            stores.append(SimStore(name, number, link, tree, state_dir))
            task_status.started()
            await stop.wait()
    finally:
        await close_link(seam, link)


async def sell(store: SimStore, start: float, every: float, until: float) -> None:
    """A sale every `every` seconds from `start` (trio's clock) until `until`, committed as a till commits one."""
    count = 0
    while (at := start + count * every) < until:
        await trio.sleep_until(math.ceil(at / SALE_SLOT_S) * SALE_SLOT_S)
        count += 1
        store.late.append(trio.current_time() - at)
        try:
            committed = await store.tree.ask("outbox", "append", "sale.completed", SALE_VERSION,
                                             sale_body(store.number, count), key=cart_key(), timeout=APPEND_TIMEOUT_S)
        except pykka.Timeout:
            committed = Rejected("busy", f"no answer within {APPEND_TIMEOUT_S:g} s")
        if isinstance(committed, Rejected):
            store.refused += 1
            log.warning("store %s: sale refused (%s: %s); the simulator goes on with the next", store.name,
                        committed.reason, committed.message)
            continue
        store.sent += 1
        store.first_seq = store.first_seq or committed.seq
        store.last_seq = committed.seq
        store.tree.tell("forwarder", "kick")


async def outage(seam: AsyncioSeam, stores: list[SimStore], start: float, lasting: float, cut: set[str]) -> None:
    await trio.sleep_until(start)
    log.info("outage: cutting the links of %d store(s) for %.1f s", len(stores), lasting)
    async with trio.open_nursery() as nursery:
        for store in stores:
            cut.add(store.name)
            nursery.start_soon(seam.run, store.link.cut)
    await trio.sleep_until(start + lasting)
    for store in stores:
        store.link.restore()
        cut.discard(store.name)
    log.info("outage over: %d store(s) may reach NATS again", len(stores))


async def ticker(stores: list[SimStore], cut: set[str], cpu_from: float) -> None:
    wall_from = time.monotonic()
    while True:
        acked = REGISTRY.get_sample_value("novapos_edge_events_forwarded_total") or 0.0
        say("tick", sent=sum(s.sent for s in stores), acked=int(acked), cut=len(cut),
            cpu_s=round(time.process_time() - cpu_from, 3), wall_s=round(time.monotonic() - wall_from, 3),
            rss=peak_rss_bytes())
        await trio.sleep(TICK_S)


async def drain(stores: list[SimStore], timeout: float) -> bool:
    """Wait until this run's sales have left every outbox; False if some are still there after `timeout`."""
    with trio.move_on_after(timeout):
        while sum(await trio.to_thread.run_sync(lambda: [left_in_outbox(s) for s in stores])):
            await trio.sleep(DRAIN_POLL_S)
        return True
    return False


async def sell_and_drain(job: dict[str, Any], seam: AsyncioSeam, stores: list[SimStore], go_at: float,
                         catalog_times: CatalogTimes) -> None:
    """From `go_at` (wall clock), every store sells and the outages come, for the job's duration; then the outboxes
    drain and `done` is said."""
    start = trio.current_time() + go_at - time.time()
    until = start + job["duration_s"]
    every = job["sale_every_s"]
    by_name = {store.name: store for store in stores}
    cut: set[str] = set()
    await trio.sleep_until(start)
    cpu_from, roles_from = time.process_time(), cpu_by_role()
    async with trio.open_nursery() as ticking:
        ticking.start_soon(ticker, stores, cut, cpu_from)
        async with trio.open_nursery() as selling:
            for store in stores:
                phase = every * ((store.number - 1) % job["spread"]) / job["spread"]
                selling.start_soon(sell, store, start + phase, every, until)
            for at, lasting, names in job["outages"]:
                if hit := [by_name[name] for name in names if name in by_name]:
                    selling.start_soon(outage, seam, hit, start + at, lasting, cut)
        selling_cpu = time.process_time() - cpu_from
        roles = {role: round(cpu - roles_from.get(role, 0.0), 2) for role, cpu in cpu_by_role().items()}
        drained = await drain(stores, job["drain_timeout_s"])
        ticking.cancel_scope.cancel()
    left = await trio.to_thread.run_sync(lambda: {s.name: left_in_outbox(s) for s in stores})
    late = sorted(lateness for store in stores for lateness in store.late)
    say("done", drained=drained, cpu_s=round(selling_cpu, 3), rss=peak_rss_bytes(), roles=roles,
        late_p99_s=late[min(len(late) - 1, int(0.99 * len(late)))] if late else 0.0,
        stores={s.name: {"sent": s.sent, "refused": s.refused, "left": left[s.name], "first_seq": s.first_seq,
                         "last_seq": s.last_seq} for s in stores},
        catalog={store: {str(v): t for v, t in versions.items()} for store, versions in catalog_times.applied.items()})


async def run(job: dict[str, Any]) -> None:
    files = {key: Path(value) if value else None for key, value in job["tls"].items()}
    certificates = Certificates(TlsSettings(cert_file=files["cert_file"], key_file=files["key_file"],
                                            ca_file=files["ca_file"]))
    catalog_times = CatalogTimes()
    logging.getLogger("actors.catalog.sync").addHandler(catalog_times)
    stores: list[SimStore] = []
    stop = trio.Event()
    with AsyncioSeam() as seam:
        async with trio.open_nursery() as keeping:
            try:
                starting = trio.CapacityLimiter(START_AT_ONCE)
                async with trio.open_nursery() as starts:
                    for name, number, credentials in job["stores"]:
                        starts.start_soon(keeping.start, keep_store, job, seam, certificates, name, number,
                                          Path(credentials), starting, stores, stop)
                log.info("%d simulated store(s) up", len(stores))
                say("ready", pid=os.getpid(), stores=len(stores))
                command = (await trio.to_thread.run_sync(sys.stdin.readline)).split()
                if command[:1] == ["go"]:  # anything else: the fleet gave up (stdin closed)
                    await sell_and_drain(job, seam, stores, float(command[1]), catalog_times)
            finally:
                stop.set()


def open_files_for(stores: int) -> None:
    """Raise this process's open-file limit to what its stores need (their SQLite files, WAL and shared memory,
    three connections, a NATS socket: about FILES_PER_STORE each), as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILES_PER_STORE * stores + 100
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        if raised < wanted:
            log.warning("open files limited to %d, and %d stores need about %d: stores will fail to start or to "
                        "connect; raise the hard limit (ulimit -Hn) or use more worker processes", raised, stores,
                        wanted)


def pin_to_one_cpu(worker: int) -> None:
    """Keep this process (its threads, which hand a sale to each other half a dozen times) on one CPU, the workers
    dealt round robin over the CPUs it may use: a hand-off to a thread on the same CPU is a run-queue entry, one to
    another CPU an inter-processor wake-up, which costs more CPU than the work handed (a third of a worker's CPU
    per sale, measured). A worker is bound by its GIL: it loses no parallelism."""
    if not hasattr(os, "sched_setaffinity"):  # not Linux: left to the OS
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[worker % len(cpus)]})
        log.info("worker %d runs on CPU %d of %d", worker, cpus[worker % len(cpus)], len(cpus))


def main() -> int:
    job = json.loads(sys.stdin.readline())
    handler = logging.FileHandler(Path(job["state_dir"]) / f"worker-{job['worker']}.log")
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.PlainFormatter(f"%(asctime)s %(levelname)-7s sim-worker-{job['worker']} %(threadName)s "
                                             "%(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for noisy in logs.QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    open_files_for(len(job["stores"]))
    pin_to_one_cpu(job["worker"])
    trio.run(run, job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
