"""A NATS cluster of embedded servers (three by default) on loopback: `novapos demo --cluster` and the tests.

Each member is an EmbeddedNats (novapos.demo.embedded_nats) with its own client port, route port, server name
and JetStream store folder; the routes between them use TLS from the same local CA as the clients do. The
members share one authorization file, so a store's credentials work on any of them. `url` lists every member,
comma-separated, as a [nats] url does in production: a client connects to one and moves to another when it
loses it. Streams created with `num_replicas=3` keep a copy on each member and survive the loss of any one.

The shape is EmbeddedNats's (url, start, stop, kill, hub_link, store_credentials, tls_settings, client_tls,
hub_options, client_options), so code that takes one server takes a cluster; kill(i) and restart(i) act on
one member, for fault tests.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StorageType, StreamConfig

from novapos.adapters.nats import NatsLink
from novapos.demo.embedded_nats import ClusterPlace, EmbeddedNats, write_test_authorization
from novapos.demo.processes import free_port
from novapos.tls import TlsSettings

log = logging.getLogger(__name__)

PROBE_STREAM = "NOVAPOS_CLUSTER_PROBE"
"""A memory stream wait_ready() creates at full replication and deletes: JetStream is then usable."""


class EmbeddedNatsCluster:
    """`size` nats-server children forming the cluster `name`, members under `state_dir`/n1, n2, ...

    `authorization`, `hub_credentials`, `tls`, `verify_clients` and `ca_dir` are EmbeddedNats's, shared by
    every member (one CA: default `state_dir`/tls)."""

    def __init__(self, state_dir: Path, size: int = 3, *, authorization: Path | None = None,
                 hub_credentials: Path | None = None, tls: bool = True, verify_clients: bool = False,
                 ca_dir: Path | None = None, name: str = "novapos") -> None:
        if size < 1:
            raise ValueError(f"a cluster needs at least one server, got {size}")
        self.state_dir = state_dir
        self.name = name
        self.hub_credentials = hub_credentials
        self.tls = tls
        route_ports = [free_port() for _ in range(size)]
        routes = tuple(f"nats-route://127.0.0.1:{port}" for port in route_ports)
        self.nodes: list[EmbeddedNats] = [
            EmbeddedNats(state_dir / f"n{i + 1}", authorization=authorization, hub_credentials=hub_credentials,
                         tls=tls, verify_clients=verify_clients, ca_dir=ca_dir or state_dir / "tls",
                         cluster=ClusterPlace(name, f"{name}-n{i + 1}", route_ports[i], routes))
            for i in range(size)]

    @classmethod
    def authorized(cls, state_dir: Path, stores: Sequence[tuple[str, str]] = (("demo", "store-001"),),
                   size: int = 3, *, tls: bool = True, verify_clients: bool = False) -> EmbeddedNatsCluster:
        """A cluster whose members share an authorization with a fresh hub user and one user per (tenant,
        store), their seeds under `state_dir`/credentials (store_credentials() finds them), as
        EmbeddedNats.authorized makes for one server."""
        rules, hub_seed = write_test_authorization(state_dir, stores)
        return cls(state_dir / "cluster", size, authorization=rules, hub_credentials=hub_seed, tls=tls,
                   verify_clients=verify_clients, ca_dir=state_dir / "tls")

    def store_credentials(self, tenant: str, store: str) -> Path:
        """The seed file of a store user made by authorized()."""
        return self.state_dir.parent / "credentials" / f"{tenant}.{store}.seed"

    @property
    def url(self) -> str:
        """Every member's client URL, comma-separated: a [nats] url."""
        return ",".join(node.url for node in self.nodes)

    @property
    def running(self) -> bool:
        """Whether any member runs."""
        return any(node.running for node in self.nodes)

    def server_name(self, index: int) -> str:
        """The server name of member `index` (what stream info names a stream's leader and replicas by)."""
        place = self.nodes[index].cluster
        assert place is not None
        return place.server_name

    def index_of(self, server_name: str) -> int:
        """The member with this server name (a stream's leader, say)."""
        for index in range(len(self.nodes)):
            if self.server_name(index) == server_name:
                return index
        raise KeyError(f"no member of cluster {self.name} is named {server_name!r}")

    def start(self, timeout: float = 30.0) -> Self:
        """Start every member, then wait until the cluster has a JetStream meta leader and takes a stream
        replicated on every member."""
        started = time.monotonic()
        for node in self.nodes:
            node.start(timeout)
        self.wait_ready(max(1.0, timeout - (time.monotonic() - started)))
        log.info("NATS cluster %s ready: %d servers at %s, JetStream usable after %.1f s", self.name,
                 len(self.nodes), self.url, time.monotonic() - started)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until JetStream answers with every running member in place (a memory stream replicated on each
        is created and deleted), or raise TimeoutError saying what it last heard."""
        asyncio.run(self._probe(timeout))

    async def _probe(self, timeout: float) -> None:
        replicas = sum(node.running for node in self.nodes)
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        client = await nats.connect([node.url for node in self.nodes if node.running], **self.hub_options(),
                                    connect_timeout=2, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        try:
            js = client.jetstream(timeout=2)
            while time.monotonic() < deadline:
                try:
                    await js.add_stream(StreamConfig(name=PROBE_STREAM, subjects=[], storage=StorageType.MEMORY,
                                                     num_replicas=replicas))
                    await js.delete_stream(PROBE_STREAM)
                    return
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                    last = str(exc) or type(exc).__name__
                await asyncio.sleep(0.2)
        finally:
            await client.close()
        raise TimeoutError(f"NATS cluster {self.name}: JetStream not usable at {replicas} replicas within "
                           f"{timeout:.0f} s ({last}); see the servers' logs under {self.state_dir}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, index: int) -> None:
        """SIGKILL member `index`, as a crash or a power cut would."""
        self.nodes[index].kill()
        log.info("killed NATS cluster member %s", self.server_name(index))

    def restart(self, index: int, timeout: float = 20.0) -> None:
        """Start member `index` again on its port and data; it catches up with the others on its own."""
        self.nodes[index].start(timeout)

    def tls_settings(self) -> TlsSettings:
        return self.nodes[0].tls_settings()

    def client_tls(self) -> ssl.SSLContext | None:
        return self.nodes[0].client_tls()

    def hub_link(self, name: str = "test-hub") -> NatsLink:
        """A link with the hub's credentials to every member (not connected yet)."""
        return NatsLink(self.url, name, credentials=self.hub_credentials, tls=self.client_tls(), require_tls=self.tls)

    def client_options(self) -> dict[str, Any]:
        return self.nodes[0].client_options()

    def hub_options(self) -> dict[str, Any]:
        return self.nodes[0].hub_options()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
