"""A three-node NATS cluster under the hub and two selling stores (real edges, forwarders and catalog syncs, real
hub): killing the events stream's leader with -9 loses and doubles nothing (every sale once in PostgreSQL, each
store's sequence without a gap or a reuse, each event once in the stream), selling and ingest carry on, and a price
change still reaches both stores. Streams made with fewer replicas than configured are scaled up, never down.

One cluster serves the module (starting three servers costs seconds); each test leaves it with no stream."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from actors.catalog.local import CatalogMissing, LocalCatalog, Offer, catalog_path
from edge.app import run_edge
from hub.app import run_hub
from hub.catalog import changes, service
from hub.catalog.demo import seed_demo_catalog
from hub.db import create_pool
from mocks.network_printer import MockNetworkPrinter
from novapos.adapters.nats import INGEST_CONSUMER
from novapos.config import HubConfig, StoreConfig, load_store
from novapos.config.hub import AuditSettings, StreamLimits
from novapos.demo.embedded_cluster import EmbeddedNatsCluster
from novapos.wire.catalog import catalog_stream
from novapos.wire.subjects import EVENTS_STREAM
from tests.catalog_support import add_tenancy
from tests.conftest import CONFIGS, GIFT_CARD_KEY, printer_only, query, wait_until
from tests.pos import seed_staff, sell

pytestmark = pytest.mark.xdist_group("test_nats_cluster")
"""Its tests share a module-scoped world and build on each other in file order: one xdist worker runs them all."""

STORES = {"store-001": "north", "store-002": "south"}
COFFEE = "4006381333931"  # COF-250 in the hub's demo catalog, 4.99


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsCluster]:
    nodes = EmbeddedNatsCluster.authorized(tmp_path_factory.mktemp("cluster"),
                                           stores=[("demo", store) for store in STORES]).start()
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def fresh_cluster(cluster: EmbeddedNatsCluster) -> Iterator[EmbeddedNatsCluster]:
    """The module's cluster, every member running, its streams deleted after the test."""
    yield cluster

    async def clean() -> None:
        client = cluster.hub_link("test-clean")
        await client.connect()
        for name in await client.js.streams_info():
            await client.js.delete_stream(str(name.config.name))
        await client.close()
    for index, node in enumerate(cluster.nodes):
        if not node.running:
            cluster.restart(index)
    cluster.wait_ready()
    asyncio.run(clean())


def _on_cluster(cluster: EmbeddedNatsCluster, work):  # type: ignore[no-untyped-def]
    """Run `work(link)` with a hub link to the cluster, on a short-lived asyncio loop (call from a thread)."""
    async def run():  # type: ignore[no-untyped-def]
        link = cluster.hub_link("test-cluster")
        await link.connect()
        try:
            return await work(link)
        finally:
            await link.close()
    return asyncio.run(run())


def test_existing_streams_scale_up_to_the_configured_replicas_and_never_down(
        fresh_cluster: EmbeddedNatsCluster, caplog: pytest.LogCaptureFixture) -> None:
    async def work(link):  # type: ignore[no-untyped-def]
        await link.ensure_event_stream(StreamLimits(replicas=1))  # as a hub configured for one server made them
        await link.ensure_catalog_stream("demo", 1)
        await link.ingest_subscription(16)  # the hub's consumer, made before the scale-up
        with caplog.at_level(logging.INFO, logger="novapos.adapters.nats"):
            caplog.clear()  # only what the scaling says (earlier lines are kept when another test left INFO on)
            await link.ensure_event_stream(StreamLimits(replicas=3))
            await link.ensure_catalog_stream("demo", 3)
            for _ in range(2):  # a hub configured for fewer: left alone, said once
                await link.ensure_event_stream(StreamLimits(replicas=1))
                await link.ensure_catalog_stream("demo", 1)
        deadline = time.monotonic() + 20
        while True:
            infos = [await link.js.stream_info(name) for name in (EVENTS_STREAM, catalog_stream("demo"))]
            consumer = await link.js.consumer_info(EVENTS_STREAM, INGEST_CONSUMER)
            copies = [len(info.cluster.replicas or ()) for info in infos] + [len(consumer.cluster.replicas or ())]
            if copies == [2, 2, 2] or time.monotonic() > deadline:
                return [info.config.num_replicas for info in infos], copies
            await asyncio.sleep(0.2)

    replicas, copies = _on_cluster(fresh_cluster, work)
    assert replicas == [3, 3]
    assert copies == [2, 2, 2], "a leader and two followers each, the ingest consumer scaled with its stream"
    said = Counter(record.getMessage().split(":")[0] for record in caplog.records)
    assert said == {f"scaled the {EVENTS_STREAM} stream up from 1 to 3 replicas ([stream] replicas); the new copies "
                    "catch up in the background (`nats stream info NOVAPOS_EVENTS` shows them current)": 1,
                    f"scaled the {catalog_stream('demo')} stream up from 1 to 3 replicas ([stream] replicas); the new "
                    f"copies catch up in the background (`nats stream info CATALOG_demo` shows them current)": 1,
                    f"the {EVENTS_STREAM} stream has 3 replicas, more than [stream] replicas = 1": 1,
                    f"the {catalog_stream('demo')} stream has 3 replicas, more than [stream] replicas = 1": 1}


def test_more_replicas_than_servers_is_refused_in_words(fresh_cluster: EmbeddedNatsCluster) -> None:
    async def work(link):  # type: ignore[no-untyped-def]
        with pytest.raises(Exception, match="NATS refuses 5 replicas for the CATALOG_demo stream .*: a cluster needs "
                                            "at least as many servers with JetStream as"):
            await link.ensure_catalog_stream("demo", 5)
    _on_cluster(fresh_cluster, work)


