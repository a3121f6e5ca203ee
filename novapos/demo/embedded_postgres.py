"""PostgreSQL from the pgserver wheel's binaries, run as our own child on a loopback TCP port.

We use the wheel's initdb and postgres directly (not pgserver's daemonising wrapper) so that the
demo and the tests own the server's lifetime: stop it, kill -9 it, restart it on the same data.
PostgreSQL refuses to run as root; as root we run it as the unprivileged user pgserver creates.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from novapos.demo.processes import EmbeddedServer, ManagedProcess, free_port

SERVICE_USER = "pgserver"


def postgres_bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the pgserver wheel is not installed: install it or set NOVAPOS_DATABASE_URL")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _service_user() -> str | None:
    """None when we are not root; otherwise an unprivileged user to own the data and run the server."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True, capture_output=True)
    return SERVICE_USER


def _make_reachable(path: Path, user: str) -> None:
    """Let `user` own `path` and traverse every folder above it."""
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)
    bin_dir = postgres_bin_dir().parent
    for folder in [bin_dir, *bin_dir.parents]:
        mode = folder.stat().st_mode
        if mode & 0o055 != 0o055:
            folder.chmod(mode | 0o055)


class EmbeddedPostgres(EmbeddedServer):
    """A postgres child with its data under `state_dir/pgdata`; trust auth on loopback only."""

    def __init__(self, state_dir: Path, *, port: int | None = None, host: str = "127.0.0.1",
                 settings: Mapping[str, str] | None = None) -> None:
        """settings: more server settings (name -> value), given on the command line (WAL archiving, recovery)."""
        self.host = host
        self.port = port or free_port(host)
        self.pgdata = state_dir / "pgdata"
        self.user = _service_user()
        self._server = ManagedProcess(
            "postgres",
            [str(postgres_bin_dir() / "postgres"), "-D", str(self.pgdata), "-h", host, "-p", str(self.port),
             # No Unix socket: clients use TCP, and a socket path is limited to 107 bytes, which a
             # deep state folder exceeds (the server would refuse to start).
             "-k", "", "-c", "fsync=on", "-c", "max_connections=200",
             *(arg for name, value in (settings or {}).items() for arg in ("-c", f"{name}={value}"))],
            state_dir / "postgres.log", stop_signal=signal.SIGINT, user=self.user,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            _make_reachable(self.pgdata, self.user)
        subprocess.run(
            [str(postgres_bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-sync"],
            check=True, capture_output=True, user=self.user,
        )

    def start(self, timeout: float = 30.0) -> Self:
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        stale_pid = self.pgdata / "postmaster.pid"
        if stale_pid.exists() and not self.running:
            stale_pid.unlink()  # left by a killed server of ours; postgres would refuse to start otherwise
        self._spawn_and_wait(timeout)
        self._wait_accepting(timeout)
        return self

    def _wait_accepting(self, timeout: float) -> None:
        """The port opens before PostgreSQL accepts connections (crash recovery runs in between)."""
        deadline = time.monotonic() + timeout
        while subprocess.run([str(postgres_bin_dir() / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
                             check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL on port {self.port} did not accept connections within {timeout:.0f} s")
            time.sleep(0.05)
