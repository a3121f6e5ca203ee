"""The hub rides out a PostgreSQL crash: the store keeps selling, nothing is acked before it is committed,
and once PostgreSQL is back every sale lands exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import trio

from edge.app import run_edge
from hub.app import run_hub
from novapos.config import AuditSettings, HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.demo.processes import free_port
from tests.conftest import query, wait_until
from tests.pos import COFFEE, MILK, sell


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, since the test kills it."""
    data = Path(tempfile.mkdtemp(prefix="novapos-test-pg-crash-"))
    server = EmbeddedPostgres(data).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


async def _sales(url: str) -> int:
    return int((await query(url, "SELECT count(*) AS n FROM sales"))[0]["n"])


async def test_sales_land_exactly_once_across_a_postgres_kill_9(
        store_config: StoreConfig, nats_server: EmbeddedNats, own_postgres: EmbeddedPostgres,
        http: httpx.AsyncClient, tmp_path: Path) -> None:
    url = own_postgres.url()
    hub_config = HubConfig(tenants=("demo",), http_port=0, nats_url=nats_server.url, database_url=url,
                           nats_credentials=nats_server.hub_credentials, tls=nats_server.tls_settings(),
                           audit=AuditSettings(checkpoint_dir=tmp_path / "audit-checkpoints"))
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)
        made = [await sell(http, edge.url, [(MILK, 1)]) for _ in range(3)]
        await wait_until(lambda: _equal(_sales(url), 3))

        await trio.to_thread.run_sync(own_postgres.kill)

        async def failing() -> dict | None:
            health = await http.get(f"{hub.url}/healthz")
            return health.json() if health.status_code == 503 else None
        assert (await wait_until(failing, timeout=10))["status"] == "failing"
        made += [await sell(http, edge.url, [(COFFEE, n)]) for n in range(1, 6)]  # the store does not notice
        await trio.sleep(1.5)  # the hub fetches, fails to commit, naks, backs off

        await trio.to_thread.run_sync(own_postgres.start)
        await wait_until(lambda: _equal(_sales(url), 8), timeout=30)
        await trio.sleep(1.0)  # redeliveries of anything half-done would land now
        rows = await query(url, "SELECT event_id::text AS id, seq FROM sales ORDER BY seq")
        assert [row["id"] for row in rows] == [sale["sale"] for sale in made]
        assert [row["seq"] for row in rows] == list(range(1, 9))
        assert int((await query(url, "SELECT count(*) AS n FROM inbox"))[0]["n"]) == 8
        assert (await http.get(f"{hub.url}/healthz")).status_code == 200
        nursery.cancel_scope.cancel()


async def _equal(awaitable, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await awaitable == expected


async def test_a_postgres_that_cannot_take_the_migrations_yet_is_waited_for(
        hub_config: HubConfig, database_url: str, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL accepts connections but refuses writes (read-only, as a standby or a full disk would): the
    hub waits for it with a warning and /healthz 503, and starts once writes pass, instead of exiting."""
    name = database_url.rpartition("/")[2]
    await query(database_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    hub_config = dataclasses.replace(hub_config, http_port=free_port())
    with caplog.at_level(logging.WARNING, logger="hub.app"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_hub, hub_config)
            await wait_until(lambda: _logged(caplog, "read-only transaction"))
            answer = await http.get(f"http://127.0.0.1:{hub_config.http_port}/healthz")
            assert answer.status_code == 503 and "PostgreSQL" in answer.json()["waiting_for"]
            await trio.to_thread.run_sync(asyncio.run, _writable(database_url))

            async def ready() -> bool:
                try:
                    return (await http.get(f"http://127.0.0.1:{hub_config.http_port}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False
            await wait_until(ready, timeout=30)
            nursery.cancel_scope.cancel()


async def _writable(database_url: str) -> None:
    name = database_url.rpartition("/")[2]
    conn = await asyncpg.connect(database_url, server_settings={"default_transaction_read_only": "off"})
    try:
        await conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    finally:
        await conn.close()


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)
