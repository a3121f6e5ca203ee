"""A rolling upgrade, with the previous release's real code (tests.releases: commit 17713a0, run from its own tree):

- its store edge sells to the new hub; its unsent sales (NATS away) are kept by the new edge, which takes over the
  same config file and state folder, migrates the SQLite schema and forwards every one once, numbering on;
- the new edge sells to the previous hub on the previous schema; a new hub then migrates that database while the
  previous hub keeps ingesting beside it (both on the one durable consumer), and every sale lands once.

NATS runs without TLS here: the previous release knows none."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from packaging.version import Version

from actors.storage import db as local_db
from edge.app import run_edge
from hub.app import run_hub
from hub.db import planned
from hub.domains import domains
from hub.migration_lint import judged
from mocks.network_printer import MockNetworkPrinter
from novapos.config import load_hub, load_store
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import ManagedProcess
from tests.catalog import seed_catalog
from tests.conftest import query, wait_until
from tests.pos import COFFEE, MILK, seed_staff, sell
from tests.releases import (
    PREVIOUS_EDGE_SCHEMA,
    PREVIOUS_RELEASE,
    REPOSITORY,
    Release,
    extract,
    files_at,
    hub_config,
    store_config,
)

pytestmark = pytest.mark.xdist_group("test_upgrade_compat")
"""Its tests share a module-scoped world and build on each other in file order: one xdist worker runs them all."""


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Release:
    release = Release(extract(tmp_path_factory.mktemp("previous-release")))
    assert release.imports_itself(), "the previous release's processes would run this release's code"
    return release


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """An empty database: the previous release's hub makes its own schema, which this release's then migrates."""
    return empty_database_url


@pytest.fixture
def plain_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """NATS with the production authorization and no TLS (the previous release speaks plain NATS)."""
    server = EmbeddedNats.authorized(tmp_path / "nats", tls=False).start()
    try:
        yield server
    finally:
        server.stop()


async def _healthy(http: httpx.AsyncClient, url: str, process: ManagedProcess) -> None:
    async def answers() -> bool:
        assert process.running, f"{process.name} exited: {process.log_path.read_text()[-3000:]}"
        try:
            return (await http.get(f"{url}/healthz")).status_code == 200
        except httpx.TransportError:
            return False
    await wait_until(answers, timeout=60, interval=0.2)


async def _events(database_url: str) -> list[int]:
    """The store's event numbers the hub holds, in order (the inbox keeps each event once)."""
    rows = await query(database_url, "SELECT seq FROM inbox WHERE tenant = 'demo' AND store = 'store-001' ORDER BY 1")
    return [row[0] for row in rows]


async def _sales_landed(database_url: str, sales: list[str]) -> None:
    async def landed() -> bool:
        rows = await query(database_url, "SELECT event_id FROM sales WHERE event_id = ANY($1::uuid[])",
                           [uuid.UUID(sale) for sale in sales])
        return len(rows) == len(sales)
    await wait_until(landed, timeout=30)


def _seeded(state_dir: Path) -> Path:
    """A state folder holding the catalog and the staff list, as if synced from the hub."""
    seed_catalog(state_dir)
    seed_staff(state_dir)
    return state_dir


async def test_the_previous_edge_sells_to_the_new_hub_and_the_new_edge_forwards_its_unsent_sales_once(
        tmp_path: Path, previous: Release, plain_nats: EmbeddedNats, database_url: str, printer: MockNetworkPrinter,
        http: httpx.AsyncClient) -> None:
    state = _seeded(tmp_path / "store-001")
    config = tmp_path / "store.toml"
    port = store_config(previous, config, state, plain_nats.url, plain_nats.store_credentials("demo", "store-001"),
                        printer.port)
    hub_file = tmp_path / "hub.toml"
    hub_config(hub_file, plain_nats.url, plain_nats.hub_credentials or Path(), database_url)
    old_edge = previous.process("previous edge", ["edge", "--config", str(config)], tmp_path / "old-edge.log")
    url = f"http://127.0.0.1:{port}"
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, load_hub(hub_file))
            old_edge.spawn()
            await _healthy(http, url, old_edge)
            sent = [(await sell(http, url, [(COFFEE, 1)]))["sale"], (await sell(http, url, [(MILK, 2)]))["sale"]]
            await _sales_landed(database_url, sent)

            plain_nats.stop()  # the store goes on selling; its sales wait in the previous release's outbox
            unsent = [(await sell(http, url, [(COFFEE, 2)]))["sale"], (await sell(http, url, [(MILK, 1)]))["sale"]]
            old_edge.stop()
            assert old_edge.process is not None and old_edge.process.returncode == 0, old_edge.log_path.read_text()
            left = sqlite3.connect(state / local_db.FILE_NAME)
            try:
                assert left.execute("PRAGMA user_version").fetchone()[0] == PREVIOUS_EDGE_SCHEMA
            finally:
                left.close()
            waiting = local_db.connect(state / local_db.FILE_NAME)  # this release's code migrates it as it opens
            try:
                assert waiting.execute("PRAGMA user_version").fetchone()[0] == len(local_db.MIGRATIONS)
                assert waiting.execute("SELECT count(*) FROM outbox").fetchone()[0] >= len(unsent)
            finally:
                waiting.close()

            edge = await nursery.start(run_edge, load_store(config))  # the same config file and state folder
            plain_nats.start()
            await _sales_landed(database_url, unsent)
            after = (await sell(http, edge.url, [(COFFEE, 1)], cash=1000))["sale"]
            await _sales_landed(database_url, [after])
            held = await _events(database_url)
            assert held == list(range(1, len(held) + 1)), "an event lost, doubled or renumbered across the upgrade"
            count = await query(database_url, "SELECT count(*) FROM sales WHERE store = 'store-001'")
            assert count[0][0] == len(sent) + len(unsent) + 1
            nursery.cancel_scope.cancel()
    finally:
        old_edge.kill()
    assert "Traceback" not in old_edge.log_path.read_text()


