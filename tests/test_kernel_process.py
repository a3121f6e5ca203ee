"""process.run in a real subprocess: signals stop the tree cleanly (exit 0), escalation exits 1.

This file doubles as the program under test: `python test_kernel_process.py MODE JOURNAL`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from edge_runtime import Actor, ChildSpec, Notifier, SupervisorSpec, run, supervision_tree


class Scribe(Actor):
    """Writes its start and stop to a file, so the parent process can check the order."""

    def __init__(self, journal: str, name: str, explode_after: float | None = None) -> None:
        super().__init__()
        self.journal, self.name, self.explode_after = journal, name, explode_after

    def _write(self, line: str) -> None:
        with open(self.journal, "a") as f:
            f.write(line + "\n")

    def started(self) -> None:
        self._write(f"start {self.name}")
        if self.explode_after is not None:
            self.send_after(self.explode_after, "explode")

    def stopping(self) -> None:
        self._write(f"stop {self.name}")

    def explode(self) -> None:
        raise RuntimeError(f"{self.name} exploded")


def program(mode: str, journal: str) -> int:
    bomb = 0.5 if mode == "fail" else None
    spec = SupervisorSpec("root", [
        ChildSpec("a", Scribe, (journal, "a")),
        ChildSpec("b", Scribe, (journal, "b")),
        ChildSpec("c", Scribe, (journal, "c"), kwargs={"explode_after": bomb}),
    ], intensity=0)

    async def main() -> None:
        notifier = Notifier()
        try:
            async with supervision_tree(spec):
                notifier.ready()
                await trio.sleep_forever()
        finally:
            notifier.stopping()

    return run(main)


def spawn(mode: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], socket.socket, Path]:
    journal = tmp_path / "journal.txt"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(10)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    proc = subprocess.Popen([sys.executable, __file__, mode, str(journal)], env=env, stderr=subprocess.PIPE)
    return proc, sock, journal


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_tree_in_reverse_and_exits_0(tmp_path: Path, signum: signal.Signals) -> None:
    proc, sock, journal = spawn("serve", tmp_path)
    with sock:
        try:
            assert sock.recv(64) == b"READY=1"
            proc.send_signal(signum)
            assert proc.wait(10) == 0, proc.stderr.read().decode() if proc.stderr else ""
            assert sock.recv(64) == b"STOPPING=1"
        finally:
            proc.kill()
            proc.wait()
    assert journal.read_text().split("\n")[:-1] == [
        "start a", "start b", "start c", "stop c", "stop b", "stop a",
    ]


def test_root_escalation_exits_1(tmp_path: Path) -> None:
    proc, sock, journal = spawn("fail", tmp_path)
    with sock:
        try:
            assert sock.recv(64) == b"READY=1"
            assert proc.wait(10) == 1
        finally:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None and "status=1" in proc.stderr.read().decode()
    assert journal.read_text().split("\n")[:-1] == [
        "start a", "start b", "start c", "stop c", "stop b", "stop a",
    ]


if __name__ == "__main__":
    sys.exit(program(sys.argv[1], sys.argv[2]))
