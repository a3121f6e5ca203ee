"""Real infrastructure for the tests: NATS with JetStream and PostgreSQL, embedded or external.

NOVAPOS_DATABASE_URL points the tests at an external PostgreSQL (each test still gets a database
of its own); otherwise one embedded server serves the session. A test's database is a copy of one
migrated once per session (`database_url`), or empty for tests of migrating (`empty_database_url`). NATS is embedded per test, so a
test can stop and restart it; NOVAPOS_NATS_URL is honoured by tests that do not stop NATS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
import trio

from hub.db import close_pool, create_pool, migrate
from hub.giftcards import numbers as giftcard_numbers
from mocks.network_printer import MockNetworkPrinter
from novapos.config import DeviceRule, DevicesConfig, HubConfig, StoreConfig, load_store
from novapos.config.hub import AuditSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.tls import TlsSettings
from tests.catalog import seed_catalog
from tests.pos import seed_staff

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    external = os.environ.get("NOVAPOS_DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's tmp folder: pytest keeps that 0700, and PostgreSQL runs as another user.
    data = Path(tempfile.mkdtemp(prefix="novapos-test-pg-"))
    server = EmbeddedPostgres(data).start()
    try:
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


async def _admin(server_url: str, sql: str) -> None:
    """One statement as the server's superuser (CREATE/DROP DATABASE), riding out a server still starting."""
    for _ in range(50):
        try:
            conn = await asyncpg.connect(server_url)
            break
        except (OSError, asyncpg.CannotConnectNowError):
            await asyncio.sleep(0.1)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def _database(server_url: str, template: str | None = None) -> Iterator[str]:
    name = f"novapos_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    base, _, _ = server_url.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def migrated_template(postgres_server_url: str) -> Iterator[str]:
    """A database migrated once per session to the current schema, which `database_url` copies: a copy takes
    0.2 s where migrating takes 2 s or more (and most tests start a hub, which would migrate)."""
    async def migrated(url: str) -> None:
        pool = await create_pool(url, max_size=1)
        try:
            await migrate(pool)
        finally:
            await close_pool(pool)
    with _database(postgres_server_url) as url:
        asyncio.run(migrated(url))
        yield url.rpartition("/")[2]


@pytest.fixture
def database_url(postgres_server_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh database for one test, at the current schema (a copy of the session's migrated template),
    dropped afterwards. A hub started on it finds nothing to migrate."""
    with _database(postgres_server_url, migrated_template) as url:
        yield url


@pytest.fixture
def empty_database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database for one test (no schema yet), dropped afterwards: for tests of migrating."""
    with _database(postgres_server_url) as url:
        yield url


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """NATS with the production authorization and TLS (a tls:// URL, a local CA under tmp_path/nats/tls): a hub
    user (`nats_server.hub_link(name)`, or `nats.connect(url, **nats_server.hub_options())`) and a store user for
    demo/store-001 (`nats_server.store_credentials("demo", "store-001")`, which store_config carries). Any other
    client needs the server's TLS: `NatsLink(..., tls=nats_server.client_tls())` or
    `nats.connect(url, **nats_server.client_options(), ...)`; a config, `tls=nats_server.tls_settings()`."""
    server = EmbeddedNats.authorized(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def printer() -> Iterator[MockNetworkPrinter]:
    with MockNetworkPrinter() as mock:
        yield mock


@pytest.fixture
def store_config(tmp_path: Path, nats_server: EmbeddedNats, printer: MockNetworkPrinter) -> StoreConfig:
    demo = load_store(CONFIGS / "demo-store.toml")
    seed_catalog(tmp_path / "edge")  # the demo's products, as if the hub's catalog had synced
    seed_staff(tmp_path / "edge")  # alice, bob, sam, manager (tests.pos.STAFF), as if the hub's staff list had come
    return StoreConfig(
        tenant=demo.tenant, store=demo.store, currency=demo.currency, tills=demo.tills, region=demo.region,
        http_port=0, nats_url=nats_server.url, nats_credentials=nats_server.store_credentials(demo.tenant, demo.store),
        state_dir=tmp_path / "edge",
        devices=printer_only(printer.port), tls=nats_server.tls_settings(),
    )


def printer_only(port: int) -> DevicesConfig:
    """A store with just the network receipt printer, and till-1's drawer wired to it."""
    return DevicesConfig(rules=(
        DeviceRule("receipt-printer", "escpos-network", host="127.0.0.1", port=port),
        DeviceRule("drawer-1", "printer-drawer", printer="receipt-printer", till="till-1"),
    ), scan_interval=0.1, debounce_scans=3)


GIFT_CARD_KEY = bytes(range(32))
"""The tests' gift card HMAC key (hub.giftcards.numbers): set for every test, and in hub_config's key file."""


@pytest.fixture(autouse=True)
def gift_card_key() -> Iterator[None]:
    giftcard_numbers.use_key(GIFT_CARD_KEY)
    yield
    giftcard_numbers.use_key(None)


@pytest.fixture
def hub_config(nats_server: EmbeddedNats, database_url: str, tmp_path: Path) -> HubConfig:
    key_file = tmp_path / "gift-cards.key"
    key_file.write_text(GIFT_CARD_KEY.hex())
    return HubConfig(tenants=("demo",), http_port=0, nats_url=nats_server.url, database_url=database_url,
                     nats_credentials=nats_server.hub_credentials,
                     audit=AuditSettings(checkpoint_dir=tmp_path / "audit-checkpoints"), gift_card_key_file=key_file,
                     tls=nats_server.tls_settings())


def tls_table(settings: TlsSettings) -> dict[str, str]:
    """The [tls] table of a config file written by a test, as data (its files)."""
    files = {"cert_file": settings.cert_file, "key_file": settings.key_file, "ca_file": settings.ca_file}
    return {key: str(path) for key, path in files.items() if path is not None}


def tls_toml(settings: TlsSettings) -> str:
    """The [tls] table of a config file written by a test, as TOML text (empty for settings that are off)."""
    table = tls_table(settings)
    return "" if not table else "[tls]\n" + "".join(f'{key} = "{path}"\n' for key, path in table.items())


async def query(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """Run one query from a test (on trio) through a short-lived asyncio loop in a worker thread."""
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def ensure_stream(nats_server: EmbeddedNats) -> None:
    """The hub's events stream, created ahead of any hub (as the hub itself would create it)."""
    async def run() -> None:
        link = nats_server.hub_link()
        await link.connect()
        await link.ensure_event_stream()
        await link.close()
    await trio.to_thread.run_sync(asyncio.run, run())


async def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll an async predicate until it returns something truthy; fail with its last value."""
    value = None
    with trio.move_on_after(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await trio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
