"""A store edge for the tests: in the test's own process (`running_edge`), or as a process of its own for the tests
that kill it with -9 (`store_box` writes its config and seeds its state folder with the catalog and the staff
list, as if synced from the hub; `start_edge` starts `novapos edge` and waits for it); and the events it has
committed and not sent yet (`waiting_events`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomli_w
import trio

from actors.storage import db as local_db
from edge.app import RunningEdge, run_edge
from novapos.config import StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.demo.run import write_store_config
from novapos.wire.envelope import Envelope, decode
from tests.catalog import seed_catalog
from tests.conftest import tls_table, wait_until
from tests.pos import seed_staff


@asynccontextmanager
async def running_edge(config: StoreConfig) -> AsyncIterator[RunningEdge]:
    """The edge of `config` in this process, stopped when the block ends."""
    async with trio.open_nursery() as nursery:
        yield await nursery.start(run_edge, config)
        nursery.cancel_scope.cancel()


def waiting_events(state_dir: Path) -> list[Envelope]:
    """The events the store in `state_dir` has committed and not sent yet, oldest first."""
    db = local_db.connect(state_dir / local_db.FILE_NAME)
    try:
        return [decode(payload) for (payload,) in db.execute("SELECT payload FROM outbox ORDER BY seq")]
    finally:
        db.close()


@dataclass(frozen=True)
class StoreBox:
    config: Path
    url: str
    """The edge's HTTP address."""


def printer_rule(port: int) -> dict[str, Any]:
    """The receipt printer on the simulated network printer's port."""
    return {"name": "receipt-printer", "driver": "escpos-network", "host": "127.0.0.1", "port": port}


def store_box(tmp_path: Path, rules: list[dict[str, Any]]) -> StoreBox:
    """The demo store's config in `tmp_path` with these device rules, on a free port, its state folder seeded."""
    port = free_port()
    config = tmp_path / "store.toml"
    write_store_config(config, tmp_path, port, {"scan_interval": 0.1, "rules": rules})
    seed_catalog(tmp_path / "store-001")
    seed_staff(tmp_path / "store-001")  # alice and the others, as if the hub's staff list had come
    return StoreBox(config, f"http://127.0.0.1:{port}")


async def start_edge(config: Path, nats_server: EmbeddedNats, url: str,
                     http: httpx.AsyncClient) -> subprocess.Popen[bytes]:
    """`novapos edge` on `config` with the store's NATS credentials and TLS (its [tls] set to the server's CA),
    once its /healthz answers."""
    data = tomllib.loads(config.read_text())
    data["tls"] = tls_table(nats_server.tls_settings())
    config.write_text(tomli_w.dumps(data))
    env = {**os.environ, "NOVAPOS_NATS_URL": nats_server.url,
           "NOVAPOS_NATS_CREDENTIALS": str(nats_server.store_credentials("demo", "store-001"))}
    edge = subprocess.Popen([sys.executable, "-m", "novapos.cli", "edge", "--config", str(config)], env=env)

    async def healthy() -> bool:
        assert edge.poll() is None, f"edge exited with {edge.returncode}"
        try:
            return (await http.get(f"{url}/healthz")).status_code == 200
        except httpx.TransportError:
            return False
    await wait_until(healthy, timeout=30)
    return edge
