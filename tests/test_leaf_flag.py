"""`novapos hub store leaf TENANT STORE on|off`: whether a store runs its own NATS leaf node is a flag on its record
in PostgreSQL, audited, which the NATS authorization and every hub process's leaf_sources job read (the job each
round: no restart, no list to keep in step across hub configs). Real nats-server (JetStream domain hub, a leafnode
listener, the authorization the command rewrites and reloads), a real hub process, a real leaf node, PostgreSQL."""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hub.db import close_pool, create_pool, migrate
from hub.partitions import maintain_for
from hub.tenancy import provisioning, service
from hub.tenancy.credentials import new_seed, public_key, read_seed, write_seed
from hub.tenancy.nats_auth import authorization, write_atomically
from hub.tenancy.service import TenancyError
from novapos.config import ConfigError, HubConfig, load_hub
from novapos.config.hub import AuditSettings, RetentionSettings
from novapos.config.leaf import LeafSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.leaf import LeafNode
from novapos.validators import Invalid
from novapos.wire.leaf import leaf_events_stream
from novapos.wire.subjects import EVENTS_STREAM, event_subject
from tests.events import sale_event
from tests.test_hub_process import HubProcess, until
from tests.test_tenancy_cli import _novapos
from tests.test_tenancy_nats import Hub, hub  # noqa: F401 (the fixture)

TENANT, STORE = "demo", "store-001"


@pytest.fixture
def leafy(tmp_path: Path, database_url: str) -> Iterator[Hub]:
    """As tests.test_tenancy_nats's hub (an authorization the records rewrite, reloaded), with JetStream domain hub
    and a leafnode listener for the store's leaf node."""
    write_seed(tmp_path / "hub.seed", hub_seed := new_seed())
    auth = tmp_path / "nats-authorization.conf"
    write_atomically(auth, authorization(public_key(hub_seed), []))
    server = EmbeddedNats(tmp_path / "nats", authorization=auth, hub_credentials=tmp_path / "hub.seed", domain="hub",
                          leafnode_port=free_port()).start()
    config = HubConfig(nats_url=server.url, database_url=database_url, nats_credentials=tmp_path / "hub.seed",
                       tls=server.tls_settings(), nats_authorization=auth, nats_pid_file=server.pid_file,
                       audit=AuditSettings(checkpoint_dir=tmp_path / "audit-checkpoints"))
    try:
        yield Hub(config, server, tmp_path / "bundles")
    finally:
        server.stop()


async def _on_hub(server: EmbeddedNats, tenant_catalog: bool = False) -> int:
    """How many of the store's events the hub's events stream holds (and, first, the tenant's catalog stream made,
    which the leaf mirrors)."""
    link = server.hub_link()
    await link.connect()
    try:
        if tenant_catalog:
            await link.ensure_catalog_stream(TENANT)
        state = (await link.js.stream_info(EVENTS_STREAM)).state
        subjects = [(await link.js.get_msg(EVENTS_STREAM, seq)).subject
                    for seq in (range(state.first_seq, state.last_seq + 1) if state.messages else ())]
        return sum(subject is not None and subject.startswith(f"novapos.{TENANT}.{STORE}.") for subject in subjects)
    finally:
        await link.close()


async def _sourced(server: EmbeddedNats) -> bool:
    link = server.hub_link()
    await link.connect()
    try:
        sources = (await link.js.stream_info(EVENTS_STREAM)).config.sources or []
        return any(source.name == leaf_events_stream(TENANT, STORE) for source in sources)
    finally:
        await link.close()


async def _sell(leaf: LeafNode, *seqs: int) -> None:
    """Sales published on the store's leaf, as its edge does (acknowledged there)."""
    link = leaf.link("test-edge")
    await link.connect()
    try:
        for seq in seqs:
            await link.js.publish(event_subject(TENANT, STORE, "sale.completed"), sale_event(seq=seq).encode())
    finally:
        await link.close()


