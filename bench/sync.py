"""Sync benchmark: a store's offline backlog replayed to the hub, exactly once, beside raw floors.

    python -m bench.sync [--events 5000]

Real parts throughout: embedded NATS (JetStream) and PostgreSQL, the edge's outbox and forwarder
actors, the hub's ingest worker. Figures:

- outbox_commit_ms: one durable (fsync'd) append of a sale to the SQLite outbox, as at checkout.
- backlog_drain_eps: a backlog of `events` sales (made while NATS was down) drained to JetStream by
  the forwarder when NATS returns: events per second until the outbox is empty (hub not running).
- hub_ingest_eps: a hub then started on that stream, ingesting it into PostgreSQL through the
  idempotent inbox (sales, lines, tenders): events per second until every sale is in.
- replay_eps: the same stream ingested again from the start (a full replay, long after JetStream's
  dedup window): every event is a duplicate; events per second, and the number applied (must be 0).
- insert_floor_eps: the same rows (sales, lines, tenders) written with raw batched COPY into
  scratch tables of the same shape (bench.floors), in batches of BATCH: what PostgreSQL alone costs.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import asyncpg
import nats
import trio

from actors.storage.forwarder import ForwarderActor
from actors.storage.outbox import Outbox, OutboxActor
from bench.figures import progress, ratio, summary
from bench.floors import copy_floor
from edge_runtime import AsyncioSeam, ChildSpec, SupervisorSpec, supervision_tree
from hub.app import run_hub
from novapos.adapters.nats import INGEST_CONSUMER
from novapos.config import AuditSettings, HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres

BATCH = 256


def sale(number: int) -> dict:
    euro = {"currency": "EUR"}
    return {"till": "till-1", "session": "bench", "cashier": "bench", "currency": "EUR",
            "lines": [{"sku": "COF-250", "name": "Ground coffee 250 g", "quantity": 2,
                       "unit_price": {"minor": 499, **euro}, "amount": {"minor": 998, **euro}},
                      {"sku": "MLK-1L", "name": "Whole milk 1 l", "quantity": 1,
                       "unit_price": {"minor": 129, **euro}, "amount": {"minor": 129, **euro}}],
            "total": {"minor": 1127, **euro}, "tenders": [{"method": "cash", "amount": {"minor": 1200, **euro}}],
            "change": {"minor": 73, **euro}}


def make_backlog(path: Path, events: int) -> list[float]:
    outbox = Outbox(path, "demo", "store-001")
    samples = []
    for number in range(events):
        started = time.perf_counter()
        outbox.append("sale.completed", 1, sale(number))
        samples.append(time.perf_counter() - started)
        if (number + 1) % 1000 == 0:
            progress(f"  {number + 1}/{events} sales committed to the outbox")
    outbox.close()
    return samples


async def sql(url: str, statement: str, *args: object) -> object:
    async def run() -> object:
        connection = await asyncpg.connect(url)
        try:
            return await connection.fetchval(statement, *args)
        finally:
            await connection.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def wait_for_sales(url: str, events: int) -> float:
    started = time.perf_counter()
    while int(await sql(url, "SELECT count(*) FROM sales")) < events:  # type: ignore[call-overload]
        await trio.sleep(0.05)
    return time.perf_counter() - started


async def drain(outbox_path: Path, server: EmbeddedNats) -> float:
    """The edge's outbox and forwarder actors, from start until the outbox is empty."""
    link = server.hub_link("bench-edge")
    with AsyncioSeam() as seam:
        spec = SupervisorSpec("bench", children=[
            ChildSpec("outbox", OutboxActor, (outbox_path, "demo", "store-001")),
            ChildSpec("forwarder", ForwarderActor, (seam, link, BATCH)),
        ])
        started = time.perf_counter()
        async with supervision_tree(spec) as tree:
            while await tree.ask("outbox", "depth") > 0:
                await trio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await seam.run(link.close)
        return elapsed


async def create_stream(server: EmbeddedNats) -> None:
    async def run() -> None:
        link = server.hub_link("bench-setup")
        await link.connect()
        await link.ensure_event_stream()
        await link.close()
    await trio.to_thread.run_sync(asyncio.run, run())


async def replay(server: EmbeddedNats) -> None:
    """Rewind the hub's durable consumer to the start of the stream, as a disaster-recovery replay would."""
    async def run() -> None:
        client = await nats.connect(server.url, **server.client_options())
        await client.jetstream().delete_consumer("NOVAPOS_EVENTS", INGEST_CONSUMER)
        await client.close()
    await trio.to_thread.run_sync(asyncio.run, run())


async def main(events: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-sync-") as folder:
        state = Path(folder)
        state.chmod(0o755)
        with EmbeddedNats(state / "nats") as nats_server, EmbeddedPostgres(state / "pg") as postgres:
            url = postgres.url()
            hub_config = HubConfig(tenants=("demo",), http_port=0, nats_url=nats_server.url, database_url=url,
                                   tls=nats_server.tls_settings(),
                                   audit=AuditSettings(checkpoint_dir=state / "audit-checkpoints"))
            progress(f"outbox: committing {events} sales one by one (fsync each), as checkouts would")
            commits = await trio.to_thread.run_sync(make_backlog, state / "edge.sqlite3", events)
            await create_stream(nats_server)
            progress("forwarder: draining the backlog to JetStream")
            drained = await drain(state / "edge.sqlite3", nats_server)
            progress("hub: ingesting the stream into PostgreSQL")
            async with trio.open_nursery() as nursery:
                await nursery.start(run_hub, hub_config)
                ingested = await wait_for_sales(url, events)
                nursery.cancel_scope.cancel()
            progress("replay: the whole stream again from the start")
            await replay(nats_server)
            async with trio.open_nursery() as nursery:
                await nursery.start(run_hub, hub_config)
                started = time.perf_counter()
                while await _pending(nats_server) > 0:
                    await trio.sleep(0.02)
                replayed = time.perf_counter() - started
                nursery.cancel_scope.cancel()
            total = int(await sql(url, "SELECT count(*) FROM sales"))  # type: ignore[call-overload]
            progress("floor: the same rows by raw batched COPY")
            floor = await trio.to_thread.run_sync(asyncio.run, copy_floor(
                url, {"sales": events, "sale_lines": 2 * events, "sale_tenders": events}, -(-events // BATCH)))
    return {
        "outbox_commit_ms": summary(commits, digits=3),
        "backlog_drain_eps": round(events / drained),
        "hub_ingest_eps": round(events / ingested),
        "replay_eps": round(events / replayed), "replay_applied": total - events,
        "insert_floor_eps": round(events / floor),
        "floor_to_ingest_ratio": ratio(ingested, floor),  # times faster the raw insert is than ingest
        "events": events, "batch": BATCH, "python": platform.python_version(),
    }


async def _pending(server: EmbeddedNats) -> int:
    async def run() -> int:
        client = await nats.connect(server.url, **server.client_options())
        try:
            info = await client.jetstream().consumer_info("NOVAPOS_EVENTS", INGEST_CONSUMER)
            return int(info.num_pending + info.num_ack_pending)
        except Exception:
            return 1
        finally:
            await client.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.events)))