async def test_the_new_edge_sells_to_the_previous_hub_and_a_new_hub_migrates_its_database_while_it_ingests(
        tmp_path: Path, previous: Release, plain_nats: EmbeddedNats, database_url: str, printer: MockNetworkPrinter,
        http: httpx.AsyncClient) -> None:
    old_file, new_file = tmp_path / "old-hub.toml", tmp_path / "new-hub.toml"
    old_port = hub_config(old_file, plain_nats.url, plain_nats.hub_credentials or Path(), database_url)
    hub_config(new_file, plain_nats.url, plain_nats.hub_credentials or Path(), database_url)
    old_hub = previous.process("previous hub", ["hub", "--config", str(old_file)], tmp_path / "old-hub.log")
    state = _seeded(tmp_path / "store-001")
    config = tmp_path / "store.toml"
    store_config(previous, config, state, plain_nats.url, plain_nats.store_credentials("demo", "store-001"),
                 printer.port)  # a store's config from the previous release, read by this one's edge
    try:
        old_hub.spawn()
        await _healthy(http, f"http://127.0.0.1:{old_port}", old_hub)
        previous_schema = {row[0] for row in await query(database_url, "SELECT name FROM schema_migrations")}
        newer = {m.name for m in planned(domains())} - previous_schema
        assert all(judged(int(name[:4])) for name in newer), f"migrations newer than the release but numbered " \
            f"as shipped before it: {sorted(newer)}"
        async with trio.open_nursery() as nursery:
            edge = await nursery.start(run_edge, load_store(config))
            first = [(await sell(http, edge.url, [(COFFEE, 1)]))["sale"], (await sell(http, edge.url, [(MILK, 3)]))["sale"]]
            await _sales_landed(database_url, first)

            await nursery.start(run_hub, load_hub(new_file))  # migrates; the previous hub keeps ingesting
            applied = {row[0] for row in await query(database_url, "SELECT name FROM schema_migrations")}
            assert applied == {m.name for m in planned(domains())}
            later = [(await sell(http, edge.url, [(COFFEE, 1)]))["sale"] for _ in range(6)]
            await _sales_landed(database_url, later)
            assert old_hub.running, old_hub.log_path.read_text()[-3000:]
            held = await _events(database_url)
            assert held == list(range(1, len(held) + 1))
            count = await query(database_url, "SELECT count(*) FROM sales WHERE store = 'store-001'")
            assert count[0][0] == len(first) + len(later)
            nursery.cancel_scope.cancel()
        old_hub.stop()
        assert old_hub.process is not None and old_hub.process.returncode == 0
    finally:
        old_hub.kill()
    log = old_hub.log_path.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


def test_no_migration_numbered_as_shipped_before_the_online_rule_was_added_since_that_release() -> None:
    """hub.migration_lint judges only migrations above SHIPPED_BEFORE_ONLINE: one added below it would escape."""
    shipped = {path.rpartition("/")[2] for path in files_at(PREVIOUS_RELEASE, "hub") if path.endswith(".sql")}
    low = {m.path.name for m in planned(domains()) if not judged(m.number)}
    assert low <= shipped, f"added since {PREVIOUS_RELEASE} with a number at or below the shipped ones: " \
        f"{sorted(low - shipped)}"


def test_novapos_version_names_this_release_which_is_newer_than_the_previous_one(previous: Release) -> None:
    """pyproject's version is the release: `novapos --version` says it (the installed metadata, as each store's
    health report does), and it moved on from the previous release's."""
    ours = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["version"]
    theirs = tomllib.loads((previous.root / "pyproject.toml").read_text())["project"]["version"]
    said = subprocess.run([sys.executable, "-m", "novapos.cli", "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert said == f"novapos {ours}", f"{said!r}: reinstall (pip install -e .) after changing pyproject's version"
    assert Version(ours) > Version(theirs)


def test_the_previous_releases_shipped_configs_load_in_this_one(previous: Release) -> None:
    """An operator keeps /etc/novapos/*.toml across the upgrade: every setting added since has a default."""
    hub = load_hub(previous.root / "configs" / "hub.toml")
    store = load_store(previous.root / "configs" / "demo-store.toml")
    assert (hub.tenants, store.store) == (("demo",), "store-001")
    assert not hub.tls.cert_file and not store.tls.ca_file  # TLS stays off until configured
