"""Per-store NATS credentials enforced by NATS itself: stores provisioned through the hub's records, the
authorization generated from them and reloaded into a real nats-server, then each store tried as an
impostor, a snoop and a vandal; revoked and rotated credentials refused."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig

from hub.db import close_pool, create_pool, migrate
from hub.tenancy import nats_auth, provisioning, service
from hub.tenancy.credentials import new_seed, public_key, write_seed
from hub.tenancy.nats_auth import StoreUser, authorization, write_atomically
from novapos.adapters.nats import store_inbox_prefix
from novapos.config import AuditSettings, ConfigError, HubConfig, load_hub
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.validators import Invalid
from novapos.wire.catalog import catalog_stream
from novapos.wire.payments import payment_events_subject
from novapos.wire.subjects import EVENTS_STREAM, event_subject

DENIED_WITHIN_S = 1.0  # a denied publish or request shows only as a timeout: keep it short


@dataclass
class Hub:
    """A hub's provisioning view: its config (authorization file, pid file, own seed) and NATS."""
    config: HubConfig
    nats: EmbeddedNats
    out: Path

    def run(self, work: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            pool = await create_pool(self.config.database_url, max_size=2)
            try:
                await migrate(pool)
                return await work(pool)
            finally:
                await close_pool(pool)
        return asyncio.run(main())

    def provision(self, tenant: str, store: str, region: str = "north") -> Path:
        """The store's seed file, after `store add` did its work (the tenant and region made if need be)."""
        async def work(pool: asyncpg.Pool) -> Path:
            async with pool.acquire() as conn:
                if not await conn.fetchval("SELECT 1 FROM tenants WHERE tenant = $1", tenant):
                    await service.add_tenant(conn, tenant, tenant.title(), "EUR")
                    await service.add_region(conn, tenant, region, region.title())
            bundle = await provisioning.provision_store(pool, self.config, tenant, store, region, store, ["till-1"],
                                                        self.out / f"{tenant}.{store}")
            return bundle.credentials
        seed: Path = self.run(work)
        return seed


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[Hub]:
    """A nats-server that starts with the hub's user alone and reloads whatever provisioning writes, its monitoring
    on for provisioning to see the reload."""
    hub_seed = new_seed()
    write_seed(tmp_path / "hub.seed", hub_seed)
    auth = tmp_path / "nats-authorization.conf"
    write_atomically(auth, authorization(public_key(hub_seed), []))
    server = EmbeddedNats(tmp_path / "nats", authorization=auth, hub_credentials=tmp_path / "hub.seed",
                          monitor_port=free_port()).start()
    config = HubConfig(nats_url=server.url, database_url=database_url, nats_credentials=tmp_path / "hub.seed",
                       tls=server.tls_settings(), nats_monitor_url=f"http://127.0.0.1:{server.monitor_port}",
                       nats_authorization=auth, nats_pid_file=server.pid_file,
                       audit=AuditSettings(checkpoint_dir=tmp_path / "audit-checkpoints"))
    try:
        yield Hub(config, server, tmp_path / "bundles")
    finally:
        server.stop()


class Store:
    """A plain nats-py client logged in as a store, keeping the errors NATS sent it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.client: Client | None = None

    async def connect(self, server: EmbeddedNats, seed: Path, tenant: str, store: str) -> Client:
        async def record(exc: Exception) -> None:
            self.errors.append(str(exc))
        self.client = await nats.connect(server.url, nkeys_seed=str(seed), inbox_prefix=store_inbox_prefix(tenant, store),
                                         **server.client_options(),
                                         error_cb=record, connect_timeout=2, max_reconnect_attempts=2,
                                         reconnect_time_wait=0.2)
        return self.client

    def violations(self) -> list[str]:
        return [error for error in self.errors if "permissions violation" in error]


async def _as_hub(server: EmbeddedNats) -> Client:
    return await nats.connect(server.url, **server.hub_options())


async def _refused(server: EmbeddedNats, seed: Path) -> str:
    """Why NATS refuses a login with `seed` ("" if it accepts it). A connection reset while the server is
    still reloading its authorization says nothing yet: that attempt is made again, a few times."""
    for _ in range(15):
        try:
            client = await nats.connect(server.url, nkeys_seed=str(seed), allow_reconnect=False, connect_timeout=2,
                                        **server.client_options())
        except Exception as exc:
            if "reset by peer" in str(exc):
                await asyncio.sleep(0.2)
                continue
            return str(exc)
        await client.close()
        return ""
    return "connection reset by peer, every time"


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_a_store_publishes_its_own_events_and_nats_refuses_it_everything_else(hub: Hub) -> None:
    seed_1 = hub.provision("demo", "store-001")
    hub.provision("demo", "store-002")
    hub.provision("other", "shop-9", region="south")

    async def scenario() -> None:
        admin = await _as_hub(hub.nats)
        js_hub = admin.jetstream()
        await js_hub.add_stream(StreamConfig(name=EVENTS_STREAM, subjects=["novapos.*.*.evt.>"]))
        for tenant in ("demo", "other"):
            await js_hub.add_stream(StreamConfig(name=catalog_stream(tenant), subjects=[f"catalog.{tenant}.>"],
                                                 max_msgs_per_subject=1))
            await js_hub.publish(f"catalog.{tenant}.version", f"{tenant}-1".encode())

        store = Store()
        client = await store.connect(hub.nats, seed_1, "demo", "store-001")
        js = client.jetstream(timeout=DENIED_WITHIN_S)

        # its own events: stored, with the PubAck back on its own inbox
        ack = await js.publish(event_subject("demo", "store-001", "sale.completed"), b"mine")
        assert ack.stream == EVENTS_STREAM

        # another store's events: refused by NATS, seen by the publisher only as a timeout
        with pytest.raises(nats.errors.TimeoutError):
            await js.publish(event_subject("demo", "store-002", "sale.completed"), b"impostor")
        with pytest.raises(nats.errors.TimeoutError):
            await client.request("novapos.demo.store-002.req.stock", b"?", timeout=DENIED_WITHIN_S)
        assert (await js_hub.stream_info(EVENTS_STREAM)).state.messages == 1

        # another store's inbox and events: the subscription is refused, nothing arrives
        snooped: list[bytes] = []

        async def keep(message: Any) -> None:
            snooped.append(message.data)
        await client.subscribe("_INBOX.demo.store-002.>", cb=keep)
        await client.subscribe("novapos.demo.store-002.evt.>", cb=keep)
        await client.flush()
        await admin.publish("_INBOX.demo.store-002.reply", b"for store-002 only")
        await admin.publish("novapos.demo.store-002.evt.sale_completed", b"store-002's sale")
        await admin.flush()

        # streams: it can create, change, purge or delete none
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_stream(StreamConfig(name="MINE", subjects=["novapos.demo.store-001.x"]))
        for vandalism in (js.purge_stream, js.delete_stream):
            with pytest.raises(nats.errors.TimeoutError):
                await vandalism(EVENTS_STREAM)
        with pytest.raises(nats.errors.TimeoutError):
            await js.update_stream(StreamConfig(name=catalog_stream("demo"), subjects=["catalog.demo.>"]))

        # another tenant's catalog: not even its stream info
        with pytest.raises(nats.errors.TimeoutError):
            await js.subscribe("catalog.other.>", stream=catalog_stream("other"), ordered_consumer=True)
        with pytest.raises(nats.errors.TimeoutError):
            await js.stream_info(catalog_stream("other"))

        # its own tenant's catalog: read with an ordered push consumer and with a pull consumer
        ordered = await js.subscribe("catalog.demo.>", stream=catalog_stream("demo"), ordered_consumer=True)
        assert (await ordered.next_msg(timeout=5)).data == b"demo-1"
        await js_hub.publish("catalog.demo.version", b"demo-2")  # live changes keep arriving
        assert (await ordered.next_msg(timeout=5)).data == b"demo-2"
        pull = await js.pull_subscribe("catalog.demo.>", stream=catalog_stream("demo"))
        [fetched] = await pull.fetch(1, timeout=5)
        assert fetched.data == b"demo-2"
        await fetched.ack_sync(timeout=5)

        await asyncio.sleep(0.3)  # anything that could have leaked has arrived by now
        assert snooped == []
        # neither purged nor deleted: its own event and the one the hub published as store-002
        assert (await js_hub.stream_info(EVENTS_STREAM)).state.messages == 2
        assert [s.config.name for s in await js_hub.streams_info()].count("MINE") == 0
        violations = " ".join(store.violations())
        for subject in ("novapos.demo.store-002.evt.sale_completed", "novapos.demo.store-002.req.stock",
                        "_INBOX.demo.store-002.>", "$JS.API.STREAM.CREATE.MINE", "$JS.API.STREAM.PURGE.NOVAPOS_EVENTS",
                        "$JS.API.STREAM.DELETE.NOVAPOS_EVENTS", "$JS.API.STREAM.INFO.CATALOG_other"):
            assert subject.lower() in violations.lower(), (subject, violations)
        await client.close()
        await admin.close()
    asyncio.run(scenario())


def test_a_store_receives_its_own_payment_events_and_nats_refuses_it_another_stores(hub: Hub) -> None:
    seed_1 = hub.provision("demo", "store-001")
    hub.provision("demo", "store-002")
    hub.provision("other", "store-001", region="south")

    async def scenario() -> None:
        admin = await _as_hub(hub.nats)
        store = Store()
        client = await store.connect(hub.nats, seed_1, "demo", "store-001")
        mine = await client.subscribe(payment_events_subject("demo", "store-001"))
        snooped: list[str] = []

        async def keep(message: Any) -> None:
            snooped.append(message.subject)
        for subject in (payment_events_subject("demo", "store-002"), payment_events_subject("other", "store-001"),
                        "novapos.demo.*.pay.*", "novapos.*.*.pay.>"):
            await client.subscribe(subject, cb=keep)
        await client.flush()
        for tenant, store_name in (("demo", "store-001"), ("demo", "store-002"), ("other", "store-001")):
            await admin.publish(payment_events_subject(tenant, store_name, "payment.captured"),
                                f"{tenant}/{store_name}".encode())
        await admin.flush()
        received = await mine.next_msg(timeout=5)
        assert (received.subject, received.data) == ("novapos.demo.store-001.pay.payment_captured", b"demo/store-001")
        await asyncio.sleep(0.3)  # anything that could have leaked has arrived by now
        assert snooped == []
        refused = ("novapos.demo.store-002.pay.*", "novapos.other.store-001.pay.*", "novapos.demo.*.pay.*",
                   "novapos.*.*.pay.>")

        async def all_refused() -> bool:  # the server's -ERR lines reach the error callback on their own time
            return len(store.violations()) >= len(refused)
        await _until(all_refused, timeout=5)
        violations = " ".join(store.violations()).lower()
        for subject in refused:
            assert f'subscription to "{subject}"' in violations, (subject, violations)
        await client.close()
        await admin.close()
    asyncio.run(scenario())


def test_a_revoked_store_cannot_log_in_again_and_keeps_its_record(hub: Hub) -> None:
    seed = hub.provision("demo", "store-001")
    other = hub.provision("demo", "store-002")
    hub.run(lambda pool: provisioning.revoke_store(pool, hub.config, "demo", "store-001"))

    async def after() -> None:  # refused at once: revoke_store returned once the server had reloaded
        assert "authorization violation" in (await _refused(hub.nats, seed)).lower()
        assert await _refused(hub.nats, other) == ""  # the other store is untouched
    asyncio.run(after())
    rows = hub.run(lambda pool: pool.fetch("SELECT status, nkey_public FROM stores WHERE store = 'store-001'"))
    assert [tuple(row) for row in rows] == [("revoked", None)]  # the record stays: its sales stay attributable
    assert public_key(seed.read_text()) not in hub.config.nats_authorization.read_text()  # type: ignore[union-attr]


def test_a_connected_store_is_cut_off_by_its_revocation(hub: Hub) -> None:
    seed = hub.provision("demo", "store-001")

    async def scenario() -> None:
        store = Store()
        client = await store.connect(hub.nats, seed, "demo", "store-001")
        assert client.is_connected
        async with asyncpg.create_pool(hub.config.database_url, min_size=1, max_size=1) as pool:
            await provisioning.revoke_store(pool, hub.config, "demo", "store-001")
        await _until(lambda: _not_connected(client))
        await asyncio.sleep(1.0)  # its reconnect attempts have run meanwhile
        assert not client.is_connected
        assert any("authorization violation" in error.lower() for error in store.errors), store.errors
        await client.close()
    asyncio.run(scenario())


async def _not_connected(client: Client) -> bool:
    return not client.is_connected


def test_after_a_rotation_the_old_seed_is_refused_and_the_new_one_works(hub: Hub) -> None:
    old = hub.provision("demo", "store-001")
    old_seed = old.read_text()
    kept = hub.out / "old.seed"
    write_seed(kept, old_seed)
    new = hub.run(lambda pool: provisioning.rotate_store(pool, hub.config, "demo", "store-001", hub.out / "rotated"))
    assert new.read_text() != old_seed and new.stat().st_mode & 0o777 == 0o600

    async def check() -> None:  # at once: rotate_store returned once the server had reloaded
        assert "authorization violation" in (await _refused(hub.nats, kept)).lower()
        assert await _refused(hub.nats, new) == ""
    asyncio.run(check())


def test_a_server_that_does_not_reload_is_said_within_seconds(hub: Hub, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The pid file names a process that ignores SIGHUP (a stale pid file, a wrapper script): the server never
    reloads, and provisioning says so within its bound instead of returning as if the store could log in."""
    monkeypatch.setattr(nats_auth, "RELOAD_CONFIRM_S", 1.0)
    deaf = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGHUP, signal.SIG_IGN);"
                             " print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert deaf.stdout is not None and deaf.stdout.readline() == b"\n"  # SIGHUP ignored from here on
        pid_file = tmp_path / "deaf.pid"
        pid_file.write_text(f"{deaf.pid}\n")
        hub.config = replace(hub.config, nats_pid_file=pid_file)
        started = time.monotonic()
        with pytest.raises(nats_auth.ReloadFailed, match="did not reload within 1 s") as failed:
            hub.provision("demo", "store-001")
        assert time.monotonic() - started < 20
        assert f"`nats-server --signal reload={pid_file}`" in str(failed.value)
    finally:
        deaf.kill()
        deaf.wait()


