"""Catalog benchmark, both halves: the hub's (a CSV import of `products` products beside a raw COPY of the same
rows, and their publication to the tenant's catalog stream beside a raw pipelined publish of the same bytes),
then the store's (bench.catalog_sync: a new store's cold sync of as many items beside a raw JetStream replay,
a till's barcode lookup, a price change from the stream to the till).

    python -m bench.catalog [--products 100000] [--changes 20]

Real parts: embedded PostgreSQL and NATS (JetStream), the hub's importer and publisher. Figures:

- import_s: `products` products (one variant, one EAN-13 and a price each, every tenth with a region price)
  imported from CSV through the whole importer (parse and check, COPY, set-based checks, merge), one version.
- import_floor_s: the same rows parsed by the csv module and COPY'd raw into scratch tables of the same shape
  (keys and indexes, no checks): what PostgreSQL alone costs. import_floor_ratio = import_s / import_floor_s.
- reimport_unchanged_s: the same file again: everything checked, nothing changes (no variant stamped).
- publish_s: the whole catalog published to a new stream by the publisher (read, encode, pipelined publish,
  every ack counted, recorded); publish_floor_s: the same bytes published the same pipelined way to a scratch
  stream, without the database or the encoding; publish_floor_ratio = publish_s / publish_floor_s.
- price_change_to_stream_ms: a price changed through the service until its version marker is on the stream,
  with the publisher running as in a hub (woken by NOTIFY); median and p99 of `changes` changes. With the
  store half's price_change_ms (marker on the stream until a till sells at the new price), a price change's
  whole way from the console to the tills.
- the store half's figures: see bench.catalog_sync (cold_sync_s, replay_floor_s, lookup_us, price_change_ms).

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import nats
import trio
from nats.js.api import StorageType, StreamConfig

from bench import catalog_sync
from bench.figures import progress, ratio, summary
from hub.catalog import changes, service
from hub.catalog.barcodes import gs1_check_digit
from hub.catalog.importer import import_catalog
from hub.catalog.publisher import items_since, publish_forever, publish_pipelined, publish_tenant
from hub.db import create_pool, migrate
from novapos.adapters.nats import NatsLink
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.wire.catalog import encode

HEADER = "product,product_name,tax_class,attributes,sku,barcodes,price,price_overrides\n"
TENANCY = """
INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo Retail', 'EUR');
INSERT INTO regions (tenant, region, name) VALUES ('demo', 'north', 'North'), ('demo', 'south', 'South');
INSERT INTO stores (tenant, store, region, name) VALUES ('demo', 'store-001', 'north', 'Harbour Street');
"""


def ean13(number: int) -> str:
    body = f"20{number:010d}"
    return body + str(gs1_check_digit(body))


def synthetic_csv(products: int, *, start: int = 0) -> bytes:
    """`products` products of one variant each, one EAN-13 each, every tenth with a price for region south."""
    lines = [HEADER]
    for n in range(start, start + products):
        override = f"region:south={n % 50}.49" if n % 10 == 0 else ""
        lines.append(f"P{n},Product number {n},{'reduced' if n % 3 == 0 else 'standard'},,SKU{n},{ean13(n)},"
                     f"{n % 90 + 1}.{n % 100:02d},{override}\n")
    return "".join(lines).encode()


async def copy_floor(pool: asyncpg.Pool, data: bytes) -> float:
    """The same rows, parsed by the csv module and COPY'd into keyed scratch tables: no checks, no merge."""
    async with pool.acquire() as conn:
        for table in ("products", "variants", "barcodes", "prices"):
            await conn.execute(f"CREATE TABLE scratch_{table} (LIKE {table} INCLUDING DEFAULTS INCLUDING INDEXES)")
        started = time.perf_counter()
        rows = list(csv.reader(io.StringIO(data.decode()), strict=True))[1:]
        now = time.time()
        at = datetime.fromtimestamp(now, UTC)
        none: list[str] = []
        products = [("demo", r[0], r[1], r[2], none, True, 1) for r in rows]
        variants = [("demo", r[4], r[0], none, r[1], True, 1) for r in rows]
        barcodes = [("demo", r[5], r[4]) for r in rows]
        prices = [("demo", r[4], "tenant", "", at, int(r[6].replace(".", "")), 1) for r in rows]
        prices += [("demo", r[4], "region", "south", at, int(r[7].split("=")[1].replace(".", "")), 1) for r in rows if r[7]]
        async with conn.transaction():
            for table, records in (("products", products), ("variants", variants), ("barcodes", barcodes),
                                   ("prices", prices)):
                await conn.copy_records_to_table(f"scratch_{table}", records=records)
        return time.perf_counter() - started


