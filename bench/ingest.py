"""Ingest benchmark: orders already in JetStream applied to PostgreSQL by one and by two hub processes,
exactly once, beside a raw COPY of the same rows.

    python -m bench.ingest [--orders 20000] [--stores 50] [--batch N] [--profile FILE]

Real parts throughout: embedded NATS (JetStream) and PostgreSQL, and real `novapos hub` child processes
sharing the durable consumer. Each order is a sale.completed v2 of 3 lines (price locks, tax) from one
of `stores` provisioned stores (tenancy and catalog seeded, so the stock domain, once present, moves stock
at real locations). The hub runs whatever appliers it has: sales, lines, tenders, per-store figures and
any other domain's effects of a sale are in the figure. Figures:

- ingest_1hub_orders_per_s / ingest_2hubs_orders_per_s: orders per second from the first order landing
  to the last, the stream holding all of them before the hubs start; each run in a fresh database.
- floor_orders_per_s: every row those orders wrote (in every table they changed: inbox, sales, lines,
  tenders, figures, stock...) COPYed raw into scratch tables of the same shapes (indexes included, no
  foreign keys), in as many transactions as the hub used batches: what PostgreSQL alone costs. Measured
  three times after each run and the fastest kept (the stricter comparison on a shared machine);
  floor_rows_per_s is the same in rows.
- ratio_1hub / ratio_2hubs: ingest orders per second over the floor's.
- hub_cpu_1hub_us_per_order / hub_cpu_2hubs_us_per_order: CPU the hub process(es) spent per order over
  the same span: what the hub itself costs, less sensitive than rates to a machine shared with others.
- Exactly once is asserted after each run: one inbox row, sale and tender and three lines per order,
  store_takings and store_stats adding up, and every table's row count the same after both runs.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import nats

from bench.figures import progress
from bench.floors import copy_floor, table_counts
from hub.db import close_pool, create_pool, migrate
from hub.ingest.worker import InFlight, ingest_once, subscribe
from novapos.adapters.nats import INGEST_CONSUMER, Outgoing
from novapos.config.hub import HubConfig, StreamLimits
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.demo.processes import free_port
from novapos.pricing import line_tax
from novapos.tls import TlsSettings
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.subjects import EVENTS_STREAM, event_subject

TENANT = "demo"
RATE_PPM = 200_000
ITEMS = [("COF-250", "Ground coffee 250 g", 499), ("MLK-1L", "Whole milk 1 l", 129), ("BRD-800", "Sourdough 800 g", 389),
         ("EGG-6", "Eggs, six", 259), ("TEA-40", "Black tea, 40 bags", 315), ("JAM-340", "Apricot jam 340 g", 279)]
STARTED_AT = 1_764_633_600_000  # 2025-12-02 00:00 UTC: after the seeded prices took effect


def store_name(number: int) -> str:
    return f"store-{number:03d}"


def order(store: str, seq: int) -> Envelope:
    """A v2 sale of three lines (quantities 1-3), tax included at RATE_PPM, paid in cash with change."""
    lines: list[dict[str, Any]] = []
    total = tax = 0
    for index in range(3):
        sku, name, price = ITEMS[(seq + index) % len(ITEMS)]
        quantity = 1 + (seq + index) % 3
        amount = price * quantity
        total += amount
        tax += line_tax(amount, RATE_PPM, True)
        lines.append({"sku": sku, "name": name, "quantity": quantity, "catalog_version": 1,
                      "unit_price": {"minor": price, "currency": "EUR"}, "amount": {"minor": amount, "currency": "EUR"},
                      "tax": {"class": "standard", "rate_ppm": RATE_PPM, "included": True,
                              "amount": {"minor": line_tax(amount, RATE_PPM, True), "currency": "EUR"}}})
    paid = -(-total // 1000) * 1000
    body = {"till": "till-1", "session": "bench", "cashier": "bench", "currency": "EUR", "lines": lines,
            "total": {"minor": total, "currency": "EUR"},
            "tax_total": {"minor": tax, "currency": "EUR"},
            "tenders": [{"method": "cash", "amount": {"minor": paid, "currency": "EUR"}}],
            "change": {"minor": paid - total, "currency": "EUR"}}
    return Envelope(id=uuid7(), type="sale.completed", v=2, tenant=TENANT, store=store, seq=seq,
                    ts=STARTED_AT + seq * 1000, body=body)


def orders(count: int, stores: int) -> list[Envelope]:
    """`count` orders spread round robin over `stores` stores, each store's in sequence."""
    return [order(store_name(number % stores + 1), number // stores + 1) for number in range(count)]


async def seed(conn: asyncpg.Connection, stores: int) -> None:
    """A tenant, a region, `stores` stores each with a floor location, and the items with a tax class and price."""
    await conn.execute("INSERT INTO tenants (tenant, name, currency) VALUES ($1, 'Bench', 'EUR')", TENANT)
    await conn.execute("INSERT INTO regions (tenant, region, name) VALUES ($1, 'north', 'North')", TENANT)
    names = [store_name(number) for number in range(1, stores + 1)]
    await conn.execute(
        "INSERT INTO stores (tenant, store, region, name) SELECT $1, s, 'north', s FROM unnest($2::text[]) s", TENANT, names)
    await conn.execute(
        "INSERT INTO locations (tenant, location, kind, store, region, name)"
        " SELECT $1, s || '-floor', 'floor', s, 'north', s FROM unnest($2::text[]) s", TENANT, names)
    await conn.execute("INSERT INTO tax_classes (tenant, tax_class, name, version) VALUES ($1, 'standard', 'Standard', 1)",
                       TENANT)
    await conn.execute("INSERT INTO tax_rates (tenant, tax_class, region, rate_ppm, version)"
                       " VALUES ($1, 'standard', 'north', $2, 1)", TENANT, RATE_PPM)
    for sku, name, price in ITEMS:
        await conn.execute("INSERT INTO products (tenant, product, name, tax_class, version)"
                           " VALUES ($1, $2, $3, 'standard', 1)", TENANT, sku, name)
        await conn.execute("INSERT INTO variants (tenant, sku, product, name, version) VALUES ($1, $2, $2, $3, 1)",
                           TENANT, sku, name)
        await conn.execute("INSERT INTO prices (tenant, sku, scope, effective_from, amount_minor, version)"
                           " VALUES ($1, $2, 'tenant', '2020-01-01', $3, 1)", TENANT, sku, price)
    await conn.execute("INSERT INTO catalog_versions (tenant, version) VALUES ($1, 1)", TENANT)


async def publish(server: EmbeddedNats, events: Sequence[Envelope]) -> None:
    """Into the events stream as stores' forwarders would (Nats-Msg-Id set), many publishes in flight."""
    link = server.hub_link("bench-setup")
    await link.connect()
    await link.ensure_event_stream()
    await link.close()
    client = await nats.connect(server.url, **server.client_options())
    js = client.jetstream()
    for first in range(0, len(events), 1000):
        chunk = events[first:first + 1000]
        outgoing = [Outgoing(str(e.id), event_subject(e.tenant, e.store, e.type), e.encode()) for e in chunk]
        await asyncio.gather(*(js.publish(o.subject, o.payload, headers={"Nats-Msg-Id": o.msg_id}) for o in outgoing))
        if (first + 1000) % 10_000 == 0:
            progress(f"  {first + len(chunk)}/{len(events)} orders in JetStream")
    await client.close()


async def rewind(server: EmbeddedNats) -> None:
    """Delete the hubs' durable consumer, so the next hubs start from the beginning of the stream."""
    client = await nats.connect(server.url, **server.client_options())
    try:
        await client.jetstream().delete_consumer(EVENTS_STREAM, INGEST_CONSUMER)
    except nats.js.errors.NotFoundError:
        pass
    await client.close()


class Served(Protocol):
    """What a hub needs of its NATS: one server (EmbeddedNats) or a cluster (EmbeddedNatsCluster)."""

    hub_credentials: Path | None

    @property
    def url(self) -> str: ...

    def tls_settings(self) -> TlsSettings: ...


class Hub:
    """`novapos hub` in a child process, as systemd runs it; its log kept in a file. `settings`: more of its
    TOML, whole sections (e.g. "[stream]\\nreplicas = 3\\n")."""

    def __init__(self, folder: Path, server: Served, database_url: str, batch: int, settings: str = "") -> None:
        config = folder / "hub.toml"
        credentials = f'credentials = "{server.hub_credentials}"\n' if server.hub_credentials else ""
        config.write_text(f'tenants = ["{TENANT}"]\n[http]\nport = {free_port()}\n[nats]\nurl = "{server.url}"\n'
                          f'{credentials}[tls]\nca_file = "{server.tls_settings().ca_file}"\n'
                          f'[database]\nurl = "{database_url}"\n[ingest]\nbatch = {batch}\n{settings}')
        self.log = folder / "hub.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOVAPOS_")}
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "novapos.cli", "hub", "--config", str(config)],
                stdout=subprocess.DEVNULL, stderr=log, env=env)

    def cpu_s(self) -> float:
        """CPU seconds the process has used so far (user and system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> str:
        """SIGTERM, as systemd stops it; the log's text."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text()