def _hub_config(cluster: EmbeddedNatsCluster, database_url: str, tmp_path: Path) -> HubConfig:
    key_file = tmp_path / "gift-cards.key"
    key_file.write_text(GIFT_CARD_KEY.hex())
    return HubConfig(tenants=("demo",), http_port=0, nats_url=cluster.url, database_url=database_url,
                     nats_credentials=cluster.hub_credentials, stream=StreamLimits(replicas=3),
                     audit=AuditSettings(checkpoint_dir=tmp_path / "audit-checkpoints"), gift_card_key_file=key_file,
                     tls=cluster.tls_settings())


def _store_config(cluster: EmbeddedNatsCluster, store: str, tmp_path: Path, printer_port: int) -> StoreConfig:
    demo = load_store(CONFIGS / "demo-store.toml")
    state = tmp_path / store
    seed_staff(state, store=store)  # no catalog: it comes from the hub, through the cluster
    return dataclasses.replace(demo, store=store, region=STORES[store], http_port=0, nats_url=cluster.url,
                               nats_credentials=cluster.store_credentials("demo", store), state_dir=state,
                               devices=printer_only(printer_port), tls=cluster.tls_settings(),
                               health_interval_s=1)


def _coffee_price(config: StoreConfig) -> int | None:
    """What the store's till would charge for a coffee now (None before its catalog came)."""
    if not catalog_path(config.state_dir).exists():
        return None
    catalog = LocalCatalog(catalog_path(config.state_dir), config.store, config.region)
    try:
        offer = catalog.offer(COFFEE, int(time.time() * 1000))
        return offer.unit_minor if isinstance(offer, Offer) else None
    except CatalogMissing:
        return None
    finally:
        catalog.close()


async def _on_database(database_url: str, work):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        pool = await create_pool(database_url, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def _stream_leader(cluster: EmbeddedNatsCluster) -> tuple[str | None, Counter[str]]:
    """The events stream's leader, and how many events the stream holds per store."""
    async def work(link):  # type: ignore[no-untyped-def]
        info = await link.js.stream_info(EVENTS_STREAM, subjects_filter="novapos.demo.*.evt.>")
        per_store: Counter[str] = Counter()
        for subject, count in (info.state.subjects or {}).items():
            per_store[subject.split(".")[2]] += count
        return info.cluster.leader, per_store
    result: tuple[str | None, Counter[str]] = await trio.to_thread.run_sync(_on_cluster, cluster, work)
    return result


async def test_killing_the_stream_leader_loses_and_doubles_nothing_and_the_catalog_still_arrives(
        fresh_cluster: EmbeddedNatsCluster, database_url: str, tmp_path: Path, http: httpx.AsyncClient,
        printer: MockNetworkPrinter) -> None:
    cluster = fresh_cluster
    with MockNetworkPrinter() as second_printer:
        stores = [_store_config(cluster, store, tmp_path, port)
                  for store, port in zip(STORES, (printer.port, second_printer.port), strict=True)]
        sold: Counter[str] = Counter()

        async def sell_round() -> None:
            for config, edge in zip(stores, edges, strict=True):
                started = time.monotonic()
                await sell(http, edge.url, [(COFFEE, 1)])
                assert time.monotonic() - started < 3.0, "a sale waited on the cluster"
                sold[config.store] += 1

        async def ingested() -> bool:
            return (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"] == sum(sold.values())

        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, _hub_config(cluster, database_url, tmp_path))
            await trio.to_thread.run_sync(asyncio.run, add_tenancy(database_url))
            await _on_database(database_url, seed_demo_catalog)
            edges = [await nursery.start(run_edge, config) for config in stores]
            await wait_until(lambda: _all_priced(stores, 499), timeout=30)
            for _ in range(3):
                await sell_round()
            await wait_until(ingested, timeout=20)

            leader, _ = await _stream_leader(cluster)
            assert leader is not None
            killed = cluster.index_of(leader)
            await trio.to_thread.run_sync(cluster.kill, killed)
            for _ in range(4):  # the stores sell on while the stream elects another leader
                await sell_round()
            version = await _on_database(database_url, lambda pool: service.set_price(
                pool, "demo", changes.price_from_json({"sku": "COF-250", "amount_minor": 549})))
            assert version > 0
            await wait_until(lambda: _all_priced(stores, 549), timeout=30)
            await wait_until(ingested, timeout=30)
            leader_after, in_stream = await _stream_leader(cluster)
            assert leader_after is not None and cluster.index_of(leader_after) != killed
            nursery.cancel_scope.cancel()

    per_store = {row["store"]: row["n"] for row in await query(
        database_url, "SELECT store, count(*) AS n FROM sales GROUP BY store")}
    assert per_store == dict(sold) == {"store-001": 7, "store-002": 7}
    stats = {row["store"]: (row["events"], row["seqs"], row["last_seq"]) for row in await query(
        database_url, "SELECT store, events, seqs, last_seq FROM store_stats")}
    assert set(stats) == set(STORES)
    for store, (events, seqs, last_seq) in stats.items():
        assert events == seqs == last_seq, f"{store}: a gap or a reused sequence number ({events}, {seqs}, {last_seq})"
        assert in_stream[store] == events, f"{store}: {in_stream[store]} events in the stream, {events} applied"
    assert not await query(database_url, "SELECT * FROM store_seq_gaps")
    assert not await query(database_url, "SELECT * FROM dead_letters")


async def _all_priced(stores: list[StoreConfig], minor: int) -> bool:
    return all(_coffee_price(config) == minor for config in stores)
