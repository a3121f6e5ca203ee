"""The catalog publisher against real NATS (JetStream) and PostgreSQL, inside real hub processes: what the
stores' stream holds, how fast a change reaches it, effective-dated prices, a lost stream rebuilt, a restarted
publisher resuming, and two hub processes that never interleave one tenant's versions. The tests read the
stream with a plain consumer and watch its subjects with a plain core subscription."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import nats
import pytest
import trio
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from bench.catalog import HEADER
from edge_runtime import AsyncioSeam
from hub.app import run_hub
from hub.catalog import changes, service
from hub.catalog.importer import import_catalog
from hub.catalog.publisher import publish_pipelined
from novapos.adapters.nats import CATALOG_MAX_CONSUMERS
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.pricing import effective_price
from novapos.wire.catalog import (
    Item,
    Message,
    Settings,
    TaxClass,
    VersionMarker,
    catalog_stream,
    catalog_subjects,
    decode,
)
from tests.catalog_support import catalog_pool
from tests.conftest import wait_until
from tests.console_access import sign_in_admin

CATALOG = (HEADER
           + "TEE,Organic T-shirt,standard,size=M;colour=red,TEE-M-RED,4006381333931;TEE-M-RED,19.99,region:south=18.99\n"
           + "TEE,Organic T-shirt,standard,size=L;colour=red,TEE-L-RED,5000112637922,19.99,store:store-001=17.50\n"
           + "MLK,Whole milk 1 l,reduced,,MLK-1L,96385074,1.29,\n").encode()
Seen = list[tuple[str, Message]]


def _kind(subject: str) -> str:
    return subject.split(".")[2]


async def read_stream(server: EmbeddedNats, tenant: str = "demo") -> Seen:
    """(asyncio side) The stream's messages in order, read with an ephemeral consumer; [] when it is missing."""
    client = await nats.connect(server.url, **server.hub_options())
    try:
        js = client.jetstream()
        try:
            held = (await js.stream_info(catalog_stream(tenant))).state.messages
        except nats.js.errors.NotFoundError:
            return []
        subscription = await js.pull_subscribe(f"catalog.{tenant}.>", stream=catalog_stream(tenant), config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE))
        seen: Seen = []
        while len(seen) < held:
            seen += [(m.subject, decode(_kind(m.subject), m.data)) for m in await subscription.fetch(500, timeout=5)]
        return seen
    finally:
        await client.close()


class Watcher:
    """Every message published on a tenant's catalog subjects, in the order NATS passed them on."""

    def __init__(self) -> None:
        self.seen: Seen = []

    async def start(self, server: EmbeddedNats, tenant: str = "demo") -> None:
        self.client = await nats.connect(server.url, **server.hub_options())

        async def got(message: Any) -> None:
            self.seen.append((message.subject, decode(_kind(message.subject), message.data)))
        await self.client.subscribe(f"catalog.{tenant}.>", cb=got)
        await self.client.flush()

    async def stop(self) -> None:
        await self.client.close()

    def markers(self) -> list[int]:
        return [message.version for _, message in self.seen if isinstance(message, VersionMarker)]


