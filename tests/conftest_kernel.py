"""Helpers shared by the kernel tests: a thread-safe journal and a scriptable test actor.

A plain module (imported explicitly), not a pytest plugin.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import trio

from edge_runtime import Actor, ChildSpec, Restart


class Boom(Exception):
    """The failure the tests inject."""


class Journal:
    """What happened, in order, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[Any, ...]] = []

    def add(self, *event: Any) -> None:
        with self._lock:
            self._events.append((time.monotonic(), *event))

    def events(self, kind: str | None = None) -> list[tuple[Any, ...]]:
        """Events without their timestamps, optionally only those of one kind."""
        with self._lock:
            return [e[1:] for e in self._events if kind is None or e[1] == kind]

    def times(self, kind: str, name: str) -> list[float]:
        with self._lock:
            return [e[0] for e in self._events if e[1] == kind and e[2] == name]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                await trio.sleep(0.002)


class Countdown:
    """Fails the first `n` times it is hit, across actor instances."""

    def __init__(self, n: int) -> None:
        self._lock = threading.Lock()
        self.left = n

    def hit(self) -> None:
        with self._lock:
            if self.left == 0:
                return
            if self.left > 0:
                self.left -= 1
        raise Boom("start failure")


class Worker(Actor):
    """A test actor that records its life in a journal and fails on request."""

    def __init__(
        self,
        journal: Journal,
        name: str,
        fail_start: Countdown | None = None,
        start_delay: float = 0.0,
        hang_on_stop: threading.Event | None = None,
        needs: str | None = None,
        stop_delay: float = 0.0,
        fail_stop: bool = False,
    ) -> None:
        super().__init__()
        self.journal = journal
        self.name = name
        self.fail_start = fail_start
        self.start_delay = start_delay
        self.hang_on_stop = hang_on_stop
        self.needs = needs
        self.stop_delay = stop_delay
        self.fail_stop = fail_stop

    def started(self) -> None:
        self.journal.add("attempt", self.name)
        time.sleep(self.start_delay)
        if self.fail_start is not None:
            self.fail_start.hit()
        if self.needs is not None:  # a dependency started earlier must already answer by name
            self.journal.add("saw", self.name, self.registry.ask(self.needs, "ping"))
        self.journal.add("start", self.name, self.actor_urn)

    def stopping(self) -> None:
        self.journal.add("stop", self.name, self.actor_urn)
        if self.hang_on_stop is not None:
            self.hang_on_stop.wait()
        if self.stop_delay:
            time.sleep(self.stop_delay)
            self.journal.add("stopped", self.name, self.actor_urn)
        if self.fail_stop:
            raise Boom(f"{self.name} failed in stopping()")

    def ping(self) -> str:
        return self.actor_urn

    def crash(self, delay: float = 0.0) -> None:
        time.sleep(delay)
        self.journal.add("crash", self.name)
        raise Boom(f"{self.name} told to crash")

    def quit(self) -> None:
        self.stop()

    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def ask_peer(self, peer: str) -> str:
        return self.registry.ask(peer, "ping")

    def tick_after(self, delay: float) -> None:
        self.send_after(delay, "tick", time.monotonic())

    def tick(self, sent: float) -> None:
        self.journal.add("tick", self.name, time.monotonic() - sent)


def worker(
    journal: Journal,
    name: str,
    restart: Restart = Restart.PERMANENT,
    shutdown_timeout: float = 2.0,
    start_timeout: float = 5.0,
    **kwargs: Any,
) -> ChildSpec:
    """The spec of a `Worker` named `name`; extra keywords go to its constructor."""
    return ChildSpec(name, Worker, args=(journal, name), kwargs=kwargs, restart=restart,
                     shutdown_timeout=shutdown_timeout, start_timeout=start_timeout)
