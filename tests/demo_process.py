"""`novapos demo` started as a person starts it (a child process on free ports, none of the test run's NOVAPOS_
settings), and its banner read up to the line that says how to stop it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from novapos.demo.processes import free_port


@dataclass
class DemoProcess:
    process: subprocess.Popen[str]
    till_port: int
    console_port: int

    def banner(self, timeout: float = 90.0) -> str:
        """What the demo printed up to "Press Ctrl-C"; fails if it exits or takes over `timeout` seconds."""
        banner, started = "", time.monotonic()
        while "Press Ctrl-C" not in banner:
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the demo exited early:\n{banner}"
            banner += line
            assert time.monotonic() - started < timeout, f"the demo did not start in {timeout} s:\n{banner}"
        return banner


def start_demo(state: Path, *options: str, env: dict[str, str] | None = None) -> DemoProcess:
    """The demo with its state in `state`, `options` added to its command line, `env` added to its environment."""
    till_port, console_port = free_port(), free_port()
    clean = {key: value for key, value in os.environ.items() if not key.startswith("NOVAPOS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "novapos.cli", "demo", *options, "--state-dir", str(state),
         "--till-port", str(till_port), "--console-port", str(console_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean | (env or {}))
    return DemoProcess(process, till_port, console_port)