def test_a_monitor_url_that_is_not_http_is_refused_with_an_example(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[nats]\nmonitor_url = "127.0.0.1:8222"\n')
    with pytest.raises(ConfigError, match=r"\[nats\] monitor_url.*such as http://127.0.0.1:8222"):
        load_hub(config)


def test_records_refuse_duplicates_and_bad_names_with_a_sentence_and_change_nothing(hub: Hub) -> None:
    hub.provision("demo", "store-001")

    async def attempts(pool: asyncpg.Pool) -> list[str]:
        said = []
        for attempt in (
            lambda c: service.add_tenant(c, "demo", "Demo again", "EUR"),
            lambda c: service.add_region(c, "demo", "north", "North again"),
            lambda c: service.add_region(c, "nobody", "north", "North"),
            lambda c: service.add_warehouse(c, "demo", "store-001-floor", "north", "Clash with a floor"),
            lambda c: service.add_warehouse(c, "demo", "wh-1", "atlantis", "Nowhere"),
            lambda c: service.add_tenant(c, "bad.name", "Dots are subject separators", "EUR"),
            lambda c: service.add_tenant(c, "fine", "Fine", "euro"),
            lambda c: service.revoke(c, "demo", "store-404"),
            lambda c: service.add_store(c, "demo", "hub", "north", "Named like the hub", "UDXU4RCS"),
        ):
            async with pool.acquire() as conn:
                with pytest.raises(Exception) as refused:
                    async with conn.transaction():
                        await attempt(conn)
                said.append(str(refused.value))
        with pytest.raises(service.TenancyError) as duplicate:
            await provisioning.provision_store(pool, hub.config, "demo", "store-001", "north", "Again", ["till-1"],
                                               hub.out / "again")
        said.append(str(duplicate.value))
        return said
    before = hub.config.nats_authorization.read_text()  # type: ignore[union-attr]
    said = hub.run(attempts)
    assert said == [
        "tenant 'demo' already exists",
        "tenant 'demo' already has a region 'north'",
        "there is no tenant 'nobody': add it first (`novapos hub tenant add nobody ...`)",
        "tenant 'demo' already has a location 'store-001-floor': choose another name",
        "tenant 'demo' has no region 'atlantis': add it first (`novapos hub region add demo atlantis ...`)",
        "tenant may use only letters, digits, '-' and '_', got 'bad.name'",
        "currency must be a three-letter ISO currency code such as 'EUR', got 'euro'",
        "tenant 'demo' has no store 'store-404' (see `novapos hub store list demo`)",
        "'hub' cannot name a store: the hub publishes under novapos.<tenant>.hub itself; choose another name",
        "tenant 'demo' already has a store 'store-001' (rotate its credentials with "
        "`novapos hub store rotate demo store-001`)",
    ]
    counts = hub.run(lambda pool: pool.fetchrow(
        "SELECT (SELECT count(*) FROM tenants) AS tenants, (SELECT count(*) FROM regions) AS regions,"
        " (SELECT count(*) FROM stores) AS stores, (SELECT count(*) FROM locations) AS locations"))
    assert dict(counts) == {"tenants": 1, "regions": 1, "stores": 1, "locations": 2}
    assert not (hub.out / "again").exists()
    assert hub.config.nats_authorization.read_text() == before  # type: ignore[union-attr]


def test_a_store_has_its_floor_and_back_room_and_a_warehouse_has_no_store(hub: Hub) -> None:
    hub.provision("demo", "store-001")

    async def work(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
        async with pool.acquire() as conn:
            await service.add_warehouse(conn, "demo", "wh-north", "north", "North warehouse")
            return [tuple(row) for row in await conn.fetch(
                "SELECT location, kind, store, region FROM locations ORDER BY location")]
    assert hub.run(work) == [("store-001-back-room", "back_room", "store-001", "north"),
                             ("store-001-floor", "floor", "store-001", "north"),
                             ("wh-north", "warehouse", None, "north")]


def test_the_generated_authorization_always_has_the_hub_and_takes_no_name_that_could_widen_a_subject() -> None:
    hub_key = public_key(new_seed())
    alone = authorization(hub_key, [])
    assert f'nkey: "{hub_key}"' in alone and "permissions" not in alone  # never an empty block: that lets anyone in
    for tenant, store in (("demo", "*"), ("demo", ">"), ("de.mo", "s1"), ("demo", "s 1")):
        with pytest.raises(Invalid):
            authorization(hub_key, [StoreUser(tenant, store, public_key(new_seed()))])
