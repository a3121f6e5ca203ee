"""Catalog-to-store benchmark: a new store's cold sync, the till's barcode lookup and a price change's way to
the till, each beside a floor measured in the same run.

    python -m bench.catalog_sync [--items 100000]

Real parts throughout: embedded NATS (JetStream), the hub's catalog stream as novapos.wire.catalog
defines it (one subject per item, settings, a tax class, then the version marker, then the snapshot of that
version as the hub publishes it: its chunks, then its head), the edge's catalog
sync actor on its asyncio seam, the store's catalog.sqlite3 and a till's LocalCatalog. Figures:

- cold_sync_s: a new store (empty state folder) from the sync actor's start until the tills see the
  version (every item decoded, validated and applied in one SQLite transaction), through the snapshot
  (`--per-item`: with no snapshot on the stream, every item message read one by one, as before it).
- replay_floor_s: the per-item messages (the same bytes) read raw from JetStream by one pull consumer with
  the sync's own reader (actors.catalog.pull) and batch size, from creating the consumer to the last
  message, decoding nothing: what moving the item messages alone costs. cold_sync_ratio = cold_sync_s / floor.
- snapshot_floor_s: the snapshot's head and chunks read raw the way the sync reads them
  (actors.catalog.snapshot.read_snapshot), decoding nothing; snapshot_floor_ratio = cold_sync_s / it.
  snapshot_chunks, snapshot_chunk_max_kb: how many chunks, and the largest (NATS's payload limit is 1 MB).
- decode_us, apply_us: where a cold sync's CPU goes, per item, measured alone on this thread after it
  (CPU time, not wall): decoding and validating one message into its row (actors.catalog.decoding),
  and staging the rows into an empty catalog file and committing them (actors.catalog.local). What the
  sync adds to the replay floor is about these two, less what overlaps with receiving.
- lookup_us: a till's lookup of a random barcode (barcode -> SKU -> item, its prices and the price in
  force, its tax rate, the version, in one read transaction), median and p99 in microseconds;
  lookup_floor_us: a bare SQLite primary-key select of the barcode on the same file.
- price_change_ms: a changed item and its version marker published, until a till's lookup sees the new
  price (median and p99 over `changes` changes).

Targets (issue 7): cold sync <= 5 s at 100,000 items, price change <= 2 s, lookup well under 1 ms.
Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actors.catalog.decoding import decode_one
from actors.catalog.local import CatalogWriter, LocalCatalog, Offer, catalog_path
from actors.catalog.pull import Puller
from actors.catalog.snapshot import read_snapshot
from actors.catalog.sync import CatalogSyncActor
from bench.figures import progress, ratio, summary
from edge_runtime import AsyncioSeam, ChildSpec, SupervisorSpec, supervision_tree
from novapos.adapters.nats import NatsLink
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.pricing import Price
from novapos.wire.catalog import (
    Item,
    Message,
    Settings,
    SnapshotHead,
    TaxClass,
    VersionMarker,
    catalog_stream,
    catalog_subjects,
    encode,
    encode_chunks,
    encode_head,
    item_subject,
    snapshot_chunk_subject,
    snapshot_subject,
    subject_of,
    version_subject,
)

TENANT = "bench"
STORE = "store-001"
REGION = "north"
BATCH = 4096
LOOKUPS = 20_000


def barcode(number: int) -> str:
    return f"{number:013d}"


def item(number: int, minor: int, version: int) -> Item:
    sku = f"SKU-{number:06d}"
    return Item(sku=sku, product=sku, name=f"Bench item {number}", attributes=(("size", "M"),), tax_class="std",
                barcodes=(barcode(number),), prices=(Price("tenant", "", 0, minor),), active=True, version=version)


def catalog_messages(items: int) -> list[tuple[str, bytes]]:
    """The stream's content as the hub publishes a first version: settings, a tax class, every item, the marker."""
    catalog: list[Message] = [Settings("EUR", True, 1), TaxClass("std", "Standard", ((REGION, 200_000),), 1),
                              *(item(n, 100 + n % 5000, 1) for n in range(items)),
                              VersionMarker(1, int(time.time() * 1000))]
    return [(subject_of(TENANT, message), encode(message)) for message in catalog]


def snapshot_messages(items: int, marker_seq: int) -> list[tuple[str, bytes]]:
    """The snapshot of catalog_messages' version as the hub publishes it: its chunks, then its head."""
    others: list[Settings | TaxClass] = [Settings("EUR", True, 1), TaxClass("std", "Standard", ((REGION, 200_000),), 1)]
    chunks = encode_chunks("bench-1", [item(n, 100 + n % 5000, 1) for n in range(items)], others)
    return [*((snapshot_chunk_subject(TENANT, index), data) for index, data in enumerate(chunks)),
            (snapshot_subject(TENANT), encode_head(SnapshotHead("bench-1", 1, marker_seq, len(chunks))))]


