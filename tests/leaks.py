"""Leak checks that other tests' leftovers cannot upset: only what appeared since a snapshot counts.

A plain module (imported explicitly), not a pytest plugin. Trio's idle worker threads and objects
collected late belong to earlier tests; they may go away during a test, never appear in it.
"""

from __future__ import annotations

import os
import threading
import time


def open_ptys() -> set[tuple[int, str]]:
    """This process's open pseudo-terminal fds, as (fd, target) pairs."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed while listing (the listing's own fd among them)
            continue
        if target == "/dev/ptmx" or target.startswith("/dev/pts/"):
            found.add((int(fd), target))
    return found


def new_threads(before: set[threading.Thread], grace: float = 2.0) -> list[threading.Thread]:
    """Threads alive now that were not in `before`, after up to `grace` seconds for them to end."""
    deadline = time.monotonic() + grace
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.01)
