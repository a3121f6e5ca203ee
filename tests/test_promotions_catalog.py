"""Promotions reach the stores through the catalog stream (real hub, PostgreSQL, NATS): going live publishes
catalog.<t>.promotion.<id> (the live revision's to_wire, active) before the marker of the version it bumped, with
the items' categories; a new live revision replaces it; ending it sends it inactive; a draft edit of a live
promotion sends nothing (the stores keep the live revision); snapshots carry the promotions too."""

from __future__ import annotations

import asyncpg
import nats
import pytest
import trio
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hub.app import run_hub
from hub.catalog import publisher
from hub.catalog.importer import import_catalog
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.catalog import (
    Item,
    PromotionMessage,
    VersionMarker,
    catalog_stream,
    decode,
    decode_chunk,
    decode_head,
    snapshot_chunk_subject,
    snapshot_subject,
)
from tests.conftest import wait_until
from tests.identity import add_user, grant, signed_in
from tests.promotions_support import percent_off, promotion_world
from tests.stock_world import on_database
from tests.test_catalog_publisher import Seen, _kind


async def read_stream(server: EmbeddedNats) -> Seen:
    """(asyncio side) The stream's messages but the snapshot's, in order."""
    client = await nats.connect(server.url, **server.hub_options())
    try:
        js = client.jetstream()
        held = (await js.stream_info(catalog_stream("demo"))).state.messages
        subscription = await js.pull_subscribe("catalog.demo.>", stream=catalog_stream("demo"), config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE))
        seen: Seen = []
        read = 0
        while read < held:
            messages = await subscription.fetch(500, timeout=5)
            read += len(messages)
            seen += [(m.subject, decode(_kind(m.subject), m.data)) for m in messages if _kind(m.subject) != "snapshot"]
        return seen
    finally:
        await client.close()


def _promotions(seen: Seen) -> list[tuple[int, PromotionMessage]]:
    return [(index, message) for index, (_, message) in enumerate(seen) if isinstance(message, PromotionMessage)]


def _marker(seen: Seen, version: int) -> int:
    return next(index for index, (_, message) in enumerate(seen)
                if isinstance(message, VersionMarker) and message.version == version)


async def _snapshot_promotions(server: EmbeddedNats) -> list[PromotionMessage]:
    client = await nats.connect(server.url, **server.hub_options())
    try:
        js = client.jetstream()
        head = decode_head((await js.get_last_msg(catalog_stream("demo"), snapshot_subject("demo"))).data or b"")
        found: list[PromotionMessage] = []
        for index in range(head.chunks):
            chunk = decode_chunk((await js.get_last_msg(catalog_stream("demo"),
                                                        snapshot_chunk_subject("demo", index))).data or b"")
            found += [other for other in chunk.others if isinstance(other, PromotionMessage)]
        return found
    finally:
        await client.close()


async def test_going_live_editing_and_ending_reach_the_catalog_stream(
        hub_config: HubConfig, nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher, "SNAPSHOT_MIN_ITEMS", 1)  # snapshot this small catalog too,
    monkeypatch.setattr(publisher, "SNAPSHOT_BEHIND", 1)  # after every version
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await add_user(url, "ada", grant("tenant_admin"))

        async def stream() -> Seen:
            return await hub.seam.run(read_stream, nats_server)

        async def at(version: int) -> None:
            async def marked() -> bool:
                return any(isinstance(m, VersionMarker) and m.version == version for _, m in await stream())
            await wait_until(marked)

        async def snapshotted() -> list[PromotionMessage]:
            return await hub.seam.run(_snapshot_promotions, nats_server)

        async with signed_in(hub.url, "ada") as ada:
            promotion = (await ada.post("/api/promotions", json=percent_off("Coffee 10 % off", 1000))).json()["id"]
            live = (await ada.post(f"/api/promotions/{promotion}/submit", json={})).json()
            version = live["catalog_version"]
            await at(version)
            seen = await stream()
            [(index, message)] = _promotions(seen)
            assert seen[index][0] == f"catalog.demo.promotion.{promotion}"
            assert index < _marker(seen, version) and message.active
            assert (message.promotion.version, message.promotion.value, message.promotion.target.categories) == \
                (1, 1000, frozenset({"food/coffee"}))
            assert {m.category for _, m in seen if isinstance(m, Item)} == {"food/coffee"}

            edited = (await ada.put(f"/api/promotions/{promotion}", json=percent_off("Coffee 20 % off", 2000))).json()
            assert (edited["state"], edited["live_revision"], edited["catalog_version"]) == ("draft", 1, version)
            ended = (await ada.post(f"/api/promotions/{promotion}/end", json={"reason": "over"})).json()
            assert ended["catalog_version"] == version + 1
            await at(version + 1)
            seen = await stream()
            [(index, message)] = _promotions(seen)  # the stream keeps the subject's last message only
            assert not message.active and message.promotion.version == 1 and index < _marker(seen, version + 1)
            [held] = await wait_until(snapshotted)
            assert held.promotion.id == promotion and held.promotion.version == 1
        nursery.cancel_scope.cancel()


