"""Everything a fleet needs on this machine when no hub is given: embedded PostgreSQL (migrated, the fleet
seeded), embedded NATS with one user per simulated store (EmbeddedNats.authorized, or a three-node
EmbeddedNatsCluster with the hub's streams on three replicas) and TLS, and a real `novapos hub` child process;
stopped in reverse order."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from hub.db import close_pool, create_pool, migrate
from novapos.demo.embedded_cluster import EmbeddedNatsCluster
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.demo.processes import free_port
from novapos.sim.seed import seed_fleet
from novapos.sim.spec import FleetSpec

log = logging.getLogger(__name__)

HUB_READY_TIMEOUT_S = 60.0
CLUSTER_SIZE = 3


@dataclass(frozen=True)
class Embedded:
    nats: EmbeddedNats | EmbeddedNatsCluster
    database_url: str


def prepare_database(database_url: str, spec: FleetSpec) -> None:
    """Migrate the hub's schema and seed the fleet's records (before the hub starts)."""
    async def run() -> None:
        pool = await create_pool(database_url, max_size=2)
        try:
            await migrate(pool)
            await seed_fleet(pool, spec)
        finally:
            await close_pool(pool)
    asyncio.run(run())


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200 and json.loads(response.read()).get("status") != "down")
    except OSError:
        return False


@contextmanager
def hub_process(folder: Path, spec: FleetSpec, nats: EmbeddedNats | EmbeddedNatsCluster,
                database_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """`novapos hub` for the fleet's tenant, its log in `folder`/hub.log, once its /healthz answers; on a cluster,
    its streams on one replica per node."""
    port = free_port()
    config = folder / "hub.toml"
    ca_file = nats.tls_settings().ca_file
    config.write_text(f"tenants = {json.dumps([spec.tenant])}\n[http]\nport = {port}\n"
                      f"[nats]\nurl = {json.dumps(nats.url)}\ncredentials = {json.dumps(str(nats.hub_credentials))}\n"
                      f"[database]\nurl = {json.dumps(database_url)}\n"
                      + (f"[stream]\nreplicas = {len(nats.nodes)}\n" if isinstance(nats, EmbeddedNatsCluster) else "")
                      + (f"[tls]\nca_file = {json.dumps(str(ca_file))}\n" if ca_file else ""))
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOVAPOS_")}
    with (folder / "hub.log").open("ab") as hub_log:
        process = subprocess.Popen([sys.executable, "-m", "novapos.cli", "hub", "--config", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=hub_log, env=env)
    try:
        deadline = time.monotonic() + HUB_READY_TIMEOUT_S
        while not _healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not come up (exit code {process.poll()}); see {folder / 'hub.log'}")
            time.sleep(0.2)
        log.info("hub up (pid %d, console on port %d, log %s)", process.pid, port, folder / "hub.log")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def embedded_world(state_dir: Path, spec: FleetSpec, database_url: str | None = None, *,
                   cluster: bool = False) -> Iterator[Embedded]:
    """PostgreSQL (unless `database_url` is given), NATS (a three-node cluster with `cluster`) and a hub for
    `spec`, under `state_dir`."""
    with ExitStack() as stack:
        if database_url is None:
            database_url = stack.enter_context(EmbeddedPostgres(state_dir / "postgres")).url()
        prepare_database(database_url, spec)
        nats: EmbeddedNats | EmbeddedNatsCluster
        if cluster:
            nats = EmbeddedNatsCluster.authorized(state_dir / "nats", stores=spec.store_ids(), size=CLUSTER_SIZE)
            nats.start()
            stack.callback(nats.stop)
        else:
            nats = stack.enter_context(EmbeddedNats.authorized(state_dir / "nats", stores=spec.store_ids()))
        stack.enter_context(hub_process(state_dir, spec, nats, database_url))
        yield Embedded(nats, database_url)
