"""A catalog for tests: the demo store's products, written into a state folder before the edge starts
(`seed_catalog`), or published to a real NATS stream the way the hub does (`publish_catalog`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path

import trio

from actors.catalog.local import write_catalog
from novapos.adapters.nats import NatsLink
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.pricing import Price
from novapos.wire.catalog import (
    Item,
    Message,
    PromotionMessage,
    Settings,
    SnapshotHead,
    TaxClass,
    VersionMarker,
    encode,
    encode_chunks,
    encode_head,
    encode_promotion_chunks,
    snapshot_chunk_subject,
    snapshot_subject,
    subject_of,
)

TENANT = "demo"
REGION = "north"
DEMO_PRODUCTS = (("COF-250", "4006381333931", "Ground coffee 250 g", 499),
                 ("MLK-1L", "5000112637922", "Whole milk 1 l", 129),
                 ("BRD-SD", "7622210449283", "Sourdough loaf", 349),
                 ("APL-KG", "2000000000015", "Apples 1 kg", 279),
                 ("CHO-100", "3017620422003", "Dark chocolate 100 g", 219))
"""(sku, barcode, name, tenant price in cents), as the demo store's TOML listed them."""
FOOD_RATE_PPM = 70_000  # 7 % in the demo's region


def item(sku: str, barcode: str, name: str, minor: int, version: int = 1, *, tax_class: str = "food",
         active: bool = True, prices: Sequence[Price] | None = None) -> Item:
    return Item(sku=sku, product=sku, name=name, attributes=(), tax_class=tax_class, barcodes=(barcode,),
                prices=tuple(prices) if prices is not None else (Price("tenant", "", 0, minor),),
                active=active, version=version)


def demo_catalog(version: int = 1, *, prices_include_tax: bool = True) -> list[Message]:
    """The demo store's products at `version`, closed by its marker: settings, the food tax class, items."""
    return [Settings("EUR", prices_include_tax, version),
            TaxClass("food", "Food", ((REGION, FOOD_RATE_PPM), ("south", 55_000)), version),
            *(item(*product, version=version) for product in DEMO_PRODUCTS),
            VersionMarker(version, 0)]


def seed_catalog(state_dir: Path, messages: Iterable[Message] | None = None) -> None:
    """Write a catalog (the demo's, at version 1, unless told) into the state folder of an edge not yet started."""
    write_catalog(state_dir, demo_catalog() if messages is None else messages)


def hub_link(server: EmbeddedNats | str, name: str) -> NatsLink:
    """A link with the hub's rights: the test server's hub user, or a URL that carries its own user."""
    return NatsLink(server, name) if isinstance(server, str) else server.hub_link(name)


async def publish_raw(server: EmbeddedNats | str, tenant: str, messages: Sequence[tuple[str, bytes]]) -> list[int]:
    """Publish (subject, bytes) pairs to the tenant's catalog stream (created if missing), each after the
    previous one's ack, as the hub does; the stream sequences they got."""
    async def run() -> list[int]:
        link = hub_link(server, "test-catalog-publisher")
        await link.connect()
        try:
            await link.ensure_catalog_stream(tenant)
            return [(await link.js.publish(subject, data)).seq for subject, data in messages]
        finally:
            await link.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def publish_catalog(server: EmbeddedNats | str, messages: Iterable[Message], tenant: str = TENANT) -> list[int]:
    """Publish catalog messages (encoded by novapos.wire.catalog) as the hub does; end with a marker to
    close a version."""
    return await publish_raw(server, tenant, [(subject_of(tenant, m), encode(m)) for m in messages])


def snapshot_messages(messages: Iterable[Message], snapshot: str, stream_seq: int, *, per_chunk: int = 100,
                      tenant: str = TENANT) -> list[tuple[str, bytes]]:
    """A snapshot of `messages` (items, tax classes, settings, promotions, their last marker giving the version)
    as the hub publishes it: the chunks, then the head naming `stream_seq` (that marker's sequence on the
    stream)."""
    listed = list(messages)
    items = [m for m in listed if isinstance(m, Item)]
    others = [m for m in listed if isinstance(m, TaxClass | Settings)]
    version = [m for m in listed if isinstance(m, VersionMarker)][-1].version
    chunks = encode_chunks(snapshot, items, others, per_chunk)
    chunks += encode_promotion_chunks(snapshot, [m for m in listed if isinstance(m, PromotionMessage)], len(chunks))
    return [*((snapshot_chunk_subject(tenant, index), data) for index, data in enumerate(chunks)),
            (snapshot_subject(tenant), encode_head(SnapshotHead(snapshot, version, stream_seq, len(chunks))))]
