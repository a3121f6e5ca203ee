"""The catalog sync (actors.catalog.sync) against a real NATS stream and the real SQLite file: cold sync,
a day offline caught up with only what changed, never half a version, a rebuilt stream resynced in full,
bad messages skipped with their reason."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from prometheus_client import REGISTRY

from actors.catalog.local import CatalogWriter, LocalCatalog, Offer, catalog_path
from actors.catalog.sync import CatalogSyncActor
from edge_runtime import AsyncioSeam, ChildSpec, SupervisorSpec, Tree, supervision_tree
from novapos.adapters.nats import NatsLink, store_inbox_prefix
from novapos.demo.embedded_nats import EmbeddedNats, nats_server_binary
from novapos.demo.processes import ManagedProcess, free_port, wait_for_port
from novapos.pricing import Price
from novapos.wire.catalog import Item, VersionMarker, catalog_stream, encode, item_subject
from tests.catalog import DEMO_PRODUCTS, REGION, TENANT, demo_catalog, item, publish_catalog, publish_raw
from tests.conftest import wait_until

STORE = "store-001"
COFFEE_BARCODE = "4006381333931"


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@asynccontextmanager
async def syncing(server: EmbeddedNats | str, state_dir: Path) -> AsyncIterator[Tree]:
    """The catalog sync actor alone in a tree, on its own seam and NATS link, as the edge runs it: logged in
    as the store (the test server's demo/store-001 user, or a URL that carries its own user)."""
    with AsyncioSeam() as seam:
        link = NatsLink(server, "test-catalog-sync") if isinstance(server, str) else NatsLink(
            server.url, "test-catalog-sync", credentials=server.store_credentials(TENANT, STORE),
            inbox_prefix=store_inbox_prefix(TENANT, STORE), tls=server.client_tls())
        spec = SupervisorSpec("test", children=[ChildSpec("catalog", CatalogSyncActor,
                                                          (seam, link, state_dir, TENANT, 4096, 0.2))])
        try:
            async with supervision_tree(spec) as tree:
                yield tree
        finally:
            await seam.run(link.close)


def reader(state_dir: Path) -> LocalCatalog:
    return LocalCatalog(catalog_path(state_dir), STORE, REGION)


def now_ms() -> int:
    return int(time.time() * 1000)


async def version_is(state_dir: Path, version: int) -> bool:
    if not catalog_path(state_dir).exists():
        return False
    catalog = reader(state_dir)
    try:
        return catalog.version() == version
    finally:
        catalog.close()


def price_of(state_dir: Path, code: str) -> int | str:
    catalog = reader(state_dir)
    try:
        offer = catalog.offer(code, now_ms())
        return offer.unit_minor if isinstance(offer, Offer) else offer
    finally:
        catalog.close()


def read_at_least(count: float) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return metric("novapos_edge_catalog_messages_read_total") >= count
    return check


async def test_a_new_store_cold_syncs_the_catalog_and_its_tills_can_price_every_item(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    await publish_catalog(nats_server, demo_catalog())
    state = tmp_path / "edge"
    async with syncing(nats_server, state) as tree:
        await wait_until(lambda: version_is(state, 1))
        status = await tree.ask("catalog", "status")
    assert status["catalog_version"] == 1 and status["stream_seq"] == len(demo_catalog())
    catalog = reader(state)
    offers = [catalog.offer(barcode, now_ms()) for _sku, barcode, _name, _price in DEMO_PRODUCTS]
    assert [(o.sku, o.unit_minor, o.rate_ppm, o.included, o.catalog_version) for o in offers  # type: ignore[union-attr]
            ] == [(sku, price, 70_000, True, 1) for sku, _barcode, _name, price in DEMO_PRODUCTS]
    assert isinstance(catalog.offer("MLK-1L", now_ms()), Offer)  # a SKU typed in works as well as its barcode
    catalog.close()


async def test_a_store_offline_for_a_day_reads_only_what_changed(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    many = [item(f"SKU-{n:04d}", f"20{n:011d}", f"Item {n}", 100 + n) for n in range(300)]
    await publish_catalog(nats_server, [*demo_catalog()[:-1], *many, VersionMarker(1, 0)])
    state = tmp_path / "edge"
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 1))
    # The store is away; the hub changes two items (one of them twice) and closes version 2.
    changes = [item("SKU-0007", "2000000000007", "Item 7", 999, version=2),
               item("COF-250", COFFEE_BARCODE, "Ground coffee 250 g", 529, version=2),
               item("SKU-0007", "2000000000007", "Item 7", 1099, version=2), VersionMarker(2, 0)]
    await publish_catalog(nats_server, changes)
    read, resyncs = metric("novapos_edge_catalog_messages_read_total"), metric("novapos_edge_catalog_resyncs_total")
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 2))
        await trio.sleep(0.5)  # anything more would have arrived by now
    # The stream kept one message per subject: the two items' last versions and the marker, nothing else.
    assert metric("novapos_edge_catalog_messages_read_total") - read == 3
    assert metric("novapos_edge_catalog_resyncs_total") == resyncs
    assert (price_of(state, "2000000000007"), price_of(state, COFFEE_BARCODE), price_of(state, "SKU-0008")) == (
        1099, 529, 108)