async def publish_floor(link: NatsLink, payloads: list[tuple[str, bytes]]) -> float:
    """The same bytes, published the same pipelined way to a scratch stream of the same kind: no database, no
    encoding."""
    await link.js.add_stream(StreamConfig(name="SCRATCH", subjects=["scratch.>"], storage=StorageType.FILE,
                                          max_msgs_per_subject=1))
    started = time.perf_counter()
    await publish_pipelined(link.client, [(f"scratch.{subject}", payload) for subject, payload in payloads], 0)
    return time.perf_counter() - started


async def price_changes(pool: asyncpg.Pool, link: NatsLink, server: EmbeddedNats, count: int) -> list[float]:
    """Price changes through the service, each timed until its marker is on the stream, the publisher running."""
    client = await nats.connect(server.url, **server.client_options())
    markers: asyncio.Queue[float] = asyncio.Queue()

    async def marker(_message: object) -> None:
        await markers.put(time.perf_counter())
    await client.subscribe("catalog.demo.version", cb=marker)
    publisher = asyncio.create_task(publish_forever(pool, link, ["demo"]))
    samples = []
    try:
        await asyncio.sleep(1.0)
        for number in range(count):
            started = time.perf_counter()
            await service.set_price(pool, "demo", changes.PriceChange(f"SKU{number}", "tenant", "", None, 100 + number))
            samples.append(await asyncio.wait_for(markers.get(), 10) - started)
            await asyncio.sleep(0.2)
    finally:
        publisher.cancel()
        await client.close()
    return samples


async def main(products: int, changes_count: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-catalog-") as folder:
        state = Path(folder)
        state.chmod(0o755)
        with EmbeddedNats(state / "nats") as nats_server, EmbeddedPostgres(state / "pg") as postgres:
            pool = await create_pool(postgres.url(), max_size=4)
            await migrate(pool)
            await pool.execute(TENANCY)
            for tax_class in ("standard", "reduced"):
                await service.save_tax_class(pool, "demo", changes.TaxClassChange(tax_class, tax_class, (("north", 200_000),)))
            data = synthetic_csv(products)
            progress(f"import: {products} products from CSV ({len(data) >> 20} MiB)")
            imported = await import_catalog(pool, "demo", data, progress)
            assert not imported.errors and imported.landed == products
            progress("import again: the same file, nothing changes")
            again = await import_catalog(pool, "demo", data, progress)
            assert again.changed_variants == 0
            progress("floor: the same rows by raw COPY into scratch tables")
            floor = await copy_floor(pool, data)
            link = nats_server.hub_link("bench")
            await link.connect()
            progress("publish: the whole catalog to a new stream")
            started = time.perf_counter()
            await publish_tenant(pool, link, "demo")
            published = time.perf_counter() - started
            async with pool.acquire() as conn:
                payloads = [(f"item.{item.sku}", encode(item)) for item in await items_since(conn, "demo", 0)]
            progress("floor: the same bytes published raw, pipelined")
            raw = await publish_floor(link, payloads)
            progress(f"price changes: {changes_count}, each until its marker is on the stream")
            latencies = await price_changes(pool, link, nats_server, changes_count)
            await link.close()
            await pool.close()
    return {
        "import_s": round(imported.seconds, 2), "import_floor_s": round(floor, 2),
        "import_floor_ratio": ratio(imported.seconds, floor),
        "reimport_unchanged_s": round(again.seconds, 2),
        "publish_s": round(published, 2), "publish_items_per_s": round(products / published),
        "publish_floor_s": round(raw, 2), "publish_floor_ratio": ratio(published, raw),
        "price_change_to_stream_ms": summary(latencies),
        "products": products, "python": platform.python_version(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=20)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    hub_side = asyncio.run(main(arguments.products, arguments.changes))
    store_side = trio.run(catalog_sync.main, arguments.products, arguments.changes)
    print(json.dumps({**hub_side, **store_side}))