async def test_a_products_category_is_set_through_the_console_and_travels_on_its_items(
        hub_config: HubConfig, nats_server: EmbeddedNats) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada:
            change = {"product": "tea", "name": "Tea", "tax_class": "std", "variants": [{"sku": "TEA-1"}]}
            made = await ada.post("/api/catalog/product-changes", json={**change, "category": "food/tea/green"})
            assert made.status_code == 200, made.text
            renamed = await ada.post("/api/catalog/product-changes", json={**change, "name": "Green tea"})
            assert renamed.status_code == 200  # no category given: it keeps its own
            assert (await ada.get("/api/catalog/products/tea")).json()["category"] == "food/tea/green"
            for bad in ("food//tea", "food/tea/", "a" * 201, 7, "thé"):
                refused = await ada.post("/api/catalog/product-changes", json={**change, "category": bad})
                assert refused.status_code == 422 and "category" in refused.json()["error"], (bad, refused.text)
            version = renamed.json()["version"]

            async def published() -> list[Item]:
                return [m for _, m in await hub.seam.run(read_stream, nats_server)
                        if isinstance(m, Item) and m.sku == "TEA-1" and m.version == version]
            [item] = await wait_until(published)
            assert item.category == "food/tea/green" and item.name == "Green tea"
            cleared = await ada.post("/api/catalog/product-changes", json={**change, "category": None})
            assert cleared.status_code == 200
            assert (await ada.get("/api/catalog/products/tea")).json()["category"] is None
        nursery.cancel_scope.cancel()


async def test_the_catalog_csv_sets_categories_and_a_file_without_the_column_keeps_them(hub_config: HubConfig) -> None:
    async def run(pool: asyncpg.Pool) -> tuple[list[str], list[asyncpg.Record], list[asyncpg.Record]]:
        await pool.execute("INSERT INTO tenants (tenant, name, currency) VALUES ('shop', 'Shop', 'EUR');"
                           "INSERT INTO tax_classes (tenant, tax_class, name, version) VALUES ('shop', 'std', 'Std', 0)")
        first = await import_catalog(pool, "shop", (
            b"product,product_name,tax_class,sku,price,category\n"
            b"COF,Coffee,std,COF-1,4.99,food/coffee\n"
            b"TEE,T-shirt,std,TEE-M,19.90,clothing/tops\n"
            b"TEE,T-shirt,std,TEE-L,19.90,clothing/shirts\n"  # the product described two ways
            b"BAD,Bad,std,BAD-1,1.00,food//x\n"
            b"NONE,Plain,std,NONE-1,1.00,\n"))
        seen = await pool.fetch("SELECT product, category FROM products WHERE tenant = 'shop' ORDER BY product")
        await import_catalog(pool, "shop", b"product,product_name,tax_class,sku,price\nCOF,Coffee beans,std,COF-1,4.99\n")
        kept = await pool.fetch("SELECT product, name, category FROM products WHERE tenant = 'shop' ORDER BY product")
        return [f"{error.line} {error.column}" for error in first.errors], seen, kept
    errors, seen, kept = await on_database(hub_config.database_url, run)
    assert errors == ["4 category", "5 category"]
    assert [tuple(row) for row in seen] == [("COF", "food/coffee"), ("NONE", None), ("TEE", "clothing/tops")]
    assert tuple(kept[0]) == ("COF", "Coffee beans", "food/coffee")