async def test_half_a_version_is_never_visible_until_its_marker_arrives(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    await publish_catalog(nats_server, demo_catalog())
    state = tmp_path / "edge"
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 1))
        read = metric("novapos_edge_catalog_messages_read_total")
        await publish_catalog(nats_server, [item("COF-250", COFFEE_BARCODE, "Ground coffee 250 g", 549, version=2),
                                                item("NEW-1", "2000000000091", "New thing", 100, version=2)])
        await wait_until(read_at_least(read + 2))  # the sync has both, staged in its open transaction
        assert (price_of(state, COFFEE_BARCODE), await version_is(state, 1)) == (499, True)
        assert "no item has barcode or SKU '2000000000091'" in str(price_of(state, "2000000000091"))
        await publish_catalog(nats_server, [VersionMarker(2, 0)])
        await wait_until(lambda: version_is(state, 2))
        assert (price_of(state, COFFEE_BARCODE), price_of(state, "2000000000091")) == (549, 100)


async def delete_stream(server: EmbeddedNats) -> None:
    async def run() -> None:
        link = server.hub_link("test-rebuild")
        await link.connect()
        await link.js.delete_stream(catalog_stream(TENANT))
        await link.close()
    await trio.to_thread.run_sync(asyncio.run, run())


async def test_a_stream_rebuilt_on_the_hub_is_resynced_in_full_and_swapped_in_at_once(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    state = tmp_path / "edge"
    await publish_catalog(nats_server, [*demo_catalog(3)[:-1], *(item(f"OLD-{n}", f"30{n:011d}", f"Old {n}", 5)
                                                                      for n in range(50)), VersionMarker(3, 0)])
    resyncs = metric("novapos_edge_catalog_resyncs_total")
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 3))
        await delete_stream(nats_server)  # the hub rebuilds its stream: fewer items, lower sequences
        rebuilt = [*demo_catalog(4)[:-1], item("COF-250", COFFEE_BARCODE, "Ground coffee 250 g", 599, version=4)]
        await publish_catalog(nats_server, rebuilt)
        await trio.sleep(1.0)  # the resync has read the items; no marker yet: the old catalog is still served
        assert (price_of(state, COFFEE_BARCODE), price_of(state, "3000000000007")) == (499, 5)
        await publish_catalog(nats_server, [VersionMarker(4, 0)])
        await wait_until(lambda: version_is(state, 4))
    assert metric("novapos_edge_catalog_resyncs_total") == resyncs + 1
    assert price_of(state, COFFEE_BARCODE) == 599
    assert "no item has barcode or SKU '3000000000007'" in str(price_of(state, "3000000000007"))  # gone with it


async def test_bad_catalog_messages_are_skipped_with_their_reason_and_the_rest_applies(
        nats_server: EmbeddedNats, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="actors.catalog.sync")
    good = item("COF-250", COFFEE_BARCODE, "Ground coffee 250 g", 499)
    negative = encode(good).replace(b"\xcd\x01\xf3", b"\xd1\xfe\x0d")  # the price 499 as -499
    assert negative != encode(good)
    skipped = metric("novapos_edge_catalog_messages_skipped_total")
    await publish_raw(nats_server, TENANT, [
        (item_subject(TENANT, "JUNK"), b"\xc1 not msgpack"),
        (item_subject(TENANT, "NEG"), negative.replace(b"COF-250", b"NEG-001")),
        (item_subject(TENANT, "TEA-1"), encode(good)),  # the coffee on the tea's subject
        (f"catalog.{TENANT}.gadget.x", b"\x80"),  # a kind the store does not follow: never delivered
    ])
    await publish_catalog(nats_server, demo_catalog())
    state = tmp_path / "edge"
    async with syncing(nats_server, state) as tree:
        await wait_until(lambda: version_is(state, 1))
        restarts = tree.restarts
    assert restarts == 0, "a bad message crashed the sync"
    assert metric("novapos_edge_catalog_messages_skipped_total") - skipped == 3
    reasons = "\n".join(record.getMessage() for record in caplog.records)
    for expected in ("is not msgpack", "prices[0] minor must be from 0", "COF-250 came on another subject"):
        assert expected in reasons, reasons
    assert price_of(state, COFFEE_BARCODE) == 499 and price_of(state, "MLK-1L") == 129


