"""A pykka future that says when it is done, so that trio can await an actor's reply.

pykka's `ThreadingFuture` can only be waited on by blocking a thread in `get()`. Blocking
the trio thread would freeze every task; parking a worker thread per ask would be wasteful.
A done-callback lets the actor thread wake trio itself (see `bridge.wait_future`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from pykka import ThreadingFuture
from pykka._types import OptExcInfo

T = TypeVar("T")


class CallbackFuture(ThreadingFuture[T]):
    """`ThreadingFuture` plus `add_done_callback`: callbacks run on the thread that completes it."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._done = False
        self._callbacks: list[Callable[[], None]] = []

    def set(self, value: T | None = None) -> None:
        super().set(value)
        self._fire()

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        super().set_exception(exc_info if exc_info is not None else sys.exc_info())
        self._fire()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once a value or exception is set; at once if it already is."""
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback()

    def _fire(self) -> None:
        with self._lock:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
