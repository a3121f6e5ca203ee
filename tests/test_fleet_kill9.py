"""A store box that dies (its edge process killed with SIGKILL, nothing said on the way out) is marked offline
by the hub within offline_after_s and a margin, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import trio

from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.demo.run import write_store_config
from tests.catalog import seed_catalog
from tests.conftest import query, tls_table, wait_until
from tests.fleet import fleet_world


async def test_a_killed_edge_is_marked_offline_once(
        tmp_path: Path, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    await fleet_world(database_url)
    port = free_port()
    config = tmp_path / "store.toml"
    write_store_config(config, tmp_path, port, {"scan_interval": 0.1, "rules": [
        {"name": "receipt-printer", "driver": "escpos-network", "host": "127.0.0.1", "port": printer.port}]},
        tls=tls_table(nats_server.tls_settings()))
    config.write_text(config.read_text() + "\n[health]\nreport_interval_s = 1\n")
    seed_catalog(tmp_path / "store-001")
    env = {**os.environ, "NOVAPOS_NATS_URL": nats_server.url,
           "NOVAPOS_NATS_CREDENTIALS": str(nats_server.store_credentials("demo", "store-001"))}

    async def online() -> bool:
        rows = await query(database_url, "SELECT online FROM fleet_status WHERE store = 'store-001'")
        return bool(rows) and rows[0]["online"]

    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, replace(hub_config, fleet_offline_after_s=3))
        edge = subprocess.Popen([sys.executable, "-m", "novapos.cli", "edge", "--config", str(config)], env=env)
        try:
            await wait_until(online, timeout=30)
        finally:
            edge.send_signal(signal.SIGKILL)
            edge.wait()
        killed = time.monotonic()
        await wait_until(lambda: _not(online), timeout=15)
        assert time.monotonic() - killed < 3 + 1 + 3  # offline_after_s, the last report's age, a margin
        await trio.sleep(1.5)  # later sweeps find nothing more to record
        nursery.cancel_scope.cancel()
    rows = await query(database_url, "SELECT kind FROM fleet_history WHERE store = 'store-001' ORDER BY id")
    assert [row["kind"] for row in rows].count("offline") == 1


async def _not(check) -> bool:  # type: ignore[no-untyped-def]
    return not await check()