async def test_a_till_refuses_what_it_cannot_sell_with_a_sentence(tmp_path: Path) -> None:
    from tests.catalog import seed_catalog
    seed_catalog(tmp_path, [*demo_catalog()[:-1],
                            item("OLD-1", "2000000000107", "Discontinued", 100, active=False),
                            item("LATER-1", "2000000000114", "Not yet", 0, prices=[Price("tenant", "", now_ms() + 10**8, 5)]),
                            item("SOUTH-1", "2000000000121", "Southern only", 0, prices=[Price("region", "south", 0, 7)]),
                            Item("TAXLESS", "TAXLESS", "Untaxed", (), "luxury", ("2000000000138",),
                                 (Price("tenant", "", 0, 10),), True, 1),
                            VersionMarker(1, 0)])
    assert "no item has barcode or SKU '999'" in str(price_of(tmp_path, "999"))
    assert "Discontinued (OLD-1) is no longer sold" in str(price_of(tmp_path, "2000000000107"))
    assert "Not yet (LATER-1) has no price in force" in str(price_of(tmp_path, "2000000000114"))
    assert "Southern only (SOUTH-1) has no price in force" in str(price_of(tmp_path, "2000000000121"))
    assert "no tax rate for its class luxury in region north" in str(price_of(tmp_path, "2000000000138"))
    assert "has no catalog yet" in str(price_of(tmp_path / "nowhere", COFFEE_BARCODE))


