"""The shared timer thread: a delay never ends early, delays ending together fire in the order they were made,
and a delayed message whose `still` turned False is dropped unsent (a superseded wake-up)."""

from __future__ import annotations

import threading
import time
from typing import Any

from edge_runtime import Actor
from edge_runtime import _timers as timers


def test_delays_never_end_early_and_keep_their_order() -> None:
    delays = [0.03, 0.01, 0.03, 0.02, 0.01]
    fired: list[tuple[int, float]] = []
    done = threading.Event()
    start = time.monotonic()

    def fire(index: int) -> None:
        fired.append((index, time.monotonic() - start))
        if len(fired) == len(delays):
            done.set()
    for index, delay in enumerate(delays):
        timers.call_later(delay, lambda index=index: fire(index))  # type: ignore[misc]
    assert done.wait(2.0)
    assert [index for index, _ in fired] == [1, 4, 3, 0, 2]
    assert all(at >= delays[index] for index, at in fired)


class Recorder(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[int] = []

    def later(self, number: int, keep: list[bool]) -> None:
        self.send_after(0.05, "hit", number, still=lambda: keep[0])

    def hit(self, number: int) -> None:
        self.got.append(number)

    def seen(self) -> list[int]:
        return list(self.got)


def test_a_delayed_message_whose_still_turned_false_is_dropped() -> None:
    ref: Any = Recorder.start()
    try:
        superseded, live = [True], [True]
        ref.proxy().later(1, superseded).get(timeout=2)
        ref.proxy().later(2, live).get(timeout=2)
        superseded[0] = False
        time.sleep(0.3)
        assert ref.proxy().seen().get(timeout=2) == [2]
    finally:
        ref.stop()