async def version(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT version FROM catalog_versions WHERE tenant = 'demo'"))


async def published(seam: AsyncioSeam, server: EmbeddedNats, pool: asyncpg.Pool) -> Seen:
    """Wait until the stream ends with the marker of the catalog's current version; its messages."""
    async def done() -> Seen | None:
        seen = await seam.run(read_stream, server)
        wanted = await seam.run(version, pool)
        last = seen[-1][1] if seen else None
        return seen if isinstance(last, VersionMarker) and last.version == wanted else None
    return await wait_until(done, timeout=20)


async def test_the_stream_holds_settings_tax_classes_items_then_a_marker_and_a_price_change_reaches_it_within_2_s(
        hub_config: HubConfig, nats_server: EmbeddedNats, http: httpx.AsyncClient) -> None:
    with AsyncioSeam() as seam:
        async with trio.open_nursery() as nursery:
            hub = await nursery.start(run_hub, hub_config)
            pool = await seam.run(catalog_pool, hub_config.database_url)
            await seam.run(import_catalog, pool, "demo", CATALOG)
            seen = await published(seam, nats_server, pool)
            held = dict(seen)
            assert sorted(held) == sorted(f"catalog.demo.{name}" for name in (
                "settings", "tax.standard", "tax.reduced", "item.TEE-M-RED", "item.TEE-L-RED", "item.MLK-1L", "version"))
            assert _kind(seen[-1][0]) == "version"
            assert held["catalog.demo.settings"] == Settings("EUR", True, 0)
            assert held["catalog.demo.tax.reduced"] == TaxClass("reduced", "Reduced rate", (("north", 55_000),
                                                                                           ("south", 70_000)), 2)
            items = {message.sku: message for _, message in seen if isinstance(message, Item)}
            tee = items["TEE-M-RED"]
            assert (tee.product, tee.name, tee.attributes, tee.tax_class, tee.barcodes, tee.active) == (
                "TEE", "Organic T-shirt M red", (("size", "M"), ("colour", "red")), "standard",
                ("4006381333931", "TEE-M-RED"), True)
            assert sorted((p.scope, p.scope_id, p.minor) for p in tee.prices) == [("region", "south", 1899),
                                                                                   ("tenant", "", 1999)]

            await sign_in_admin(http, hub.url, hub_config.database_url)
            watcher = Watcher()
            await seam.run(watcher.start, nats_server)
            started = time.monotonic()
            response = await http.post(f"{hub.url}/api/catalog/price-changes", json={"sku": "MLK-1L", "amount_minor": 119})
            assert response.status_code == 200, response.text
            changed = response.json()["version"]

            async def arrived() -> bool:
                return changed in watcher.markers()
            await wait_until(arrived, timeout=5, interval=0.01)
            latency = time.monotonic() - started
            await seam.run(watcher.stop)
            assert latency < 2.0, f"the price change took {latency:.2f} s to reach the stream"
            assert [_kind(subject) for subject, _ in watcher.seen] == ["item", "version"]
            milk = watcher.seen[0][1]
            assert isinstance(milk, Item) and milk.sku == "MLK-1L" and milk.version == changed
            assert [p.minor for p in sorted(milk.prices, key=lambda p: p.effective_from_ms)] == [119]  # 129 superseded
            async def recorded() -> bool:  # once the marker's ack is in, in the same transaction that read the change
                return await seam.run(pool.fetchval, "SELECT version FROM catalog_published") == changed
            await wait_until(recorded, timeout=5)
            await seam.run(pool.close)
            nursery.cancel_scope.cancel()


async def test_effective_dated_prices_reach_the_stream_and_resolve_by_scope_and_time(
        hub_config: HubConfig, nats_server: EmbeddedNats) -> None:
    now = datetime.now(UTC) + timedelta(seconds=5)  # after the import's own price (in force from the import on)

    def at(delta: timedelta) -> str:
        return (now + delta).isoformat()
    prices = [
        {"amount_minor": 520, "effective_from": at(-timedelta(days=30))},
        {"amount_minor": 500, "effective_from": at(timedelta(0))},
        {"amount_minor": 450, "effective_from": at(timedelta(hours=2))},
        {"amount_minor": 480, "scope": "region", "scope_id": "south", "effective_from": at(-timedelta(hours=1))},
        {"amount_minor": 470, "scope": "store", "scope_id": "store-001", "effective_from": at(timedelta(hours=1))},
    ]
    with AsyncioSeam() as seam:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            pool = await seam.run(catalog_pool, hub_config.database_url)
            await seam.run(import_catalog, pool, "demo", CATALOG)
            for price in prices:
                await seam.run(service.set_price, pool, "demo", changes.price_from_json({"sku": "MLK-1L", **price}))
            seen = await published(seam, nats_server, pool)
            await seam.run(pool.close)
            nursery.cancel_scope.cancel()
    milk = next(message for _, message in seen if isinstance(message, Item) and message.sku == "MLK-1L")
    assert 520 not in [p.minor for p in milk.prices]  # superseded before now: no store needs it
    ms = int(now.timestamp() * 1000) + 1
    hour = 3_600_000

    def price(region: str, store: str, at_ms: int) -> int | None:
        found = effective_price(milk.prices, region, store, at_ms)
        return None if found is None else found.minor
    assert price("north", "store-002", ms) == 500  # the tenant's price in force
    assert price("north", "store-002", ms + 3 * hour) == 450  # the tenant's next price, once it starts
    assert price("south", "store-002", ms) == 480 and price("south", "store-002", ms + 3 * hour) == 480  # region wins
    assert price("north", "store-001", ms) == 500 and price("north", "store-001", ms + 90 * 60_000) == 470  # store wins


async def test_a_lost_stream_is_rebuilt_in_full(
        hub_config: HubConfig, nats_server: EmbeddedNats) -> None:
    async def delete_stream(server: EmbeddedNats) -> None:
        client = await nats.connect(server.url, **server.hub_options())
        await client.jetstream().delete_stream(catalog_stream("demo"))
        await client.close()

    with AsyncioSeam() as seam:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            pool = await seam.run(catalog_pool, hub_config.database_url)
            await seam.run(import_catalog, pool, "demo", CATALOG)
            before = await published(seam, nats_server, pool)
            await seam.run(delete_stream, nats_server)
            after = await published(seam, nats_server, pool)
            await seam.run(pool.close)
            nursery.cancel_scope.cancel()
    def held(seen: Seen) -> dict[str, Message]:
        return {subject: message for subject, message in seen if not isinstance(message, VersionMarker)}
    assert held(after) == held(before) and len(held(after)) == 6  # settings, 2 tax classes, 3 items
    assert isinstance(after[-1][1], VersionMarker) and after[-1][1].version == before[-1][1].version


async def test_a_restarted_publisher_resumes_with_only_what_changed_meanwhile(
        hub_config: HubConfig, nats_server: EmbeddedNats) -> None:
    with AsyncioSeam() as seam:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            pool = await seam.run(catalog_pool, hub_config.database_url)
            await seam.run(import_catalog, pool, "demo", CATALOG)
            await published(seam, nats_server, pool)
            nursery.cancel_scope.cancel()
        changed = await seam.run(service.set_price, pool, "demo", changes.price_from_json({"sku": "TEE-L-RED",
                                                                                           "amount_minor": 1899}))
        watcher = Watcher()
        await seam.run(watcher.start, nats_server)
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            await published(seam, nats_server, pool)
            nursery.cancel_scope.cancel()
        await seam.run(watcher.stop)
        await seam.run(pool.close)
    assert [(_kind(subject), getattr(message, "sku", None)) for subject, message in watcher.seen] == [
        ("item", "TEE-L-RED"), ("version", None)]
    assert watcher.markers() == [changed]


async def test_two_hub_processes_never_interleave_one_tenants_versions(
        hub_config: HubConfig, nats_server: EmbeddedNats) -> None:
    with AsyncioSeam() as seam:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            await nursery.start(run_hub, hub_config)
            pool = await seam.run(catalog_pool, hub_config.database_url)
            await seam.run(import_catalog, pool, "demo", CATALOG)
            await published(seam, nats_server, pool)
            watcher = Watcher()
            await seam.run(watcher.start, nats_server)
            for round_ in range(15):
                for sku in ("TEE-M-RED", "TEE-L-RED", "MLK-1L"):
                    await seam.run(service.set_price, pool, "demo",
                                   changes.price_from_json({"sku": sku, "amount_minor": 100 + round_}))
                await trio.sleep(0.05)
            final = await seam.run(version, pool)

            async def caught_up() -> bool:
                return final in watcher.markers()
            await wait_until(caught_up, timeout=20)
            await seam.run(watcher.stop)
            await seam.run(pool.close)
            nursery.cancel_scope.cancel()
    markers = watcher.markers()
    assert markers == sorted(set(markers)), f"markers out of order or repeated: {markers}"
    low = 0
    for subject, message in watcher.seen:  # each item lies between the marker before it and the one after it
        if isinstance(message, VersionMarker):
            low = message.version
        else:
            assert message.version > low, f"{subject} of version {message.version} after marker {low}"
    assert max(m.version for _, m in watcher.seen if isinstance(m, Item)) <= markers[-1]


async def test_a_change_made_while_nats_is_away_is_published_once_it_is_back(
        hub_config: HubConfig, nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hub.catalog.publisher"), AsyncioSeam() as seam:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, hub_config)
            pool = await seam.run(catalog_pool, hub_config.database_url)
            await seam.run(import_catalog, pool, "demo", CATALOG)
            await published(seam, nats_server, pool)
            await trio.to_thread.run_sync(nats_server.stop)
            changed = await seam.run(service.set_price, pool, "demo", changes.price_from_json(
                {"sku": "MLK-1L", "amount_minor": 99}))

            async def warned() -> bool:
                return any(r.levelno == logging.WARNING and "catalog publisher" in r.getMessage() for r in caplog.records)
            await wait_until(warned)
            await trio.to_thread.run_sync(nats_server.start)
            seen = await published(seam, nats_server, pool)
            await seam.run(pool.close)
            nursery.cancel_scope.cancel()
    milk = dict(seen)["catalog.demo.item.MLK-1L"]
    assert isinstance(milk, Item) and milk.version == changed and [p.minor for p in milk.prices] == [99]
    assert any("recovered" in r.getMessage() for r in caplog.records)


async def test_pipelined_publishing_proves_every_message_stored_and_stops_at_a_refusal_or_a_gap(
        nats_server: EmbeddedNats) -> None:
    async def scenario() -> tuple[int, str, str]:
        link = nats_server.hub_link()
        await link.connect()
        try:
            await link.ensure_catalog_stream("demo")
            messages = [(f"catalog.demo.item.S{n}", b"x") for n in range(25_001)]  # past the window, not a round number
            await publish_pipelined(link.client, messages, 0)
            held = (await link.js.stream_info(catalog_stream("demo"))).state.last_seq
            with pytest.raises(ConnectionError) as gap:  # the stream holds one message more than the publisher thinks
                await publish_pipelined(link.client, messages[:10], held - 1)
            with pytest.raises(ConnectionError) as refused:  # no stream takes these subjects: NATS answers 503
                await publish_pipelined(link.client, [("nowhere.item.S1", b"x")], 0)
            return held, str(gap.value), str(refused.value)
        finally:
            await link.close()
    with AsyncioSeam() as seam:
        held, gap, refusal = await seam.run(scenario)
    assert held == 25_001
    assert "message 10 was stored as sequence 25011, not 25010: some before it were lost" in gap
    assert "no stream takes these subjects" in refusal


async def test_a_catalog_stream_takes_more_than_the_servers_default_1000_consumers_and_an_older_one_is_raised(
        nats_server: EmbeddedNats) -> None:
    """nats-server 2.15 lets a stream without a limit of its own hold 1,000 consumers; every store of a tenant
    follows its catalog with one, so the 1,001st store would get no prices. The hub's catalog stream sets its own
    limit, and raises the one of a stream an older release made."""
    async def scenario() -> tuple[list[int | None], list[int]]:
        link = nats_server.hub_link()
        await link.connect()
        try:
            js = link.js
            await js.add_stream(StreamConfig(name=catalog_stream("old"), subjects=[catalog_subjects("old")],
                                             max_msgs_per_subject=1, allow_rollup_hdrs=True))  # as before the limit
            for tenant in ("old", "demo"):
                await link.ensure_catalog_stream(tenant)
            limits = [(await js.stream_info(catalog_stream(tenant))).config.max_consumers for tenant in ("old", "demo")]
            for tenant in ("old", "demo"):
                for _ in range(1_010):  # in memory: NATS stops at once after
                    await js.add_consumer(catalog_stream(tenant), ConsumerConfig(
                        ack_policy=AckPolicy.NONE, inactive_threshold=60, mem_storage=True))
            counts = [(await js.stream_info(catalog_stream(tenant))).state.consumer_count for tenant in ("old", "demo")]
            return limits, counts
        finally:
            await link.close()
    with AsyncioSeam() as seam:
        limits, counts = await seam.run(scenario)
    assert limits == [CATALOG_MAX_CONSUMERS, CATALOG_MAX_CONSUMERS]
    assert counts == [1_010, 1_010]