async def test_a_catalog_file_locked_by_another_program_delays_the_version_and_crashes_nothing(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    state = tmp_path / "edge"
    await publish_catalog(nats_server, demo_catalog())
    async with syncing(nats_server, state) as tree:
        await wait_until(lambda: version_is(state, 1))
        backup = sqlite3.connect(catalog_path(state), isolation_level=None)
        backup.execute("BEGIN IMMEDIATE")  # a backup, a sqlite3 shell left in a transaction
        await publish_catalog(nats_server, [item("COF-250", COFFEE_BARCODE, "Ground coffee 250 g", 559, version=2),
                                                VersionMarker(2, 0)])
        await trio.sleep(3.0)  # more than the writer's wait for the lock: the sync has given up once
        assert price_of(state, COFFEE_BARCODE) == 499 and tree.restarts == 0
        backup.execute("ROLLBACK")
        backup.close()
        await wait_until(lambda: version_is(state, 2), timeout=20)
        assert price_of(state, COFFEE_BARCODE) == 559 and tree.restarts == 0


STORE_PERMISSIONS = """
authorization {
  users: [
    {user: hub, password: hub}
    {user: store, password: store, permissions: {
      publish: {allow: ["$JS.API.STREAM.INFO.CATALOG_demo", "$JS.API.CONSUMER.CREATE.CATALOG_demo.*",
                        "$JS.API.CONSUMER.CREATE.CATALOG_demo.*.catalog.demo.>",
                        "$JS.API.CONSUMER.MSG.NEXT.CATALOG_demo.*"]}
      subscribe: {allow: ["_INBOX.>"]}
    }}
  ]
}
"""


async def test_the_sync_needs_only_read_access_to_its_own_catalog_stream(tmp_path: Path) -> None:
    """A store user allowed nothing but the JetStream calls the sync's docstring lists (no publishing on
    catalog subjects, no stream changes) cold-syncs and follows its catalog."""
    port = free_port()
    config = tmp_path / "nats.conf"
    config.write_text(f'listen: "127.0.0.1:{port}"\njetstream {{store_dir: "{tmp_path / "js"}"}}\n{STORE_PERMISSIONS}')
    server = ManagedProcess("nats-server", [nats_server_binary(), "-c", str(config)], tmp_path / "nats.log")
    server.spawn()
    try:
        await trio.to_thread.run_sync(wait_for_port, "127.0.0.1", port, 20.0)
        hub, store = f"nats://hub:hub@127.0.0.1:{port}", f"nats://store:store@127.0.0.1:{port}"
        await publish_catalog(hub, demo_catalog())
        state = tmp_path / "edge"
        async with syncing(store, state):
            await wait_until(lambda: version_is(state, 1))
            await publish_catalog(hub, [item("COF-250", COFFEE_BARCODE, "Ground coffee 250 g", 579, version=2),
                                        VersionMarker(2, 0)])
            await wait_until(lambda: version_is(state, 2))
        assert price_of(state, COFFEE_BARCODE) == 579
        with pytest.raises(Exception, match="(?i)permissions|timeout|no response"):  # the store cannot write the catalog
            await publish_catalog(store, [VersionMarker(3, 0)])
    finally:
        server.stop()


async def test_nats_away_leaves_the_catalog_served_and_the_sync_catches_up_when_it_returns(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    state = tmp_path / "edge"
    await publish_catalog(nats_server, demo_catalog())
    resyncs = metric("novapos_edge_catalog_resyncs_total")
    async with syncing(nats_server, state) as tree:
        await wait_until(lambda: version_is(state, 1))
        await trio.to_thread.run_sync(nats_server.stop)
        await trio.sleep(1.5)  # the sync has noticed
        assert price_of(state, COFFEE_BARCODE) == 499  # offline scans go on
        assert (await tree.ask("catalog", "status"))["catalog_sync"] == "offline"
        await trio.to_thread.run_sync(nats_server.start)
        await publish_catalog(nats_server, [item("COF-250", COFFEE_BARCODE, "Ground coffee 250 g", 589, version=2),
                                                VersionMarker(2, 0)])
        await wait_until(lambda: version_is(state, 2), timeout=30)
        assert price_of(state, COFFEE_BARCODE) == 589 and tree.restarts == 0
    assert metric("novapos_edge_catalog_resyncs_total") == resyncs  # the same stream: it resumed, no resync


CRASHING_LOAD = """
import sys, time
from pathlib import Path
from actors.catalog.local import CatalogWriter, catalog_path
from actors.catalog.decoding import decode_one
from novapos.pricing import Price
from novapos.wire.catalog import Item, encode
writer = CatalogWriter(catalog_path(Path(sys.argv[1])))
if writer.meta().stream_id:
    writer.clear()  # a resync: the old version is emptied in the open transaction
for start in range(0, 20_000, 4096):
    writer.stage([decode_one(f"catalog.demo.item.BIG-{n}", encode(Item(
        f"BIG-{n}", "P", "Big", (), "food", (f"4{n:012d}",), (Price("tenant", "", 0, 1),), True, 2)))
        for n in range(start, min(start + 4096, 20_000))])
print("staged", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("seeded", [False, True], ids=["a new store's first sync", "a resync over version 1"])
def test_a_sync_killed_mid_load_leaves_the_version_before_it_whole(tmp_path: Path, seeded: bool) -> None:
    """kill -9 with 20,000 items staged (a cold load into a new file, or a resync emptying the old version):
    the file holds what it held before, every table of it, and the next sync starts from there."""
    state = tmp_path / "edge"
    if seeded:
        from tests.catalog import seed_catalog
        seed_catalog(state)
    loader = subprocess.Popen([sys.executable, "-c", CRASHING_LOAD, str(state)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parent.parent)
    try:
        assert loader.stdout is not None and loader.stdout.readline() == "staged\n"
    finally:
        loader.send_signal(signal.SIGKILL)
        loader.wait()
    db = sqlite3.connect(catalog_path(state))
    counts = [db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("items", "barcodes", "prices")]
    meta = db.execute("SELECT catalog_version, stream_id FROM meta").fetchone()
    db.close()
    assert (counts, meta) == (([5, 5, 5], (1, "seeded")) if seeded else ([0, 0, 0], (0, "")))
    if seeded:
        assert price_of(state, COFFEE_BARCODE) == 499
    assert "no item has barcode or SKU '4000000000007'" in str(price_of(state, "4000000000007"))
    writer = CatalogWriter(catalog_path(state))  # what the sync opens next: the file is whole and writable
    assert writer.meta().catalog_version == (1 if seeded else 0)
    writer.close()
