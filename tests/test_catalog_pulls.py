"""Idle catalog pulls (actors.catalog.pull, actors.catalog.sync) on a real nats-server, counted at its monitoring
port: 20 idle stores keep one long pull open each (a few requests per store per minute at the server, not one a
second) and a price change still reaches every one within 2 s; an open pull keeps its consumer past the server's
inactive threshold; consumers deleted at the server are noticed and every store resumes; a server that stops
answering (SIGSTOP: a stalled server or a half-open connection, which the client's pings take minutes to see) is
noticed by the missing heartbeats and the store resumes once it answers again."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from nats.js.api import AckPolicy, ConsumerConfig

from actors.catalog.local import LocalCatalog, catalog_path
from actors.catalog.pull import Puller
from actors.catalog.sync import CatalogSyncActor
from edge_runtime import AsyncioSeam, ChildSpec, SupervisorSpec, Tree, supervision_tree
from novapos.adapters.nats import NatsLink, store_inbox_prefix
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.wire.catalog import VersionMarker, catalog_stream
from tests.catalog import REGION, TENANT, demo_catalog, item, publish_catalog
from tests.conftest import wait_until

pytestmark = pytest.mark.xdist_group("test_catalog_pulls")
"""Its tests share a module-scoped world and build on each other in file order: one xdist worker runs them all."""

STORES = [f"store-{n:03d}" for n in range(1, 21)]
COFFEE_BARCODE = "4006381333931"
IDLE_S = 12.0
MAX_PULLS_PER_STORE_MINUTE = 10  # long pulls: ~2 (a 30 s expiry); a pull renewed every second: 60


def start_server(state: Path) -> EmbeddedNats:
    return EmbeddedNats.authorized(state, [(TENANT, store) for store in STORES],
                                   monitor_port=free_port("127.0.0.1")).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    started = start_server(tmp_path_factory.mktemp("pulls"))
    try:
        yield started
    finally:
        started.stop()


def in_msgs(server: EmbeddedNats) -> int:
    """Messages the server has received from its clients (a pull request is one)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.monitor_port}/varz", timeout=5) as answer:
        return int(json.load(answer)["in_msgs"])


@asynccontextmanager
async def stores(server: EmbeddedNats, root: Path, names: list[str]) -> AsyncIterator[Tree]:
    """A catalog sync actor per store, as the edge runs it, each on its own NATS link logged in as that store; all on
    one seam, as the simulator's stores share their worker's. A take waits 0.2 s (the edge: 1 s), which only makes
    stopping 20 actors quicker: how long a take waits is not how long the pull stays open."""
    with AsyncioSeam() as seam:
        links = [NatsLink(server.url, f"test-pulls-{name}", credentials=server.store_credentials(TENANT, name),
                          inbox_prefix=store_inbox_prefix(TENANT, name), tls=server.client_tls()) for name in names]
        spec = SupervisorSpec("test", children=[ChildSpec(f"catalog-{name}", CatalogSyncActor,
                                                          (seam, link, root / name, TENANT, 4096, 0.2))
                                                for name, link in zip(names, links, strict=True)])
        try:
            async with supervision_tree(spec) as tree:
                yield tree
        finally:
            for link in links:
                await seam.run(link.close)


def version(root: Path, name: str) -> int:
    if not catalog_path(root / name).exists():
        return 0
    catalog = LocalCatalog(catalog_path(root / name), name, REGION)
    try:
        return catalog.version()
    finally:
        catalog.close()


async def all_at(root: Path, names: list[str], wanted: int) -> bool:
    return all(version(root, name) == wanted for name in names)


async def price_change(server: EmbeddedNats, price: int, wanted: int) -> None:
    await publish_catalog(server, [item("COF-250", COFFEE_BARCODE, "Ground coffee 250 g", price, version=wanted),
                                   VersionMarker(wanted, 0)])


