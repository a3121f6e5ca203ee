"""A child server process we start, wait for, and stop: the shape shared by embedded NATS and PostgreSQL."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server process exited with code {process.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout:.0f} s")


class ManagedProcess:
    """One server binary run as our child: its log goes to a file, stop() is graceful then forceful."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, *, stop_signal: int = signal.SIGTERM,
                 user: str | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.user = user
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                user=self.user, start_new_session=True,
            )
        log.info("started %s (pid %d), log at %s", self.name, self.process.pid, self.log_path)
        return self.process

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down; kill it if it has not within `timeout` seconds."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killing it", self.name, timeout)
            self.process.kill()
            self.process.wait()
        log.info("stopped %s", self.name)

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would: for fault tests."""
        if self.running:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


class EmbeddedServer:
    """A server we embed for the demo and the tests: one ManagedProcess on a loopback port.

    Subclasses build the process and say how to prepare its data in start(); stopping, killing and
    the context manager are the same for every server.
    """

    host: str
    port: int
    _server: ManagedProcess

    @property
    def running(self) -> bool:
        return self._server.running

    def _spawn_and_wait(self, timeout: float) -> None:
        process = self._server.spawn()
        wait_for_port(self.host, self.port, timeout, process)

    def stop(self) -> None:
        self._server.stop()

    def kill(self) -> None:
        self._server.kill()

    def start(self, timeout: float = 30.0) -> Self:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
