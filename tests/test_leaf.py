"""A store running its own NATS leaf node (novapos.leaf) against the real hub: its forwarder publishes into the
leaf and gets its acks there, so it sells and forwards while its WAN is cut; the hub's events stream sources the
leaf's stream (never capturing the store's subjects directly: no duplicate), the hub restarts the stalled
source when it has been silent too long, and every sale lands in PostgreSQL once; the catalog reaches the
store through the leaf's mirror (same sequence numbers); requests cross the leaf connection and their
replies come back; events another store's subjects carry never leave the leaf.

One hub process, one hub NATS, one leaf for the whole file (each step builds on the previous one)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgpack
import nats
import nats.js.errors
import pytest
import trio
from nats.js.api import ExternalStream, StreamSource
from starlette.applications import Starlette

from actors.devices.context import MANAGER
from actors.health.leaf import LeafBacklog
from actors.health.reporter import HealthReporter
from actors.storage.db import FILE_NAME
from actors.storage.forwarder import ForwarderActor
from actors.storage.outbox import OutboxActor
from edge.api.service import service_routes
from edge.app import store_link
from edge_runtime import Actor, AsyncioSeam, ChildSpec, SupervisorSpec, Tree, supervision_tree
from hub.ingest import leaf_sources
from hub.ingest.dead_letters import NotRedrivable, redrive
from hub.ingest.inbox import Delivery, ingest, sort_out
from hub.tenancy import provisioning, service
from hub.tenancy.credentials import new_seed, public_key, read_seed, write_seed
from novapos.adapters.nats import NatsLink
from novapos.cli.main import load_edge_config
from novapos.config import ConfigError, load_store
from novapos.config.leaf import LeafSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.leaf import CatalogMirrorWatch, LeafNode, ensure_catalog_mirror
from novapos.wire.catalog import catalog_stream
from novapos.wire.leaf import leaf_events_stream, leaf_name
from novapos.wire.subjects import EVENTS_STREAM, event_subject, request_subject
from tests.conftest import query, wait_until
from tests.events import sale_event
from tests.test_hub_process import HubProcess, until
from tests.test_tenancy_nats import Hub, _refused, _until, hub  # noqa: F401 (hub: the fixture)
from tests.wan import Wan

pytestmark = pytest.mark.xdist_group("test_leaf")
"""Its tests share a module-scoped world and build on each other in file order: one xdist worker runs them all."""

TENANT, STORE = "demo", "store-001"
OTHER_LEAF = "store-003"
"""A second leaf store, which the hub does not source: the one the first may try to reach."""
SALE = sale_event().body


class World:
    def __init__(self, root: Path, database_url: str) -> None:
        self.root, self.database_url = root, database_url
        leafnode_port = free_port()
        self.nats = EmbeddedNats.authorized(root / "nats", stores=(("demo", "store-002"),),
                                            leaf_stores=((TENANT, STORE), (TENANT, OTHER_LEAF)), domain="hub",
                                            leafnode_port=leafnode_port).start()
        self.wan = Wan(leafnode_port)
        self.leaf = LeafNode(TENANT, STORE, LeafSettings(f"tls://127.0.0.1:{self.wan.port}", 0, root / "leaf"),
                             self.nats.store_credentials(TENANT, STORE), self.nats.tls_settings()).start()
        self.other_leaf = LeafNode(TENANT, OTHER_LEAF, LeafSettings(f"tls://127.0.0.1:{leafnode_port}", 0,
                                                                    root / "other-leaf"),
                                   self.nats.store_credentials(TENANT, OTHER_LEAF), self.nats.tls_settings()).start()
        (root / "hub").mkdir()
        self.hub = HubProcess(root / "hub", self.nats.url, database_url, self.nats.hub_credentials,
                              settings="[leaf]\ncheck_every_s = 1\n", tls=self.nats.tls_settings())

    async def flag_leaf(self) -> None:
        """The store's record, flagged as running a leaf node (`novapos hub store leaf ... on`): the running hub
        sources its leaf from its next round on."""
        conn = await asyncpg.connect(self.database_url)
        try:
            async with conn.transaction():
                await service.add_tenant(conn, TENANT, "Demo", "EUR")
                await service.add_region(conn, TENANT, "north", "North")
                await service.add_store(conn, TENANT, STORE, "north", "Store 1",
                                        public_key(read_seed(self.nats.store_credentials(TENANT, STORE))))
                await service.set_leaf(conn, TENANT, STORE, True)
        finally:
            await conn.close()

    def stop(self) -> None:
        self.hub.stop()
        self.leaf.stop()
        self.other_leaf.stop()
        self.wan.close()
        self.nats.stop()

    async def on_hub(self, work: Any) -> Any:
        """`work(client)` with a plain client of the hub's rights, on a worker thread's asyncio loop."""
        async def run() -> Any:
            client = await nats.connect(self.nats.url, **self.nats.hub_options())
            try:
                return await work(client)
            finally:
                await client.close()
        return await trio.to_thread.run_sync(asyncio.run, run())

    async def on_leaf(self, work: Any) -> Any:
        """`work(link)` logged in to the leaf as the store, as the edge is."""
        async def run() -> Any:
            link = self.leaf.link("test-leaf-client")
            await link.connect()
            try:
                return await work(link)
            finally:
                await link.close()
        return await trio.to_thread.run_sync(asyncio.run, run())

    async def hub_stream(self) -> list[tuple[str, int]]:
        """(store, sequence number) of each event in the hub's events stream, in stream order."""
        async def work(client: Any) -> list[tuple[str, int]]:
            js = client.jetstream()
            state = (await js.stream_info(EVENTS_STREAM)).state
            events = [msgpack.unpackb((await js.get_msg(EVENTS_STREAM, seq)).data)
                      for seq in range(state.first_seq, state.last_seq + 1)] if state.messages else []
            return [(event["store"], event["seq"]) for event in events]
        return await self.on_hub(work)

    async def applied(self) -> list[int]:
        rows = await query(self.database_url, "SELECT seq FROM sales WHERE store = $1 ORDER BY seq", STORE)
        return [row["seq"] for row in rows]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str) -> Iterator[World]:
    name = f"novapos_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(postgres_server_url, f'CREATE DATABASE "{name}"'))
    built = World(tmp_path_factory.mktemp("leaf"), f"{postgres_server_url.rpartition('/')[0]}/{name}")
    try:
        until(lambda: (built.hub.health() or (0, {}))[0] == 200, timeout=60, what="the hub ready")
        asyncio.run(built.flag_leaf())  # its tables migrated by the hub
        asyncio.run(_hub_catalog(built.nats))  # as the hub's catalog publisher makes it on its first run
        asyncio.run(built.leaf.ensure_streams())
        yield built
    finally:
        built.stop()
        asyncio.run(_admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _hub_catalog(server: EmbeddedNats) -> None:
    link = server.hub_link()
    await link.connect()
    try:
        await link.ensure_catalog_stream(TENANT)
    finally:
        await link.close()


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def edge(path: Path, leaf: LeafNode) -> AsyncIterator[Tree]:
    """The store's outbox and forwarder as the edge runs them in leaf mode: publishing to the leaf."""
    link = leaf.link("test-edge")
    with AsyncioSeam() as seam:
        spec = SupervisorSpec("test", children=[
            ChildSpec("outbox", OutboxActor, (path, TENANT, STORE)),
            ChildSpec("forwarder", ForwarderActor, (seam, link)),
        ])
        try:
            async with supervision_tree(spec) as tree:
                yield tree
        finally:
            await seam.run(link.close)


async def sell(tree: Tree, count: int) -> None:
    for _ in range(count):
        await tree.ask("outbox", "append", "sale.completed", 1, SALE)
    tree.tell("forwarder", "kick")


async def drained(tree: Tree) -> bool:
    return await tree.ask("outbox", "depth") == 0


async def test_a_leaf_store_sells_through_a_wan_cut_and_every_sale_lands_once(world: World, tmp_path: Path) -> None:
    async with edge(tmp_path / FILE_NAME, world.leaf) as tree:
        await sell(tree, 5)
        await wait_until(lambda: drained(tree))
        await wait_until(lambda: _equal(world.applied, [1, 2, 3, 4, 5]), timeout=20)

        before_cut = len(world.hub.lines)
        world.wan.cut()  # the WAN is down: the store keeps selling, its forwarder keeps emptying the outbox
        await sell(tree, 5)
        await wait_until(lambda: drained(tree), timeout=5)  # acked by the leaf, not by the hub
        cut_for = leaf_sources.STALLED_AFTER_S + 3  # long enough for the hub to see its source stalled
        await trio.sleep(cut_for)
        assert await world.applied() == [1, 2, 3, 4, 5]
        world.wan.restore()
        # the leaf reconnects within a second; the hub restarts the stalled source within check_every_s (1 s):
        # well before nats-server's own retry (10 s x failures)
        await wait_until(lambda: _equal(world.applied, list(range(1, 11))), timeout=8)

    assert await world.hub_stream() == [(STORE, seq) for seq in range(1, 11)]  # sourced once, never captured directly
    said = [line for line in until(lambda: "is sourced again" in "".join(world.hub.lines[before_cut:]) and
                                   world.hub.lines[before_cut:], timeout=5, what="the recovery logged")
            if "leaf_sources" in line]
    stalls = [line for line in said if "has sent nothing for over" in line]
    assert len(stalls) == 1, said  # said once per stall, not once per check
    assert f"store {TENANT}/{STORE}'s leaf node" in stalls[0] and "check the store's WAN" in stalls[0]


async def test_the_catalog_is_mirrored_down_and_a_stalled_mirror_is_recreated_once_the_hub_answers(
        world: World) -> None:
    stream = catalog_stream(TENANT)

    async def publish(client: Any) -> int:
        js = client.jetstream()
        await js.publish(f"catalog.{TENANT}.item.LEAF-1", b"leaf item")
        return (await js.stream_info(stream)).state.last_seq
    first = await world.on_hub(publish)

    async def mirrored(link: Any, seq: int) -> bytes | None:
        try:
            return (await link.js.get_msg(stream, seq)).data
        except nats.js.errors.NotFoundError:
            return None
    watch = CatalogMirrorWatch(TENANT, STORE)  # what `novapos leaf` runs every [leaf] check_every_s

    async def check(link: Any) -> bool:
        return await watch.check(link)

    async def checked_then_mirrored(link: Any, seq: int) -> bytes | None:
        await watch.check(link)  # the WAN cut of the first test may have left the mirror in the server's backoff
        return await mirrored(link, seq)
    assert await wait_until(lambda: world.on_leaf(lambda link: checked_then_mirrored(link, first)),
                            timeout=5, interval=0.3) == b"leaf item"

    async def recreate_while_cut(link: Any) -> bool:  # a mirror made while the WAN is down: its first try fails,
        await link.js.delete_stream(stream)         # nats-server's next one comes 10 s later
        await ensure_catalog_mirror(link.js, TENANT, STORE)
        return await watch.check(link)
    world.wan.cut()
    try:
        assert not await world.on_leaf(recreate_while_cut)  # the hub does not answer: nothing to catch up with
        second = await world.on_hub(publish)
    finally:
        world.wan.restore()

    # behind the hub and not moving between two checks: re-created, well before the server's own retry
    assert await wait_until(lambda: world.on_leaf(check), timeout=5, interval=0.3)
    assert await wait_until(lambda: world.on_leaf(lambda link: mirrored(link, second)), timeout=3) == b"leaf item"
    assert not await world.on_leaf(check) and not await world.on_leaf(check)  # caught up: left alone


async def test_requests_cross_the_leaf_and_other_stores_events_never_leave_it(world: World) -> None:
    async def leaf_stream(link: Any) -> int:
        return (await link.js.stream_info(leaf_events_stream(TENANT, STORE))).state.messages
    held = await world.on_leaf(leaf_stream)

    async def ask_and_forge(link: Any) -> bytes:
        await link.client.publish(event_subject(TENANT, "store-002", "sale.completed"), sale_event(store="store-002").encode())
        await link.client.flush()
        reply = await link.client.request(request_subject(TENANT, STORE, "staff"), b"", timeout=5)
        return reply.data
    assert await world.on_leaf(ask_and_forge)  # the hub's staff responder answered across the leaf connection

    assert await world.on_leaf(leaf_stream) == held  # not its subject: the local stream did not take it either
    await trio.sleep(0.5)
    assert "store-002" not in {store for store, _ in await world.hub_stream()}  # nor may the leaf's user export it


async def _equal(read: Any, expected: list[int]) -> bool:
    return await read() == expected


def _store_toml(tmp_path: Path, leaf: str) -> Path:
    seed = tmp_path / "store.seed"
    write_seed(seed, new_seed())
    path = tmp_path / "store.toml"
    path.write_text(f'tenant = "{TENANT}"\nstore = "{STORE}"\ncurrency = "EUR"\n[state]\ndir = "{tmp_path / "edge"}"\n'
                    f'[nats]\ncredentials = "{seed}"\n{leaf}')
    return path


def test_the_leaf_table_is_checked_and_turns_the_edge_to_its_own_leaf(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ('hub_url = "http://hub:7422"', 'hub_url = ""', 'hub_url = "tls://hub:7422"\nport = 0',
                'hub_url = "tls://hub:7422"\nsocket = "x"', 'hub_url = "tls://hub:7422,"',
                'hub_url = "tls://hub:7422, tls://hub"', 'hub_url = "tls://hub:7422,nats-leaf://hub-b:7422"',
                'hub_url = "tls://hub:port"', 'hub_url = "nats://hub:7422"', 'hub_url = "nats-leaf://hub:7422"',
                'hub_url = "tls://hub:7422"\nallow_plaintext = "yes"'):
        with pytest.raises(ConfigError, match=r"\[leaf\]|leaf"):
            load_store(_store_toml(tmp_path, f"[leaf]\n{bad}\n"))
    with pytest.raises(ConfigError, match="must not carry a user or password") as refused:
        load_store(_store_toml(tmp_path, '[leaf]\nhub_url = "tls://store:s3cret@hub:7422"\n'))
    assert "s3cret" not in str(refused.value)
    plain = load_store(_store_toml(tmp_path, '[leaf]\nhub_url = "nats-leaf://hub:7422"\nallow_plaintext = true\n'))
    assert plain.leaf is not None and plain.leaf.hub_url == "nats-leaf://hub:7422"  # on a trusted network, said so
    config = load_store(_store_toml(tmp_path, '[leaf]\nhub_url = "tls://hub-a:7422, tls://hub-b:7422"\n'))
    assert config.leaf is not None and config.leaf.state_dir == tmp_path / "edge" / "leaf"
    link = store_link(config)
    assert link.url == "nats://127.0.0.1:4222" and link.tls is None  # loopback: the leaf, not the hub
    assert link.inbox_prefix == f"_INBOX.{TENANT}.{STORE}"
    assert load_store(_store_toml(tmp_path, "")).leaf is None
    relative = _store_toml(tmp_path, '[leaf]\nhub_url = "tls://hub:7422"\ndir = "leaf-state"\n')
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "systemd"))
    leaf = load_edge_config(relative).leaf
    assert leaf is not None and leaf.state_dir == tmp_path / "systemd" / "leaf-state"  # under systemd's, as [state]