def _applied(at: Hub) -> list[int]:
    rows = at.run(lambda pool: pool.fetch("SELECT seq FROM sales WHERE store = $1 ORDER BY seq", STORE))
    return [row["seq"] for row in rows]


def _leaf_login(at: Hub, seed: Path) -> bool:
    """Whether the store's user may log in as a leaf node only, in the authorization NATS runs."""
    assert at.config.nats_authorization is not None
    block = next(line for line in at.config.nats_authorization.read_text().splitlines()
                 if public_key(read_seed(seed)) in line)
    return '"LEAFNODE"' in block and '"STANDARD"' not in block


def test_a_running_hub_sources_a_store_flagged_on_and_never_adds_it_back_once_off_and_unsourced(
        leafy: Hub, tmp_path: Path) -> None:
    seed = leafy.provision(TENANT, STORE)
    (tmp_path / "hub").mkdir()
    hub_process = HubProcess(tmp_path / "hub", leafy.nats.url, leafy.config.database_url, leafy.config.nats_credentials,
                             settings="[leaf]\ncheck_every_s = 1\n", tls=leafy.nats.tls_settings())
    leaf = None
    try:
        until(lambda: (hub_process.health() or (0, {}))[0] == 200, timeout=60, what="the hub ready")
        asyncio.run(_on_hub(leafy.nats, tenant_catalog=True))  # the events stream and the catalog, as the hub makes
        on = _novapos(leafy, "store", "leaf", TENANT, STORE, "on")  # the hub runs already: it is not restarted
        assert on.returncode == 0 and "runs its own NATS leaf node" in on.stdout, on.stderr
        assert _leaf_login(leafy, seed)
        leaf = LeafNode(TENANT, STORE, LeafSettings(leafy.nats.leaf_url, 0, tmp_path / "leaf"), seed,
                        leafy.nats.tls_settings()).start()
        asyncio.run(leaf.ensure_streams())
        asyncio.run(_sell(leaf, 1, 2, 3))
        until(lambda: _applied(leafy) == [1, 2, 3], timeout=20, what="the leaf's sales in PostgreSQL")
        assert asyncio.run(_on_hub(leafy.nats)) == 3  # sourced once each, never captured directly

        off = _novapos(leafy, "store", "leaf", TENANT, STORE, "off")
        assert off.returncode == 0 and f"`novapos hub store unsource {TENANT} {STORE}`" in off.stdout, off.stderr
        assert not _leaf_login(leafy, seed)  # a plain client again
        assert asyncio.run(_sourced(leafy.nats))  # off stops the hub adding the source, it does not drop it
        # its leaf's connection outlives the reload (nats-server keeps it until it reconnects): drained, no --force
        dropped = until(lambda: (done := _novapos(leafy, "store", "unsource", TENANT, STORE)).returncode == 0 and done,
                        timeout=20, what="the drained source dropped")
        assert "it held all of it (up to leaf sequence 3)" in dropped.stdout, dropped.stdout
        time.sleep(4)  # four rounds of the running hub's leaf_sources job (check_every_s 1)
        assert not asyncio.run(_sourced(leafy.nats)), "a running hub added the unsourced store's source back"
        assert "now sources store demo/store-001's leaf node" in hub_process.log
    finally:
        if leaf is not None:
            leaf.stop()
        hub_process.stop()
    audited = leafy.run(lambda pool: pool.fetch("SELECT actor, action, store FROM audit_records WHERE action LIKE "
                                                "'store.%' AND action <> 'store.provisioned' ORDER BY seq"))
    assert [(row["actor"], row["action"], row["store"]) for row in audited] == [
        (f"cli:{getpass.getuser()}", action, STORE) for action in ("store.leaf_on", "store.leaf_off", "store.unsourced")]


