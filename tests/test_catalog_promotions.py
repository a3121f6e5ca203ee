"""Promotions and categories travel with the catalog (novapos.wire.catalog, actors.catalog): on a real NATS
stream read as the store, into the real catalog.sqlite3, applied with their catalog version and never before
its marker, withdrawn by `active: false`, loaded from a snapshot, scoped to the store, hostile ones skipped
with their reason; items carry their category, and an old hub's items (no category) still sell."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import msgpack
import pytest
import trio

from actors.catalog.local import BEFORE_CATEGORIES, CatalogWriter, LocalCatalog, Offer, catalog_path
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.promotions import CartLine, Context, Promotion, Target, checked, evaluate, to_wire
from novapos.wire.catalog import Item, Message, PromotionMessage, VersionMarker, decode, encode, promotion_subject
from tests.catalog import REGION, TENANT, demo_catalog, item, publish_catalog, publish_raw, snapshot_messages
from tests.conftest import wait_until
from tests.test_catalog_sync import STORE, metric, now_ms, syncing, version_is

CHEESE = "food/dairy/cheese"


def promotion(id: str, version: int = 1, **fields: object) -> Promotion:
    defaults: dict[str, object] = {"kind": "percent", "value": 1000, "target": Target(categories=frozenset({"food"}))}
    return checked(Promotion(id, f"Promotion {id}", version, "EUR", **{**defaults, **fields}))  # type: ignore[arg-type]


def with_category(version: int = 1) -> list[Message]:
    """The demo catalog with a categorised cheese and one item left without a category (an old hub's)."""
    cheese = Item(sku="CHS-1", product="CHS-1", name="Comte 200 g", attributes=(), tax_class="food",
                  barcodes=("2100000000001",), prices=item("x", "0", "x", 650).prices, active=True, version=version,
                  category=CHEESE)
    return [*demo_catalog(version)[:-1], cheese]


def reader(state: Path) -> LocalCatalog:
    return LocalCatalog(catalog_path(state), STORE, REGION)


def active_ids(state: Path) -> tuple[int, list[str]]:
    catalog = reader(state)
    try:
        found = catalog.promotions()
        return found.catalog_version, [p.id for p in found.rules.promotions]
    finally:
        catalog.close()


async def test_promotions_arrive_with_their_version_scoped_to_the_store_and_a_till_evaluates_them(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    everywhere = promotion("p-all", priority=5)
    ours = promotion("p-ours", kind="amount", value=50, target=Target(), stores=frozenset({STORE}))
    region = promotion("p-region", kind="buy_x_get_y", value=0, buy=2, get=1, reward_bp=10_000,
                       target=Target(skus=frozenset({"MLK-1L"})), regions=frozenset({REGION}))
    elsewhere = promotion("p-elsewhere", stores=frozenset({"store-999"}))
    coded = promotion("p-code", code_only=True, public_codes=frozenset({"WELCOME10"}), stacking="exclusive",
                      value=5000, target=Target())
    await publish_catalog(nats_server, [*with_category(), *(PromotionMessage(p, True) for p in
                                                          (everywhere, ours, region, elsewhere, coded)),
                                        VersionMarker(1, 0)])
    state = tmp_path / "edge"
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 1))
    catalog = reader(state)
    found = catalog.promotions()
    assert found.catalog_version == 1
    assert [p.id for p in found.rules.promotions] == ["p-all", "p-code", "p-ours", "p-region"]  # priority, then id
    assert found.rules.promotions[0] == everywhere  # the definition whole, as the hub published it
    assert catalog.promotions() is found  # decoded and indexed once per version
    cheese, milk, coffee = (catalog.offer(code, now_ms()) for code in ("2100000000001", "MLK-1L", "COF-250"))
    assert isinstance(cheese, Offer) and isinstance(milk, Offer) and isinstance(coffee, Offer)
    assert (cheese.category, milk.category) == (CHEESE, "")  # an item with no category still sells
    lines = [CartLine("l1", cheese.sku, cheese.category, cheese.unit_minor, 1),
             CartLine("l2", milk.sku, milk.category, milk.unit_minor, 3)]
    context = Context(STORE, REGION, now_ms())
    result = evaluate(found.rules, lines, context)
    # 10 % off the cheese (its category is below food; the milk has none), 0.50 off every unit, then milk 3
    # for 2 on what was left of the milk (3.87 - 1.50, a third of it).
    assert [(a.promotion, dict(a.amounts)) for a in result.applied] == [
        ("p-all", {"l1": 65}), ("p-ours", {"l1": 50, "l2": 150}), ("p-region", {"l2": 79})]
    # With the public code the exclusive 50 % is better for the customer, and applies alone.
    coupon = evaluate(found.rules, lines, Context(STORE, REGION, now_ms(), coupons=frozenset({"p-code"})))
    assert [(a.promotion, dict(a.amounts)) for a in coupon.applied] == [("p-code", {"l1": 325, "l2": 194})]
    catalog.close()