def test_the_leaf_servers_config_holding_the_seed_is_owner_only_even_when_it_was_not(tmp_path: Path) -> None:
    state = tmp_path / "leaf"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    seed = tmp_path / "store.seed"
    write_seed(seed, new_seed())
    leaf = LeafNode(TENANT, STORE, LeafSettings("tls://hub:7422", 0, state), seed)
    leaf.config_file.write_text("# an older, world-readable config\n")
    leaf.config_file.chmod(0o644)
    leaf.write_config()
    assert (leaf.config_file.stat().st_mode & 0o777, state.stat().st_mode & 0o777) == (0o600, 0o700)
    assert seed.read_text().strip() in leaf.config_file.read_text()  # it holds the seed: hence the mode
    assert [path.name for path in state.iterdir()] == [leaf.config_file.name]  # no partial file left behind


def test_novapos_leaf_runs_the_server_makes_the_local_streams_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = _store_toml(tmp_path, f'[leaf]\nhub_url = "tls://127.0.0.1:{free_port()}"\nport = {port}\n'
                                   'check_every_s = 1\n')  # no hub there: the leaf serves the box all the same
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOVAPOS_")}
    process = subprocess.Popen([sys.executable, "-m", "novapos.cli", "leaf", "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        async def streams() -> list[str]:
            link = NatsLink(f"nats://127.0.0.1:{port}", "test", credentials=tmp_path / "store.seed")
            await link.connect()
            try:
                return sorted([(await link.js.stream_info(leaf_events_stream(TENANT, STORE))).config.name or "",
                               str((await link.js.stream_info(catalog_stream(TENANT))).config.mirror)])
            finally:
                await link.close()

        def made() -> list[str] | None:
            try:
                return asyncio.run(streams())
            except Exception:
                return None
        found = until(made, timeout=30, what="the leaf's streams")
        assert leaf_events_stream(TENANT, STORE) in found and any(f"name='{catalog_stream(TENANT)}'" in f for f in found)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    said = process.stderr.read()
    assert "leaf node for store demo/store-001 listening on" in said and "leaf node stopped" in said
    with pytest.raises(OSError):  # the nats-server child went with it
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_store_flagged_as_a_leaf_logs_in_as_a_leaf_node_only_and_may_not_export_its_events(
        hub: Hub) -> None:  # noqa: F811 (the fixture imported above)
    seed = hub.provision(TENANT, STORE)
    assert asyncio.run(_refused(hub.nats, seed)) == ""  # provisioned: a plain client login, as the edge's
    assert hub.config.nats_authorization is not None
    assert hub.run(lambda pool: provisioning.set_store_leaf(pool, hub.config, TENANT, STORE, True))  # `store leaf on`
    text = hub.config.nats_authorization.read_text()
    assert not hub.run(lambda pool: provisioning.set_store_leaf(pool, hub.config, TENANT, STORE, True))  # already
    assert hub.config.nats_authorization.read_text() == text
    block = next(line for line in text.splitlines() if public_key(seed.read_text()) in line)
    assert '"LEAFNODE"' in block and '"STANDARD"' not in block
    permissions = json.loads(block.split("permissions: ", 1)[1].split(", allowed_connection_types")[0])
    exported = permissions["publish"]["allow"]
    assert f"novapos.{TENANT}.{STORE}.req.>" in exported
    assert not any(subject.startswith(("novapos.", "_INBOX", ">", "$JS.API")) and ".req." not in subject
                   for subject in exported), exported  # its events are sourced, never captured from the leaf

    async def refused_soon() -> bool:
        return await _refused(hub.nats, seed) != ""
    asyncio.run(_until(refused_soon))  # reloaded: a plain client login with the leaf's key is refused


async def test_a_leaf_box_widening_its_own_stream_cannot_forge_another_stores_events(world: World) -> None:
    """(review) The store's user has every right on its own leaf: it adds another store's subjects to its local
    stream and publishes there. The hub's source takes only the store's own subjects, so nothing reaches the hub."""
    async def forge(link: Any) -> int:
        name = leaf_events_stream(TENANT, STORE)
        config = (await link.js.stream_info(name)).config
        config.subjects = [*config.subjects, "novapos.demo.store-002.evt.>"]
        await link.js.update_stream(config)
        ack = await link.js.publish(event_subject(TENANT, "store-002", "sale.completed"),
                                    sale_event(store="store-002").encode())
        ours = await link.js.publish(event_subject(TENANT, STORE, "sale.completed"), sale_event(seq=1000).encode())
        return ack.seq + ours.seq
    assert await world.on_leaf(forge)
    # the store's own event after the forged one arrived: the forged one was passed over, not just slow
    await wait_until(lambda: _contains(world.applied, 1000), timeout=15)
    assert "store-002" not in {store for store, _ in await world.hub_stream()}
    assert not await query(world.database_url, "SELECT 1 FROM sales WHERE store = 'store-002'")


def test_ingest_dead_letters_an_event_sourced_from_another_stores_leaf() -> None:
    """Defence in depth behind the source's filter: what the hub's stream sourced (the Nats-Stream-Source header)
    must come from the leaf stream of the store its subject names."""
    subject = event_subject(TENANT, "store-002", "sale.completed")
    data = sale_event(store="store-002").encode()
    mine = f"{leaf_events_stream(TENANT, 'store-002')}:abcd1234 7 novapos.demo.store-002.evt.> {subject}"
    theirs = f"{leaf_events_stream(TENANT, STORE)}:abcd1234 7 novapos.demo.store-001.evt.> {subject}"
    assert not sort_out([Delivery(subject, data, mine)], frozenset({TENANT})).rejections
    assert not sort_out([Delivery(subject, data)], frozenset({TENANT})).rejections  # a store connected directly
    [rejection] = sort_out([Delivery(subject, data, theirs)], frozenset({TENANT})).rejections
    assert "forged" in rejection.reason and leaf_events_stream(TENANT, STORE) in rejection.reason


async def test_one_leaf_can_neither_receive_nor_publish_another_leafs_jetstream_deliveries(world: World) -> None:
    """Each leaf's mirror deliveries and source deliveries use its own prefix, and its user is allowed only that:
    leaf A subscribing to every mirror delivery hears only its own; publishing on B's source delivery subject (which
    the hub's stream would stamp with B's Nats-Stream-Source) never reaches the hub."""
    mine, theirs = (leaf_name(TENANT, store) for store in (STORE, OTHER_LEAF))

    async def run() -> list[str]:
        heard: list[str] = []

        async def note(message: Any) -> None:
            heard.append(message.subject)
        hub_client = await nats.connect(world.nats.url, **world.nats.hub_options())
        leaf = world.leaf.link("test-leaf-a")
        await leaf.connect()
        try:
            await hub_client.subscribe("$JS.S.>", cb=note)
            await leaf.client.subscribe("$JS.M.>", cb=note)
            await hub_client.flush()
            await leaf.client.flush()
            await asyncio.sleep(0.5)  # the subscriptions' interest crosses the leaf connection
            for prefix in (mine, theirs):
                await hub_client.publish(f"$JS.M.{prefix}.M.test", b"mirror delivery")
                await leaf.client.publish(f"$JS.S.{prefix}.S.test", sale_event(store=OTHER_LEAF).encode())
            await hub_client.flush()
            await leaf.client.flush()
            await asyncio.sleep(1.0)
            return heard
        finally:
            await leaf.close()
            await hub_client.close()
    heard = await trio.to_thread.run_sync(asyncio.run, run())
    assert f"$JS.M.{mine}.M.test" in heard and f"$JS.S.{mine}.S.test" in heard, heard  # its own: allowed
    assert f"$JS.M.{theirs}.M.test" not in heard, heard  # B's mirror deliveries never reach A
    assert f"$JS.S.{theirs}.S.test" not in heard, heard  # nor may A publish B's source deliveries
    # what this cannot isolate without one NATS account per store is said once, when the hub first finds a leaf store
    warned = [line for line in world.hub.lines if "store(s) flagged as running a leaf node" in line]
    assert len(warned) == 1 and "$JSC.R.>" in warned[0] and "one NATS account per store" in warned[0], warned


async def _contains(read: Any, seq: int) -> bool:
    return seq in await read()


async def test_a_source_added_by_an_earlier_release_is_narrowed_in_place_and_loses_nothing(world: World) -> None:
    """An events stream sourcing a leaf without a filter, on the fleet-wide deliver prefix (as before the leaf
    permissions named each store's own): the hub's leaf_sources job replaces it, and the store's events keep landing
    once each."""
    async def downgrade(client: Any) -> None:
        js = client.jetstream()
        config = (await js.stream_info(EVENTS_STREAM)).config
        config.sources = [StreamSource(name=source.name, external=ExternalStream(api=source.external.api))
                          if source.external is not None else source for source in config.sources or []]
        await js.update_stream(config)
    await world.on_hub(downgrade)

    async def narrowed(client: Any) -> bool:
        sources = (await client.jetstream().stream_info(EVENTS_STREAM)).config.sources or []
        return len(sources) == 1 and sources[0].filter_subject == f"novapos.{TENANT}.{STORE}.evt.>" and sources[0].external.deliver is not None
    await wait_until(lambda: world.on_hub(narrowed), timeout=10, interval=0.3)

    async def sell_one(link: Any) -> None:
        await link.js.publish(event_subject(TENANT, STORE, "sale.completed"), sale_event(seq=1001).encode())
    await world.on_leaf(sell_one)
    await wait_until(lambda: _contains(world.applied, 1001), timeout=15)
    stream = await world.hub_stream()
    assert len(stream) == len(set(stream)), stream  # resumed after the last message it held: nothing sourced twice


async def test_a_forged_dead_letter_is_never_re_driven(world: World) -> None:
    """Re-driven, the letter would carry no Nats-Stream-Source and pass as the other store's own event."""
    subject = event_subject(TENANT, "store-002", "sale.completed")
    theirs = f"{leaf_events_stream(TENANT, STORE)}:abcd1234 9 > > {subject}"

    async def run() -> str:
        pool = await asyncpg.create_pool(world.database_url, min_size=1, max_size=2)
        try:
            result = await ingest(pool, [Delivery(subject, sale_event(store="store-002", seq=77).encode(), theirs)],
                                  frozenset({TENANT}))
            assert result.rejected == 1 and not result.applied
            letter = await pool.fetchval("SELECT id FROM dead_letters WHERE reason LIKE 'forged:%' ORDER BY id DESC")
            with pytest.raises(NotRedrivable, match="never re-driven") as refused:
                await redrive(pool, letter, frozenset({TENANT}))
            assert await pool.fetchval("SELECT redriven_at FROM dead_letters WHERE id = $1", letter) is None
            return str(refused.value)
        finally:
            await pool.close()
    assert "another store's leaf node" in await trio.to_thread.run_sync(asyncio.run, run())
    assert not await query(world.database_url, "SELECT 1 FROM sales WHERE store = 'store-002'")


class Quiet(Actor):
    """Stands in for the device manager (no devices) and the catalog and staff actors /healthz asks."""

    def statuses(self) -> list[dict[str, Any]]:
        return []

    def status(self) -> dict[str, Any]:
        return {}


async def test_healthz_and_metrics_count_the_events_waiting_on_the_leaf_while_the_wan_is_cut(
        world: World, tmp_path: Path) -> None:
    link = world.leaf.link("test-edge-health")
    backlog = LeafBacklog(behind_alert_s=2.0)
    with AsyncioSeam() as seam:
        spec = SupervisorSpec("test", children=[
            ChildSpec("outbox", OutboxActor, (tmp_path / FILE_NAME, TENANT, STORE)),
            ChildSpec("forwarder", ForwarderActor, (seam, link)),
            *(ChildSpec(name, Quiet) for name in (MANAGER, "catalog", "staff")),
            ChildSpec("health", HealthReporter, (seam, link, TENANT, STORE, (), tmp_path / FILE_NAME, 3600, 0.25),
                      {"leaf": backlog}),
        ])
        try:
            async with supervision_tree(spec) as tree:
                app = Starlette(routes=service_routes(tree))
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as http:
                    async def health() -> dict[str, Any]:
                        answer: dict[str, Any] = (await http.get("/healthz")).json()
                        return answer

                    async def unsourced(count: int, status: str) -> bool:
                        now = await health()
                        return (now["leaf_unsourced_events"] == count and now["status"] == status
                                and now["leaf_hub_answered_s_ago"] is not None)

                    async def in_hub_stream(count: int) -> bool:
                        return len(await world.hub_stream()) == count

                    before = len(await world.hub_stream())
                    await sell(tree, 2)  # (sequence numbers 1 and 2 again, of a new outbox: hence the last test)
                    await wait_until(lambda: in_hub_stream(before + 2), timeout=10, interval=0.3)

                    async def last_seq(leaf_link: Any) -> int:
                        return int((await leaf_link.js.stream_info(leaf_events_stream(TENANT, STORE))).state.last_seq)
                    holds = await world.on_leaf(last_seq)

                    async def caught_up() -> bool:  # the edge has looked since the two landed (a look waits while
                        return backlog.last_seq >= holds and await unsourced(0, "ok")  # a report is answered)
                    await wait_until(caught_up, timeout=10)  # the hub said so

                    world.wan.cut()
                    try:
                        await sell(tree, 4)
                        await wait_until(lambda: drained(tree), timeout=5)  # the outbox says nothing waits ...
                        await wait_until(lambda: unsourced(4, "degraded"), timeout=10)  # ... the leaf does
                        cut = await health()
                        assert cut["outbox_depth"] == 0 and cut["hub_link"] == "connected"  # the leaf's link
                        assert cut["leaf_problem"].startswith("4 event(s) on this store's leaf node have not reached")
                        assert "check the store's WAN" in cut["leaf_problem"]
                        text = (await http.get("/metrics")).text
                        assert "\nnovapos_edge_leaf_unsourced_events 4.0\n" in text
                    finally:
                        world.wan.restore()
                    # the hub restarts the stalled source within check_every_s (1 s); the reporter asks every 2 s
                    await wait_until(lambda: unsourced(0, "ok"), timeout=20)
                    assert "leaf_problem" not in await health()
                    assert "\nnovapos_edge_leaf_unsourced_events 0.0\n" in (await http.get("/metrics")).text
        finally:
            await seam.run(link.close)


async def test_unsource_refuses_an_undrained_leaf_forces_with_the_figures_audited_and_refuses_a_flagged_store(
        world: World) -> None:
    """Last too: it drops the store's source, which the running hub (the store is still flagged) adds back."""
    async def with_link(work: Any) -> Any:
        async def run() -> Any:
            link = world.nats.hub_link("test-unsource")
            await link.connect()
            pool = await asyncpg.create_pool(world.database_url, min_size=1, max_size=1)
            try:
                async with pool.acquire() as conn, conn.transaction():
                    return await work(link, conn)
            finally:
                await pool.close()
                await link.close()
        return await trio.to_thread.run_sync(asyncio.run, run())

    def unsource(force: bool) -> Any:
        return with_link(lambda link, conn: leaf_sources.unsource(link, conn, TENANT, STORE, force=force,
                                                                  actor="cli:test"))

    async def sourced(client: Any) -> bool:
        sources = (await client.jetstream().stream_info(EVENTS_STREAM)).config.sources or []
        return any(source.name == leaf_events_stream(TENANT, STORE) for source in sources)

    async def sell_one(link: Any) -> None:
        await link.js.publish(event_subject(TENANT, STORE, "sale.completed"), sale_event(seq=3001).encode())

    world.wan.cut()
    try:
        await world.on_leaf(sell_one)  # on the leaf only: the hub cannot source it
        await trio.sleep(leaf_sources.DRAINED_WITHIN_S + 1)
        with pytest.raises(leaf_sources.NotUnsourced, match=r"its leaf has not answered for \d+ s .*--force"):
            await unsource(force=False)
        assert await world.on_hub(sourced)
        forced = await unsource(force=True)
        assert forced.dropped and not forced.drained and forced.silent_s is not None
    finally:
        world.wan.restore()
    details = await query(world.database_url, "SELECT details FROM audit_records WHERE action = 'store.unsourced' "
                                              "ORDER BY seq DESC LIMIT 1")
    record = json.loads(details[0]["details"])
    assert record["forced"] is True and record["drained"] is False
    assert record["sourced_seq"] == forced.sourced_seq > 0 and record["leaf_stream"] == leaf_events_stream(TENANT, STORE)
    # the store is still flagged: the hub's leaf_sources job adds the source back, and the sale on the leaf arrives
    await wait_until(lambda: world.on_hub(sourced), timeout=10, interval=0.3)
    await wait_until(lambda: _contains(world.applied, 3001), timeout=20)

    async def drained_now(link: Any, conn: Any) -> Any:
        return await leaf_sources.unsource(link, conn, TENANT, STORE, force=False, actor="cli:test")
    done = await wait_until(lambda: with_link(drained_now), timeout=10, interval=0.5)  # the source live, lag 0
    assert done.dropped and done.drained and done.sourced_seq == forced.sourced_seq + 1
    await wait_until(lambda: world.on_hub(sourced), timeout=10, interval=0.3)

    # the command itself refuses while the store is flagged, before it touches the source
    run = await trio.to_thread.run_sync(functools.partial(
        subprocess.run, [sys.executable, "-m", "novapos.cli", "hub", "--config", str(world.root / "hub" / "hub.toml"),
                         "store", "unsource", TENANT, STORE],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("NOVAPOS_")}))
    assert run.returncode == 1, run.stderr
    assert "is flagged as running a leaf node" in run.stderr and f"store leaf {TENANT} {STORE} off" in run.stderr
    assert await world.on_hub(sourced)