async def publish(link: NatsLink, messages: list[tuple[str, bytes]]) -> int:
    """Publish in order on the core connection (the stream captures every subject), then wait until the
    stream holds them all: fast, and what the stream stores is the same either way. The last sequence."""
    await link.ensure_catalog_stream(TENANT)
    before = (await link.js.stream_info(catalog_stream(TENANT))).state.last_seq or 0
    for index, (subject, data) in enumerate(messages):
        await link.client.publish(subject, data)
        if index % 10_000 == 9_999:
            await link.client.flush()
    await link.client.flush()
    while (await link.js.stream_info(catalog_stream(TENANT))).state.last_seq < before + len(messages):
        await asyncio.sleep(0.01)
    return before + len(messages)


async def snapshot_floor(link: NatsLink, last_seq: int) -> float:
    """Read the snapshot's head and chunks raw, as the sync reads them, decoding nothing."""
    started = time.perf_counter()
    found = await read_snapshot(link, TENANT, last_seq)
    elapsed = time.perf_counter() - started
    assert not isinstance(found, str), found
    return elapsed


async def replay_floor(link: NatsLink, count: int) -> float:
    """Read `count` messages of the stream from its start, raw (the sync's own pull reader and batch size,
    nothing decoded or applied)."""
    started = time.perf_counter()
    await link.js.add_consumer(catalog_stream(TENANT), ConsumerConfig(
        name="bench-floor", filter_subject=catalog_subjects(TENANT), deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE, mem_storage=True, inactive_threshold=30.0))
    puller = Puller(link.client, catalog_stream(TENANT), "bench-floor", BATCH)  # as the sync pulls
    await puller.open()
    read = 0
    while read < count:
        read += len(await puller.take(1.0))
    elapsed = time.perf_counter() - started
    await puller.close()
    return elapsed


def cpu_per_item(messages: list[tuple[str, bytes]], folder: Path) -> tuple[float, float]:
    """CPU seconds per item of decoding every message into its row, and of applying the rows to a new file."""
    started = time.process_time()
    rows = [decode_one(subject, data) for subject, data in messages]
    decoded = time.process_time() - started
    items = [row for row in rows if isinstance(row, tuple)]
    marker = rows[-1]
    assert len(items) == len(messages) - 3 and isinstance(marker, VersionMarker)
    writer = CatalogWriter(folder / "apply.sqlite3")
    started = time.process_time()
    for at in range(0, len(items), BATCH):
        writer.stage(items[at:at + BATCH])
    writer.commit(marker, len(messages), "bench")
    applied = time.process_time() - started
    writer.close()
    return decoded / len(messages), applied / len(items)


def wait_for_version(path: Path, version: int) -> None:
    """Until a till reading the catalog file sees `version` (the sync actor is busy while it loads a snapshot:
    the file, not the actor, says when the load is done). One connection, a look every 10 ms: the looking
    takes the GIL from the sync as little as a till would."""
    while not path.exists():
        time.sleep(0.01)
    catalog = LocalCatalog(path, STORE, REGION)
    try:
        while True:
            try:
                if catalog.version() == version:
                    return
            except sqlite3.OperationalError:  # the file is being created
                pass
            time.sleep(0.01)
    finally:
        catalog.close()


def lookups(path: Path, items: int) -> tuple[list[float], list[float]]:
    """LOOKUPS random barcodes through a till's LocalCatalog, and the same as a bare primary-key select."""
    codes = [barcode(random.randrange(items)) for _ in range(LOOKUPS)]
    catalog = LocalCatalog(path, STORE, REGION)
    now = int(time.time() * 1000)
    till, bare = [], []
    for code in codes:
        started = time.perf_counter()
        offer = catalog.offer(code, now)
        till.append(time.perf_counter() - started)
        assert isinstance(offer, Offer), offer
    catalog.close()
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    for code in codes:
        started = time.perf_counter()
        row = db.execute("SELECT sku FROM barcodes WHERE barcode = ?", (code,)).fetchone()
        bare.append(time.perf_counter() - started)
        assert row is not None
    db.close()
    return till, bare