async def delete_edge_consumers(server: EmbeddedNats) -> int:
    async def run() -> int:
        link = server.hub_link("test-pulls-admin")
        await link.connect()
        try:
            names = [info.name for info in await link.js.consumers_info(catalog_stream(TENANT))
                     if info.name.startswith("edge-") and not info.name.startswith("edge-snapshot-")]
            for name in names:
                await link.js.delete_consumer(catalog_stream(TENANT), name)
            return len(names)
        finally:
            await link.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def test_idle_stores_pull_a_few_times_a_minute_and_a_price_change_reaches_them_within_2_s(
        server: EmbeddedNats, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "actors.catalog.sync")
    await publish_catalog(server, demo_catalog())
    async with stores(server, tmp_path, STORES) as tree:
        await wait_until(lambda: all_at(tmp_path, STORES, 1), timeout=30)
        await trio.sleep(1.0)  # the first loads' requests are done
        before = await trio.to_thread.run_sync(in_msgs, server)
        await trio.sleep(IDLE_S)
        requests = await trio.to_thread.run_sync(in_msgs, server) - before
        per_store_minute = requests / len(STORES) * 60 / IDLE_S
        print(f"{len(STORES)} idle stores, {IDLE_S:.0f} s: {requests} requests at the server "
              f"({per_store_minute:.1f} per store per minute)")
        assert per_store_minute < MAX_PULLS_PER_STORE_MINUTE
        assert not await _logged(caplog, "cannot read")  # the heartbeats kept every open pull alive

        started = time.monotonic()
        await price_change(server, 589, 2)  # the pulls are open: delivered as it is published
        await wait_until(lambda: all_at(tmp_path, STORES, 2), timeout=2.0, interval=0.02)
        print(f"a price change published while idle, applied at all {len(STORES)} stores in "
              f"{time.monotonic() - started:.2f} s")

        # one consumer per store, never dropped nor replaced while idle; now killed at the server (409)
        assert await delete_edge_consumers(server) == len(STORES)
        await price_change(server, 599, 3)
        await wait_until(lambda: all_at(tmp_path, STORES, 3), timeout=15)
        assert tree.restarts == 0


async def test_an_open_pull_keeps_its_consumer_past_the_inactive_threshold_across_its_expiries(
        server: EmbeddedNats) -> None:
    async def run() -> list[str]:
        link = server.hub_link("test-pulls-inactive")
        await link.connect()
        stream = catalog_stream(TENANT)
        try:
            await link.ensure_catalog_stream(TENANT)
            await link.js.add_consumer(stream, ConsumerConfig(name="inactive", ack_policy=AckPolicy.NONE,
                                                              inactive_threshold=1.0, mem_storage=True))
            held = (await link.js.stream_info(stream)).state.messages
            with pytest.raises(ValueError, match="heartbeat"):  # the server would refuse every request
                Puller(link.client, stream, "inactive", 64, expires_s=2.0, heartbeat_s=1.5)
            puller = Puller(link.client, stream, "inactive", 64, expires_s=2.0, heartbeat_s=0.5)
            await puller.open()
            taken = 0  # whatever earlier tests left on the stream, then nothing for 5 inactive thresholds
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                taken += len(await puller.take(0.5))
            assert taken == held
            await link.js.consumer_info(stream, "inactive")  # raises NotFoundError had the server dropped it
            await link.js.publish(f"catalog.{TENANT}.settings", b"x")
            later = [subject for subject, *_ in await puller.take(2.0)]
            await puller.close()
            return later
        finally:
            await link.close()
    assert await trio.to_thread.run_sync(asyncio.run, run()) == [f"catalog.{TENANT}.settings"]


async def test_a_stalled_server_is_noticed_by_the_missing_heartbeats_and_the_store_resumes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "actors.catalog.sync")
    own = start_server(tmp_path / "nats")
    try:
        await publish_catalog(own, demo_catalog())
        async with stores(own, tmp_path, STORES[:1]) as tree:
            await wait_until(lambda: all_at(tmp_path, STORES[:1], 1))
            pid = int(own.pid_file.read_text())
            os.kill(pid, signal.SIGSTOP)  # the connection stays up: only the heartbeats tell
            try:
                await wait_until(lambda: _logged(caplog, "went silent"), timeout=12)
            finally:
                os.kill(pid, signal.SIGCONT)
            await price_change(own, 589, 2)
            await wait_until(lambda: all_at(tmp_path, STORES[:1], 2), timeout=15)
            assert tree.restarts == 0
    finally:
        own.stop()


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)
