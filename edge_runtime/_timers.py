"""One shared timer thread for delayed messages (`Actor.send_after`, restart backoff).

A supervisor must not sleep on its own thread during backoff (its mailbox would stall), and
a `threading.Timer` per delay would cost a thread each time an actor polls on an interval.
One daemon thread with a heap serves every delay in the process, and is woken only when a new delay
ends before every other one (a thousand actors polling every second must not wake it a thousand times more).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

SLACK_S = 0.002
"""A delay ends up to this much late: the thread sleeps a little past the earliest deadline and then fires every
delay that has ended, so that many actors' timers (a thousand simulated stores' health checks) share wake-ups."""

_condition = threading.Condition()
_heap: list[tuple[float, int, Callable[[], None]]] = []
_order = itertools.count()  # ties on the deadline fire in scheduling order
_thread: threading.Thread | None = None


def call_later(delay: float, callback: Callable[[], None]) -> None:
    """Call `callback()` on the timer thread after `delay` seconds. It must be quick and not block."""
    global _thread
    with _condition:
        entry = (time.monotonic() + delay, next(_order), callback)
        heapq.heappush(_heap, entry)
        if _thread is None:
            _thread = threading.Thread(target=_run, name="edge_runtime-timers", daemon=True)
            _thread.start()
        if _heap[0] is entry:  # only a new earliest deadline changes the thread's wait: no wake-up per delay
            _condition.notify()


def _run() -> None:
    while True:
        with _condition:
            while not _heap or _heap[0][0] > time.monotonic():
                _condition.wait(_heap[0][0] - time.monotonic() + SLACK_S if _heap else None)
            now, due = time.monotonic(), []
            while _heap and _heap[0][0] <= now:
                due.append(heapq.heappop(_heap)[2])
        for callback in due:
            try:
                callback()
            except Exception:
                logger.exception("timer callback failed callback=%r next=ignored", callback)