async def run(folder: Path, server: EmbeddedNats, postgres: EmbeddedPostgres, events: Sequence[Envelope], stores: int,
              hubs: int, batch: int, template: str = "template1") -> tuple[float, float, dict[str, int], str]:
    """A fresh database (a copy of `template`: an already migrated one saves the migrations' time), `hubs` hub
    processes ingesting the whole stream; (orders/s, hub CPU µs per order, rows added per table, url)."""
    database = f"bench_{hubs}hubs"
    admin = await asyncpg.connect(postgres.url())
    await admin.execute(f"DROP DATABASE IF EXISTS {database}")
    await admin.execute(f"CREATE DATABASE {database} TEMPLATE {template}")
    await admin.close()
    url = postgres.url(database)
    pool = await create_pool(url, max_size=2)
    await migrate(pool)
    async with pool.acquire() as conn:
        await seed(conn, stores)
        before = await table_counts(conn)
    await rewind(server)
    progress(f"{hubs} hub process(es) ingesting {len(events)} orders")
    processes = []
    for number in range(hubs):
        (folder / f"hub-{hubs}-{number}").mkdir()
        processes.append(Hub(folder / f"hub-{hubs}-{number}", server, url, batch))
    try:
        async with pool.acquire() as conn:
            first_seen, landed_then, landed, cpu_then = 0.0, 0, 0, 0.0
            deadline = time.monotonic() + 600
            while landed < len(events):
                landed = await conn.fetchval("SELECT count(*) FROM inbox")
                if landed and not first_seen:
                    first_seen, landed_then = time.perf_counter(), landed
                    cpu_then = sum(hub.cpu_s() for hub in processes)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {landed} of {len(events)} orders landed within 600 s")
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - first_seen
            cpu = sum(hub.cpu_s() for hub in processes) - cpu_then
    finally:
        logs = [hub.stop() for hub in processes]
    for text in logs:
        if "deadlock" in text.lower() or "Traceback" in text:
            raise RuntimeError(f"a hub logged a deadlock or a crash:\n{text[-3000:]}")
    async with pool.acquire() as conn:
        await exactly_once(conn, events)
        after = await table_counts(conn)
    await close_pool(pool)
    added = {table: after[table] - before.get(table, 0) for table in after if after[table] != before.get(table, 0)}
    rate = (len(events) - landed_then) / elapsed if elapsed > 0 else float("inf")
    cpu_us = cpu / (len(events) - landed_then) * 1e6
    progress(f"  {rate:,.0f} orders/s, hub CPU {cpu_us:,.0f} µs per order; rows added: {added}")
    return rate, cpu_us, added, url


