"""The live event hub: every subscriber gets every event; one that falls behind is cut off, never an actor."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from edge.events import QUEUE_SIZE, EventHub


async def test_events_from_any_thread_reach_every_subscriber_in_order() -> None:
    hub = EventHub()
    with hub.subscribe() as first, hub.subscribe() as second:
        thread = threading.Thread(target=lambda: [hub.publish({"n": n}) for n in range(50)])
        thread.start()
        thread.join()
        for channel in (first, second):
            assert [(await channel.receive())["n"] for _ in range(50)] == list(range(50))


async def test_a_subscriber_that_falls_behind_is_disconnected_and_the_others_are_not() -> None:
    hub = EventHub()
    with hub.subscribe() as slow, hub.subscribe() as fast:
        for n in range(QUEUE_SIZE + 1):
            hub.publish({"n": n})
            if n % 16 == 0:
                await trio.sleep(0)
                while True:
                    try:
                        fast.receive_nowait()
                    except trio.WouldBlock:
                        break
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(QUEUE_SIZE):
            await slow.receive()
        with pytest.raises(trio.EndOfChannel):
            await slow.receive()
        hub.publish({"n": "still flowing"})
        await trio.testing.wait_all_tasks_blocked()
        received = []
        while True:
            try:
                received.append(fast.receive_nowait()["n"])
            except trio.WouldBlock:
                break
        assert received[-1] == "still flowing"