async def price_changes(link: NatsLink, path: Path, items: int, changes: int) -> list[float]:
    """Publish a changed item and its marker, as the hub does, and time until a till's lookup sees it."""
    catalog = LocalCatalog(path, STORE, REGION)
    samples = []
    try:
        for change in range(changes):
            number, version, minor = random.randrange(items), 2 + change, 9_000_000 + change
            started = time.perf_counter()
            await link.js.publish(item_subject(TENANT, f"SKU-{number:06d}"), encode(item(number, minor, version)))
            await link.js.publish(version_subject(TENANT), encode(VersionMarker(version, int(time.time() * 1000))))
            while True:
                offer = catalog.offer(barcode(number), int(time.time() * 1000))
                if isinstance(offer, Offer) and offer.unit_minor == minor:
                    break
                await asyncio.sleep(0.001)
            samples.append(time.perf_counter() - started)
    finally:
        catalog.close()
    return samples


async def measure(server: EmbeddedNats, folder: Path, items: int = 100_000, changes: int = 20,
                  per_item: bool = False) -> dict[str, Any]:
    """Every figure of this benchmark against the NATS `server`, with state under `folder` (the
    tenant `bench`'s catalog stream is created there): for `python -m bench.catalog` to call as well."""
    state = folder / "edge"
    with AsyncioSeam() as seam:
        link = server.hub_link("bench-catalog")
        await seam.run(link.connect)
        messages = catalog_messages(items)
        progress(f"hub side: publishing {items} items, settings, a tax class and the version marker "
                 f"({sum(len(data) for _subject, data in messages) / 1e6:.1f} MB)")
        marker_seq = await seam.run(publish, link, messages)
        snapshot = [] if per_item else snapshot_messages(items, marker_seq)
        if snapshot:
            progress(f"hub side: its snapshot, {len(snapshot) - 1} chunks and the head "
                     f"({sum(len(data) for _subject, data in snapshot) / 1e6:.1f} MB)")
            last_seq = await seam.run(publish, link, snapshot)
        progress("floor: a raw JetStream replay of the per-item messages")
        floor = await seam.run(replay_floor, link, len(messages))
        if snapshot:
            progress("floor: the snapshot read raw")
            floor_snapshot = await seam.run(snapshot_floor, link, last_seq)
        progress("cold sync: a new store's catalog sync actor until the tills see version 1")
        sync_link = server.hub_link("bench-edge-catalog")
        spec = SupervisorSpec("bench", children=[ChildSpec("catalog", CatalogSyncActor,
                                                           (seam, sync_link, state, TENANT, BATCH))])
        started = time.perf_counter()
        async with supervision_tree(spec):
            await trio.to_thread.run_sync(wait_for_version, catalog_path(state), 1)
            cold = time.perf_counter() - started
            progress(f"  {cold:.2f} s; lookups: {LOOKUPS} random barcodes at a till and as a bare select")
            till, bare = await trio.to_thread.run_sync(lookups, catalog_path(state), items)
            progress(f"price changes: {changes}, each until a till's lookup sees it")
            changed = await seam.run(price_changes, link, catalog_path(state), items, changes)
        await seam.run(sync_link.close)
        await seam.run(link.close)
    progress("CPU per item: decoding alone, applying alone")
    decode_s, apply_s = cpu_per_item(messages, folder)
    snapshot_figures: dict[str, Any] = {
        "snapshot_floor_s": round(floor_snapshot, 3), "snapshot_floor_ratio": ratio(cold, floor_snapshot),
        "snapshot_chunks": len(snapshot) - 1,
        "snapshot_chunk_max_kb": round(max(len(data) for _subject, data in snapshot[:-1]) / 1e3, 1),
    } if snapshot else {}
    return {
        "cold_sync_s": round(cold, 3), "replay_floor_s": round(floor, 3), "cold_sync_ratio": ratio(cold, floor),
        **snapshot_figures, "cold_sync_path": "per-item" if per_item else "snapshot",
        "decode_us": round(decode_s * 1e6, 2), "apply_us": round(apply_s * 1e6, 2),
        "lookup_us": summary(till, 1e6, 1), "lookup_floor_us": summary(bare, 1e6, 1),
        "lookup_ratio": ratio(summary(till, 1e6, 3)["median"], summary(bare, 1e6, 3)["median"]),
        "price_change_ms": summary(changed, 1000.0, 1),
        "items": items, "catalog_mb": round(catalog_path(state).stat().st_size / 1e6, 1),
        "python": platform.python_version(),
    }


async def main(items: int, changes: int, per_item: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-catalog-") as folder:
        with EmbeddedNats(Path(folder) / "nats") as nats_server:
            return await measure(nats_server, Path(folder), items, changes, per_item)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--per-item", action="store_true", help="no snapshot on the stream: the cold sync reads "
                        "every item message (the way before snapshots, for comparison)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.items, arguments.changes, arguments.per_item)))