async def exactly_once(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """Every order applied once: counts per table and the per-store figures add up."""
    count = len(events)
    expected = {"inbox": count, "sales": count, "sale_lines": 3 * count, "sale_tenders": count}
    found = {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in expected}
    assert found == expected, f"not exactly once: {found} != {expected}"
    total = sum(e.body["total"]["minor"] for e in events)
    takings = await conn.fetchrow("SELECT sum(sales) AS sales, sum(total_minor) AS total FROM store_takings")
    assert (takings["sales"], takings["total"]) == (count, total), f"store_takings {dict(takings)} != {count}, {total}"
    stats = await conn.fetchrow("SELECT sum(events) AS events, sum(seqs) AS seqs, sum(last_seq) AS last FROM store_stats")
    assert stats["events"] == stats["seqs"] == stats["last"] == count, f"store_stats {dict(stats)} != {count}"
    dead = await conn.fetchval("SELECT count(*) FROM dead_letters")
    assert dead == 0, f"{dead} dead letter(s)"


async def profiled(server: EmbeddedNats, postgres: EmbeddedPostgres, count: int, stores: int, batch: int,
                   into: Path) -> None:
    """The hub's ingest loop in this process (its asyncio side, where the work is) under cProfile, into `into`:
    where a batch's time goes, without the hub's threads hiding it from the profiler."""
    database = "bench_profile"
    admin = await asyncpg.connect(postgres.url())
    await admin.execute(f"DROP DATABASE IF EXISTS {database}")
    await admin.execute(f"CREATE DATABASE {database}")
    await admin.close()
    pool = await create_pool(postgres.url(database))
    await migrate(pool)
    async with pool.acquire() as conn:
        await seed(conn, stores)
    await rewind(server)
    link = server.hub_link("bench-profile")
    await link.connect()
    subscription = await subscribe(link, StreamLimits(), batch)
    in_flight, applied = InFlight(), 0
    profile = cProfile.Profile()
    profile.enable()
    while applied < count:
        result = await ingest_once(subscription, pool, frozenset({TENANT}), batch, 0.5, in_flight)
        applied += result.applied if result else 0
    profile.disable()
    profile.dump_stats(into)
    await link.close()
    await close_pool(pool)
    pstats.Stats(str(into), stream=sys.stderr).sort_stats("cumulative").print_stats(40)


async def main(count: int, stores: int, batch: int, profile: Path | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-ingest-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        with EmbeddedNats(folder / "nats") as nats_server, EmbeddedPostgres(folder / "pg") as postgres:
            events = orders(count, stores)
            progress(f"publishing {count} orders of 3 lines from {stores} stores to JetStream")
            await publish(nats_server, events)
            if profile:
                await profiled(nats_server, postgres, count, stores, batch, profile)
            floors = []
            one, one_cpu, added, url = await run(folder, nats_server, postgres, events, stores, 1, batch)
            progress("floor: the same rows by raw COPY, in the same number of transactions")
            floors.append(await copy_floor(url, added, -(-count // batch)))
            two, two_cpu, added_two, url = await run(folder, nats_server, postgres, events, stores, 2, batch)
            assert added == added_two, f"two hubs wrote other row counts than one: {added_two} != {added}"
            progress("floor again, after the two hubs' run")
            floors.append(await copy_floor(url, added, -(-count // batch)))
            floor = min(floors)  # the faster floor: the stricter comparison on a machine others share
    rows = sum(added.values())
    floor_orders = count / floor
    return {
        "ingest_1hub_orders_per_s": round(one), "ingest_2hubs_orders_per_s": round(two),
        "floor_orders_per_s": round(floor_orders), "floor_rows_per_s": round(rows / floor),
        "ratio_1hub": round(one / floor_orders, 3), "ratio_2hubs": round(two / floor_orders, 3),
        "hub_cpu_1hub_us_per_order": round(one_cpu), "hub_cpu_2hubs_us_per_order": round(two_cpu),
        "rows_per_order": round(rows / count, 2), "tables": sorted(added), "orders": count, "stores": stores,
        "batch": batch, "python": platform.python_version(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--batch", type=int, default=HubConfig.ingest_batch, help="the hub's [ingest] batch")
    parser.add_argument("--profile", type=Path, help="first, cProfile the hub's ingest loop in this process into FILE")
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(main(arguments.orders, arguments.stores, arguments.batch, arguments.profile))))