async def test_a_promotion_is_invisible_until_its_version_marker_and_withdrawn_by_active_false(
        nats_server: EmbeddedNats, tmp_path: Path) -> None:
    await publish_catalog(nats_server, [*with_category(), VersionMarker(1, 0)])
    state = tmp_path / "edge"
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 1))
        assert active_ids(state) == (1, [])
        await publish_catalog(nats_server, [PromotionMessage(promotion("p-1"), True)])
        await trio.sleep(1.0)  # read and staged, no marker yet: the tills still see version 1 and no promotion
        assert active_ids(state) == (1, [])
        await publish_catalog(nats_server, [VersionMarker(2, 0)])
        await wait_until(lambda: version_is(state, 2))
        assert active_ids(state) == (2, ["p-1"])
        # Edited (the hub republishes the whole definition), then ended: each at its own version.
        await publish_catalog(nats_server, [PromotionMessage(promotion("p-1", 2, value=2500), True),
                                            VersionMarker(3, 0)])
        await wait_until(lambda: version_is(state, 3))
        catalog = reader(state)
        assert [p.value for p in catalog.promotions().rules.promotions] == [2500]
        catalog.close()
        await publish_catalog(nats_server, [PromotionMessage(promotion("p-1", 3, value=2500), False),
                                            VersionMarker(4, 0)])
        await wait_until(lambda: version_is(state, 4))
        assert active_ids(state) == (4, [])
    with sqlite3.connect(catalog_path(state)) as db:  # kept, not applied
        assert db.execute("SELECT id, active, version FROM promotions").fetchall() == [("p-1", 0, 3)]


