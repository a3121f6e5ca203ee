"""A store's first load from the hub's catalog snapshot (actors.catalog.snapshot) on real NATS, logged in as
the store: a few chunk messages instead of one per item, changes after it through the per-item path, a
torn snapshot falling back to reading every item, a rebuilt stream resynced through its new snapshot."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
import trio

from actors.catalog.decoding import snapshot_item
from actors.catalog.snapshot import snapshot_rows
from edge_runtime import AsyncioSeam
from hub.app import run_hub
from hub.catalog import changes, publisher, service
from hub.catalog.importer import import_catalog
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.validators import Invalid
from novapos.wire.catalog import (
    MAX_CHUNK_BYTES,
    Item,
    Message,
    SnapshotHead,
    VersionMarker,
    catalog_stream,
    decode,
    decode_chunk,
    decode_head,
    encode_chunks,
    encode_head,
    snapshot_chunk_subject,
    snapshot_subject,
    version_subject,
)
from tests.catalog import TENANT, demo_catalog, item, publish_catalog, publish_raw, snapshot_messages
from tests.catalog_support import catalog_pool
from tests.conftest import wait_until
from tests.test_catalog_publisher import CATALOG
from tests.test_catalog_sync import COFFEE_BARCODE, delete_stream, metric, price_of, syncing, version_is

READ = "novapos_edge_catalog_messages_read_total"
SNAPSHOT_READ = "novapos_edge_catalog_snapshot_messages_read_total"


def catalog(version: int = 1, count: int = 300, price: int = 100) -> list[Message]:
    """The demo catalog with `count` more items, closed by its marker."""
    return [*demo_catalog(version)[:-1],
            *(item(f"SKU-{n:04d}", f"20{n:011d}", f"Item {n}", price + n, version=version) for n in range(count)),
            VersionMarker(version, 0)]


async def test_a_new_store_loads_the_snapshot_in_a_few_messages_then_follows_the_items(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    messages = catalog()
    sequences = await publish_catalog(nats_server, messages)
    snapshot = snapshot_messages(messages, "snap-1", sequences[-1], per_chunk=100)
    await publish_raw(nats_server, TENANT, snapshot)
    assert len(snapshot) == 5  # 305 items in 4 chunks, and the head
    read, loaded = metric(READ), metric(SNAPSHOT_READ)
    state = tmp_path / "edge"
    async with syncing(nats_server, state) as tree:
        await wait_until(lambda: version_is(state, 1))
        await trio.sleep(0.5)  # anything more would have arrived by now
        assert metric(SNAPSHOT_READ) - loaded == 5
        # The snapshot's 5 messages, then the per-item path from after the marker, which does not follow the
        # snapshot's subjects: nothing more.
        assert metric(READ) - read == 5, "the store read the items one by one"
        assert (price_of(state, "2000000000007"), price_of(state, COFFEE_BARCODE), price_of(state, "MLK-1L")) == (
            107, 499, 129)
        # A change after the snapshot arrives through the per-item path, whole at its marker.
        await publish_catalog(nats_server, [item("SKU-0007", "2000000000007", "Item 7", 999, version=2),
                                            VersionMarker(2, 0)])
        await wait_until(lambda: version_is(state, 2))
        status = await tree.ask("catalog", "status")
    assert price_of(state, "2000000000007") == 999 and metric(READ) - read == 7
    assert status["stream_seq"] == sequences[-1] + len(snapshot) + 2


async def test_a_torn_snapshot_falls_back_to_every_item_and_ends_correct(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    messages = catalog(price=200)
    sequences = await publish_catalog(nats_server, messages)
    old = snapshot_messages(messages, "snap-old", sequences[-1], per_chunk=100)
    new = snapshot_messages(messages, "snap-new", sequences[-1], per_chunk=100)
    # The hub was republishing: chunk 2 is still the old snapshot's when the new head is read.
    await publish_raw(nats_server, TENANT, [*new[:2], old[2], new[3], new[4]])
    loaded, read = metric(SNAPSHOT_READ), metric(READ)
    state = tmp_path / "edge"
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 1))
    assert metric(SNAPSHOT_READ) - loaded == 5  # read, found torn, and dropped
    assert metric(READ) - read >= len(messages)  # every item read one by one
    assert (price_of(state, "2000000000299"), price_of(state, COFFEE_BARCODE)) == (499, 499)


async def test_a_missing_chunk_falls_back(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    messages = catalog(count=50)
    sequences = await publish_catalog(nats_server, messages)
    snapshot = snapshot_messages(messages, "snap-1", sequences[-1], per_chunk=10)
    await publish_raw(nats_server, TENANT, [*snapshot[:3], *snapshot[4:]])  # chunk 3 never arrived
    state = tmp_path / "edge"
    read = metric(READ)
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 1))
    assert metric(READ) - read >= len(messages) and price_of(state, "2000000000049") == 149


async def test_a_rebuilt_stream_is_resynced_through_its_new_snapshot(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    state = tmp_path / "edge"
    await publish_catalog(nats_server, catalog(3, count=50, price=5))
    resyncs = metric("novapos_edge_catalog_resyncs_total")
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 3))
    await delete_stream(nats_server)  # while the store is away, the hub rebuilds its stream: other items, a snapshot
    rebuilt = [*demo_catalog(4)[:-1], item("COF-250", COFFEE_BARCODE, "Ground coffee 250 g", 599, version=4),
               *(item(f"NEW-{n}", f"40{n:011d}", f"New {n}", 7, version=4) for n in range(120)), VersionMarker(4, 0)]
    sequences = await publish_catalog(nats_server, rebuilt)
    await publish_raw(nats_server, TENANT, snapshot_messages(rebuilt, "snap-4", sequences[-1], per_chunk=50))
    loaded, read = metric(SNAPSHOT_READ), metric(READ)
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 4))
        await trio.sleep(0.3)
    assert metric("novapos_edge_catalog_resyncs_total") == resyncs + 1
    assert metric(SNAPSHOT_READ) - loaded == 4 and metric(READ) - read == 4  # 126 items in 3 chunks and a head
    assert (price_of(state, COFFEE_BARCODE), price_of(state, "4000000000119")) == (599, 7)
    assert "no item has barcode or SKU '2000000000007'" in str(price_of(state, "2000000000007"))  # gone with it


def test_snapshot_messages_are_checked_like_item_messages() -> None:
    messages = catalog(count=10)
    chunks = encode_chunks("s1", [m for m in messages if isinstance(m, Item)], [], 4)
    head = SnapshotHead("s1", 1, 17, len(chunks))
    assert decode_head(encode_head(head)) == head
    loaded = snapshot_rows(head, chunks)
    assert not isinstance(loaded, str) and len(loaded[1]) == 15 and loaded[3] == []
    assert snapshot_rows(head, chunks[1:]) == f"1 of its {len(chunks)} chunks are missing (the first: 0)"
    other = encode_chunks("s2", [m for m in messages if isinstance(m, Item)], [], 4)
    assert "belongs to snapshot s2, not s1" in str(snapshot_rows(head, [chunks[0], other[1], *chunks[2:]]))
    assert "unreadable" in str(snapshot_rows(head, [b"\xc1", *chunks]))
    body = decode_chunk(chunks[0]).items[0]
    assert "prices" in str(snapshot_item({**body, "prices": [["tenant", "", 0, -1]]}))
    assert snapshot_item({**body, "name": " trimmed "})[2] == "trimmed"  # type: ignore[index]
    for bad in (b"\x80", encode_head(SnapshotHead("s 1", 1, 1, 1)), encode_head(SnapshotHead("s", 1, 1, 0))):
        with pytest.raises(Invalid):
            decode_head(bad)
    assert snapshot_chunk_subject(TENANT, 3) == f"catalog.{TENANT}.snapshot.3"


def test_a_chunk_never_passes_its_byte_limit_whatever_the_items_hold() -> None:
    big = [item(f"BIG-{n}", f"20{n:011d}", "x" * 200, 100) for n in range(3000)]
    chunks = encode_chunks("s1", big, [], per_chunk=3000)
    assert len(chunks) > 1 and all(len(chunk) <= MAX_CHUNK_BYTES for chunk in chunks)
    assert [decode_chunk(chunk).index for chunk in chunks] == list(range(len(chunks)))
    assert sum(len(decode_chunk(chunk).items) for chunk in chunks) == 3000


async def test_the_hub_publishes_a_snapshot_after_the_marker_and_a_new_store_loads_it(
        hub_config: HubConfig, nats_server: EmbeddedNats, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher, "SNAPSHOT_MIN_ITEMS", 1)  # the test's catalog is three variants,
    monkeypatch.setattr(publisher, "SNAPSHOT_ITEMS", 2)  # two items a chunk: two chunks
    monkeypatch.setattr(publisher, "SNAPSHOT_PAGE", 1)  # read one at a time
    with AsyncioSeam() as seam:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            pool = await seam.run(catalog_pool, hub_config.database_url)
            await seam.run(import_catalog, pool, "demo", CATALOG)

            async def head() -> tuple[SnapshotHead, int, int] | None:
                async def read() -> tuple[SnapshotHead, int, int] | None:
                    link = nats_server.hub_link("test-snapshot-head")
                    await link.connect()
                    try:
                        stream = catalog_stream(TENANT)
                        stored = await link.js.get_last_msg(stream, snapshot_subject(TENANT))
                        marker = await link.js.get_last_msg(stream, version_subject(TENANT))
                        return (decode_head(stored.data or b""), marker.seq or 0,
                                decode("version", marker.data or b"").version)
                    except nats.js.errors.NotFoundError:
                        return None
                    finally:
                        await link.close()
                return await seam.run(read)
            found = await wait_until(head, timeout=20)
            snapshot, marker_seq, version = found
            assert (snapshot.version, snapshot.stream_seq, snapshot.chunks) == (version, marker_seq, 2)

            state = tmp_path / "edge"
            loaded, read = metric(SNAPSHOT_READ), metric(READ)
            async with syncing(nats_server, state):
                await wait_until(lambda: version_is(state, version))
                assert metric(SNAPSHOT_READ) - loaded == 3  # the head and its two chunks
                assert price_of(state, "4006381333931") == 1999 and price_of(state, "96385074") == 129
                # A change after it: its item and marker through the per-item path; no new snapshot for one version.
                await seam.run(service.set_price, pool, "demo",
                               changes.price_from_json({"sku": "MLK-1L", "amount_minor": 119}))
                await wait_until(lambda: version_is(state, version + 1))
                assert price_of(state, "96385074") == 119
            assert metric(READ) - read == 3 + 2  # the snapshot, then the item and the marker (not the snapshot again)
            again = await wait_until(head, timeout=5)
            assert again[0] == snapshot  # two messages behind: not worth republishing
            # Once enough came after it, the next version is followed by a new snapshot of that version.
            monkeypatch.setattr(publisher, "SNAPSHOT_BEHIND", 2)
            await seam.run(service.set_price, pool, "demo",
                           changes.price_from_json({"sku": "MLK-1L", "amount_minor": 109}))

            async def republished() -> tuple[SnapshotHead, int, int] | None:
                found = await head()
                return found if found is not None and found[0].version == version + 2 else None
            newer, marker_seq, _version = await wait_until(republished, timeout=10)
            assert newer.snapshot != snapshot.snapshot and newer.stream_seq == marker_seq
            await seam.run(pool.close)
            nursery.cancel_scope.cancel()