def test_the_flag_refuses_unknown_stores_hostile_names_and_a_short_inbox_with_a_sentence_changing_nothing(
        hub: Hub) -> None:  # noqa: F811 (the fixture imported above)
    seed = hub.provision(TENANT, STORE)
    assert hub.config.nats_authorization is not None
    before = hub.config.nats_authorization.read_text()

    def leaf(config: HubConfig, tenant: str, store: str) -> bool:
        return bool(hub.run(lambda pool: provisioning.set_store_leaf(pool, config, tenant, store, True,
                                                                      actor="cli:test")))
    for tenant, store, error, says in [
            (TENANT, "store-404", TenancyError, "tenant 'demo' has no store 'store-404'"),
            (TENANT, "store-001;DROP TABLE stores", Invalid, "store may use only letters, digits, '-' and '_'"),
            ("demo\n", STORE, Invalid, "tenant may use only letters"),
            ("x" * 10_000, STORE, Invalid, "tenant must be at most")]:
        with pytest.raises(error, match=says):
            leaf(hub.config, tenant, store)
    short = replace(hub.config, retention=RetentionSettings(inbox_days=21))
    with pytest.raises(TenancyError, match=r"inbox must outlast a leaf store's local stream: .*inbox_days 21 must be "
                                           r"at least 30 days .* = 37"):
        leaf(short, TENANT, STORE)
    said = _novapos(hub, "store", "leaf", TENANT, "store 2", "on")
    assert said.returncode == 1 and said.stderr.startswith("novapos hub store leaf: store may use only letters"), said
    assert _novapos(hub, "store", "leaf", TENANT, STORE, "yes").returncode == 2  # on or off only

    assert hub.config.nats_authorization.read_text() == before and not _leaf_login(hub, seed)
    assert hub.run(lambda pool: pool.fetchval("SELECT count(*) FROM audit_records WHERE action LIKE 'store.leaf%'")) == 0
    assert not hub.run(lambda pool: pool.fetchval("SELECT bool_or(leaf) FROM stores"))


def test_an_earlier_releases_leaf_stores_list_is_refused_with_the_commands_to_run(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[leaf]\nstores = ["demo/store-001", "demo/store 7", 3]\ncheck_every_s = 5\n')
    with pytest.raises(ConfigError) as refused:
        load_hub(config)
    assert str(refused.value) == (
        f"{config}: [leaf] stores is no longer read: whether a store runs its own NATS leaf node is now a flag in the "
        "hub's records, the same for every hub process at once and audited. Remove `stores` from [leaf], then flag "
        "each store listed there with `novapos hub store leaf TENANT STORE on` (here: "
        f"`novapos hub --config {config} store leaf demo store-001 on`)")
    config.write_text("[leaf]\ncheck_every_s = 5\n")
    assert load_hub(config).leaf_check_every_s == 5


def test_the_partition_round_reads_the_flag_for_how_long_the_inbox_is_kept(database_url: str) -> None:
    """A hub whose [retention] inbox_days is shorter than a leaf's local stream maintains its partitions until a
    store is flagged, then refuses (a replay from the leaf could apply an event twice), and again once it is off."""
    config = HubConfig(database_url=database_url, retention=RetentionSettings(inbox_days=21))

    async def run() -> list[str]:
        pool = await create_pool(database_url, max_size=2)
        said = []
        try:
            await migrate(pool)
            async with pool.acquire() as conn:
                await service.add_tenant(conn, TENANT, "Demo", "EUR")
                await service.add_region(conn, TENANT, "north", "North")
                await service.add_store(conn, TENANT, STORE, "north", "Store 1", public_key(new_seed()))
            for leaf in (False, True, False):
                async with pool.acquire() as conn:
                    await service.set_leaf(conn, TENANT, STORE, leaf)
                try:
                    await maintain_for(pool, config)
                    said.append("maintained")
                except ValueError as exc:
                    said.append(str(exc))
            return said
        finally:
            await close_pool(pool)
    said = asyncio.run(run())
    assert said[0] == said[2] == "maintained" and "inbox_days 21 must be at least 30 days" in said[1], said


