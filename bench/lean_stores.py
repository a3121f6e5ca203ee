"""`python -m bench.lean_stores`: one worker process of bench.fleet_lean's lean store generator.

What the hub host sees of a store, at a fraction of the simulator's CPU (novapos.sim costs 5-7 ms a sale: its actor
threads and SQLite outbox are the store box's own work, not the hub's). Each store of the worker, all on ONE asyncio
loop, has its own NATS link (novapos.adapters.nats.NatsLink: its NKEY credentials, its inbox prefix, TLS, as
edge.app.store_link makes it), so NATS pays a real connection, login and subscriptions per store, and:

- sells a sale a second (phases spread over the second across the fleet): a sale.completed v2 event with the
  simulator's body (novapos.sim.store.sale_body), the store's own gap-free sequence number, a fresh UUIDv7 event id
  (JetStream's Nats-Msg-Id and the hub's inbox key: the idempotency of the wire) and the wire encoder
  (novapos.wire.envelope), its `ts` taken when the sale is made, as the outbox's commit stamps it;
- forwards its sales in order as the edge's forwarder does (NatsLink.publish_batch: each publish awaits its PubAck,
  only the acknowledged prefix leaves, the rest is published again with the same ids after a backoff), from an
  in-memory queue standing in for the outbox;
- reports its health on its own subject every `health_interval_s` (the HealthReporter's request: a report with its
  outbox depth, last sale and one ready printer, the hub's reply decoded), so the hub keeps it as it keeps a store's;
- follows the tenant's catalog as the catalog sync does once it holds the catalog (actors.catalog.sync's
  stream_identity and open_consumer: an ephemeral consumer after the stream's last sequence, one long pull with idle
  heartbeats), timing each catalog version it receives (not applied: there is no local catalog).

Left out: the SQLite outbox and catalog, the actors, the tills (the store box's work). The worker lowers its own
priority by the job's `nice`, so that on shared cores the hub host's parts come first. The protocol is
novapos.sim.worker's: the job (one JSON line) on stdin, `ready` on stdout once every store is connected and
following, `go <time>` on stdin, a `tick` a second, `done` with each store's tally once every queue is empty (or
`drain_timeout_s` passed)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors

from actors.catalog.decoding import decode_one
from actors.catalog.pull import Puller
from actors.catalog.sync import open_consumer, stream_identity
from edge_runtime import Backoff
from novapos.__about__ import VERSION
from novapos.adapters.nats import NatsLink, Outgoing, store_inbox_prefix
from novapos.sim.store import SALE_VERSION, sale_body
from novapos.sim.worker import open_files_for, peak_rss_bytes, say
from novapos.tls import Certificates, TlsSettings
from novapos.wire.catalog import VersionMarker
from novapos.wire.envelope import Envelope
from novapos.wire.health import Device, HealthReport, LastSale, decode_reply, encode_report, health_subject
from novapos.wire.ids import uuid7
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER
from novapos.wire.subjects import event_subject

log = logging.getLogger(__name__)

SALE = "sale.completed"
PUBLISH_TIMEOUT_S = 2.0  # the forwarder's publish_timeout
BATCH = 256  # the forwarder's batch
RETRY = Backoff(initial=0.25, maximum=5.0)  # the forwarder's
HEALTH_TIMEOUT_S = 2.0  # the reporter's ANSWER_WITHIN_S
DEVICES = (Device("receipt-printer", "printer", "ready", "simulated"),)  # what the simulator's device manager says
CATALOG_BATCH = 4096
CATALOG_TAKE_S = 5.0
CONNECT_AT_ONCE = 16
CONNECT_TIMEOUT_S = 10.0
TICK_S = 1.0
CLOSE_S = 10.0


@dataclass
class LeanStore:
    """One store: its link, its unacknowledged sales in order (the outbox's part the hub sees) and its tally."""
    tenant: str
    name: str
    number: int
    link: NatsLink
    queue: deque[Outgoing] = field(default_factory=deque)
    made_at: deque[float] = field(default_factory=deque)
    """When each queued sale was made (the oldest unsent's age, for the health report)."""
    pending: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    acked: int = 0
    publish_failures: int = 0
    health_ok: int = 0
    health_failed: int = 0
    health_selling: int = 0
    """Reports the hub kept while the store sold (the drain's left out): what a rate is taken over."""
    catalog_restarts: int = 0
    late: list[float] = field(default_factory=list)
    catalog: dict[int, float] = field(default_factory=dict)
    """Catalog version -> wall time the store received its marker."""
    last_sale: LastSale | None = None

    @property
    def subject(self) -> str:
        return event_subject(self.tenant, self.name, SALE)

    def sell(self) -> None:
        """Make the next sale: numbered, stamped now, encoded, queued for the forwarder."""
        self.sent += 1
        now_ms = time.time_ns() // 1_000_000
        envelope = Envelope(id=uuid7(), type=SALE, v=SALE_VERSION, tenant=self.tenant, store=self.name, seq=self.sent,
                            ts=now_ms, body=sale_body(self.number, self.sent))
        self.queue.append(Outgoing(str(envelope.id), self.subject, envelope.encode()))
        self.made_at.append(time.monotonic())
        self.last_sale = LastSale(self.sent, now_ms)
        self.pending.set()

    def tally(self) -> dict[str, Any]:
        return {"sent": self.sent, "acked": self.acked, "left": len(self.queue), "publish_failures":
                self.publish_failures, "health_ok": self.health_selling, "health_failed": self.health_failed,
                "catalog_restarts": self.catalog_restarts, "catalog": {str(v): at for v, at in self.catalog.items()}}


async def connect(store: LeanStore, limit: asyncio.Semaphore) -> None:
    async with limit:
        await store.link.connect(CONNECT_TIMEOUT_S)


async def forward(store: LeanStore) -> None:
    """The forwarder's loop: publish what is queued in order, drop the acknowledged prefix, back off on failure."""
    failures = 0
    while True:
        await store.pending.wait()
        store.pending.clear()
        while store.queue:
            published = await store.link.publish_batch(list(store.queue)[:BATCH], PUBLISH_TIMEOUT_S)
            for _ in published.acked:
                store.queue.popleft()
                store.made_at.popleft()
            store.acked += len(published.acked)
            if published.failure is None:
                failures = 0
                continue
            failures += 1
            store.publish_failures += 1
            if failures == 1:
                log.warning("store %s: publishing stopped (%s); %d sales wait, retrying with backoff", store.name,
                            published.failure, len(store.queue))
            await asyncio.sleep(RETRY.delay(failures + 1))


def report(store: LeanStore, reason: str, interval_s: int) -> bytes:
    """The health report the reporter would send now."""
    oldest = round((time.monotonic() - store.made_at[0]) * 1000) if store.made_at else None
    return encode_report(HealthReport(version=VERSION, sent_at_ms=int(time.time() * 1000), interval_s=interval_s,
                                      reason=reason, outbox_depth=len(store.queue), oldest_unsent_ms=oldest,
                                      devices=DEVICES, open_tills=(), last_sale=store.last_sale))


async def report_health(store: LeanStore, start: float, interval_s: int) -> None:
    """A report at `start` (loop time), then every `interval_s`, each a request the hub answers."""
    loop = asyncio.get_running_loop()
    reason, count = "start", 0
    subject = health_subject(store.tenant, store.name)
    while True:
        await asyncio.sleep(max(0.0, start + count * interval_s - loop.time()))
        count += 1
        try:
            reply = await store.link.client.request(subject, report(store, reason, interval_s), timeout=HEALTH_TIMEOUT_S)
            headers = reply.headers or {}
            if ERROR_CODE_HEADER in headers:
                raise ValueError(f"the hub refused the report ({headers.get(ERROR_HEADER, headers[ERROR_CODE_HEADER])})")
            if (answer := decode_reply(reply.data)).error is not None:
                raise ValueError(f"the hub did not keep the report: {answer.error}")
            store.health_ok += 1
            reason = "interval"
        except Exception as exc:  # timeouts, a lost connection, a refusal: counted, and the next report comes
            store.health_failed += 1
            log.warning("store %s: health report failed: %s", store.name, exc or type(exc).__name__)


async def follow_catalog(store: LeanStore, puller: Puller | None, after: int) -> None:
    """Take what the open pull brings, timing each version marker; a pull that dies (or cannot be opened: NATS
    away) is reopened after the last stream sequence received, as the catalog sync does."""
    while True:
        try:
            if puller is None:
                puller = await open_consumer(store.link, store.tenant, after + 1, CATALOG_BATCH)
            for subject, data, stream_seq, _, _ in await puller.take(CATALOG_TAKE_S):
                after = stream_seq
                if isinstance(marker := decode_one(subject, data), VersionMarker):
                    store.catalog[marker.version] = time.time()
        except (ConnectionError, TimeoutError, nats.errors.Error) as exc:
            store.catalog_restarts += 1
            log.warning("store %s: the catalog pull ended (%s); reopening it", store.name, exc or type(exc).__name__)
            if puller is not None:
                await puller.close()
            puller = None
            await asyncio.sleep(1.0)


async def open_catalog(store: LeanStore, limit: asyncio.Semaphore) -> tuple[Puller, int]:
    async with limit:
        _, last = await stream_identity(store.link, store.tenant)
        return await open_consumer(store.link, store.tenant, last + 1, CATALOG_BATCH), last


async def ticker(stores: list[LeanStore], cpu_from: float) -> None:
    wall_from = time.monotonic()
    while True:
        say("tick", sent=sum(s.sent for s in stores), acked=sum(s.acked for s in stores),
            cpu_s=round(time.process_time() - cpu_from, 3), wall_s=round(time.monotonic() - wall_from, 3),
            rss=peak_rss_bytes())
        await asyncio.sleep(TICK_S)


async def sell(store: LeanStore, start: float, every: float, until: float) -> None:
    loop = asyncio.get_running_loop()
    count = 0
    while (at := start + count * every) < until:
        await asyncio.sleep(max(0.0, at - loop.time()))
        count += 1
        store.late.append(loop.time() - at)
        store.sell()


async def drained(stores: list[LeanStore], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(store.queue for store in stores):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def run(job: dict[str, Any]) -> None:
    files = {key: Path(value) if value else None for key, value in job["tls"].items()}
    certificates = Certificates(TlsSettings(cert_file=files["cert_file"], key_file=files["key_file"],
                                            ca_file=files["ca_file"]))
    tenant = job["tenant"]
    stores = [LeanStore(tenant, name, number, NatsLink(
        job["nats_url"], f"edge-{tenant}-{name}", credentials=Path(credentials),
        inbox_prefix=store_inbox_prefix(tenant, name), tls=certificates.client,
        require_tls=certificates.verifies_servers)) for name, number, credentials in job["stores"]]
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    try:
        limit = asyncio.Semaphore(CONNECT_AT_ONCE)
        await asyncio.gather(*(connect(store, limit) for store in stores))
        opened = await asyncio.gather(*(open_catalog(store, limit) for store in stores))
        for store, (puller, last) in zip(stores, opened, strict=True):
            tasks.append(asyncio.create_task(follow_catalog(store, puller, last)))
            tasks.append(asyncio.create_task(forward(store)))
        log.info("%d lean store(s) connected and following the catalog", len(stores))
        say("ready", pid=os.getpid(), stores=len(stores))
        command = (await asyncio.to_thread(sys.stdin.readline)).split()
        if command[:1] != ["go"]:  # the bench gave up (stdin closed)
            return
        start = loop.time() + float(command[1]) - time.time()
        every, spread, interval = job["sale_every_s"], job["spread"], job["health_interval_s"]
        until = start + job["duration_s"]
        await asyncio.sleep(max(0.0, start - loop.time()))
        cpu_from = time.process_time()
        tasks.append(asyncio.create_task(ticker(stores, cpu_from)))
        for store in stores:
            tasks.append(asyncio.create_task(report_health(store, start + phase_of(store, spread) * interval,
                                                           interval)))
        await asyncio.gather(*(sell(store, start + phase_of(store, spread) * every, every, until) for store in stores))
        selling_cpu = time.process_time() - cpu_from
        for store in stores:
            store.health_selling = store.health_ok
        done = await drained(stores, job["drain_timeout_s"])
        late = sorted(lateness for store in stores for lateness in store.late)
        say("done", drained=done, cpu_s=round(selling_cpu, 3), rss=peak_rss_bytes(),
            late_p99_s=round(late[min(len(late) - 1, int(0.99 * len(late)))], 4) if late else 0.0,
            stores={store.name: store.tally() for store in stores})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:  # the tally is out: a close held up (a starved worker) only delays the bench, so it is bounded
            await asyncio.wait_for(close_all(stores), CLOSE_S)
        except TimeoutError:
            log.warning("the stores' connections did not close within %.0f s; exiting with them open", CLOSE_S)


async def close_all(stores: list[LeanStore]) -> None:
    """Each store's link (its catalog pull's subscription goes with its connection)."""
    await asyncio.gather(*(store.link.close() for store in stores), return_exceptions=True)


def phase_of(store: LeanStore, spread: int) -> float:
    """Where in the interval the store's sales fall (a fraction): spread evenly over the whole fleet."""
    return (store.number - 1) % spread / spread


def main() -> int:
    job = json.loads(sys.stdin.readline())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)-7s lean-worker-{job['worker']} %(name)s: %(message)s")
    open_files_for(len(job["stores"]))
    os.nice(job["nice"])
    asyncio.run(run(job))
    return 0


if __name__ == "__main__":
    sys.exit(main())