async def test_a_new_store_gets_the_promotions_from_the_snapshot(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    many = [PromotionMessage(promotion(f"p-{n:04d}", priority=n % 7), True) for n in range(1200)]
    messages = [*with_category(), *many, PromotionMessage(promotion("p-ended"), False), VersionMarker(1, 0)]
    sequences = await publish_catalog(nats_server, messages)
    snapshot = snapshot_messages(messages, "snap-1", sequences[-1], per_chunk=100)
    await publish_raw(nats_server, TENANT, snapshot)
    assert len(snapshot) == 1 + 1 + 3  # the items' chunk, three chunks of promotions, the head
    loaded = metric("novapos_edge_catalog_snapshot_messages_read_total")
    state = tmp_path / "edge"
    async with syncing(nats_server, state):
        await wait_until(lambda: version_is(state, 1))
    assert metric("novapos_edge_catalog_snapshot_messages_read_total") - loaded == len(snapshot)
    version, ids = active_ids(state)
    assert version == 1 and sorted(ids) == [f"p-{n:04d}" for n in range(1200)]
    catalog = reader(state)
    cheese = catalog.offer("CHS-1", now_ms())
    assert isinstance(cheese, Offer) and cheese.category == CHEESE
    catalog.close()


async def test_hostile_promotion_messages_are_skipped_with_their_reason_and_the_rest_applies(
        nats_server: EmbeddedNats, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="actors.catalog.sync")
    good = promotion("p-good")
    hostile: list[tuple[str, dict[str, object]]] = [
        ("p-neg", {**to_wire(promotion("p-neg")), "value": -100, "active": True}),
        ("p-big", {**to_wire(promotion("p-big")), "value": 10_001, "active": True}),
        ("p-tz", {**to_wire(promotion("p-tz")), "timezone": "../../etc/passwd", "active": True}),
        ("p-cat", {**to_wire(promotion("p-cat")), "target": {"skus": [], "categories": ["food//x"]}, "active": True}),
        ("p-act", {**to_wire(promotion("p-act")), "active": "yes"}),
        ("p-other", {**to_wire(promotion("p-good")), "active": True}),  # p-good's body on p-other's subject
    ]
    skipped = metric("novapos_edge_catalog_messages_skipped_total")
    await publish_raw(nats_server, TENANT, [(promotion_subject(TENANT, subject), msgpack.packb(body))
                                            for subject, body in hostile])
    await publish_catalog(nats_server, [*with_category(), PromotionMessage(good, True), VersionMarker(1, 0)])
    state = tmp_path / "edge"
    async with syncing(nats_server, state) as tree:
        await wait_until(lambda: version_is(state, 1))
        assert tree.restarts == 0
    assert metric("novapos_edge_catalog_messages_skipped_total") - skipped == len(hostile)
    reasons = "\n".join(record.getMessage() for record in caplog.records)
    for expected in ("value must be from 1 to 10000, got -100", "value must be from 1 to 10000, got 10001",
                     "timezone must be an IANA time zone", "target.categories must be a category path",
                     "active must be true or false", "promotion p-good came on another subject"):
        assert expected in reasons, reasons
    assert active_ids(state) == (1, ["p-good"])


def test_a_catalog_file_from_before_categories_gains_the_column_and_is_resynced(tmp_path: Path) -> None:
    path = catalog_path(tmp_path)
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE items (sku TEXT PRIMARY KEY, product TEXT NOT NULL, name TEXT NOT NULL, attributes TEXT "
            "NOT NULL, tax_class TEXT NOT NULL, active INTEGER NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;"
            "CREATE TABLE meta (only_row INTEGER PRIMARY KEY CHECK (only_row = 1), catalog_version INTEGER NOT NULL,"
            " stream_seq INTEGER NOT NULL, stream_id TEXT NOT NULL);"
            "INSERT INTO items VALUES ('COF-250', 'COF-250', 'Ground coffee', '[]', 'food', 1, 3);"
            "INSERT INTO meta VALUES (1, 3, 42, 'CATALOG_demo@2026-01-01');")
    writer = CatalogWriter(path)
    meta = writer.meta()
    writer.close()
    # The sync sees a stream identity no stream has: a full resync, the tills selling from version 3 meanwhile.
    assert (meta.catalog_version, meta.stream_seq, meta.stream_id) == (3, 42, BEFORE_CATEGORIES)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT sku, category FROM items").fetchall() == [("COF-250", "")]
    assert CatalogWriter(path).meta().stream_id == BEFORE_CATEGORIES  # once: a second open changes nothing


def test_item_and_promotion_messages_round_trip_and_an_old_hubs_item_has_no_category_key() -> None:
    categorised = with_category()[-1]
    assert isinstance(categorised, Item)
    plain = item("MLK-1L", "5000112637922", "Whole milk 1 l", 129)
    assert "category" not in msgpack.unpackb(encode(plain)) and msgpack.unpackb(encode(categorised))["category"] == CHEESE
    message = PromotionMessage(promotion("p-1", minutes=(420, 600), days=frozenset({5, 6}),
                                         timezone="Europe/Paris"), True)
    assert decode("promotion", encode(message)) == message and decode("item", encode(categorised)) == categorised
