"""Live events for the web till: actor threads publish, each open browser stream receives.

Actors know nothing of trio; they are handed `EventHub.publish`, which is safe from any thread and
never blocks: an event is handed to the trio loop, which copies it to every subscriber's bounded
queue. A subscriber too slow to keep up is disconnected rather than shown a stale picture: its
stream ends, the browser reconnects on its own and starts again from a fresh snapshot. Nothing a
subscriber does ever slows an actor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


class EventHub:
    def __init__(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._subscribers: set[trio.MemorySendChannel[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        try:
            self._token.run_sync_soon(self._fan_out, event)
        except trio.RunFinishedError:
            pass  # the process is stopping: nobody is listening any more

    def _fan_out(self, event: dict[str, Any]) -> None:
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                log.info("a live stream fell %d events behind; disconnecting it so it resyncs", QUEUE_SIZE)
                self._subscribers.discard(channel)
                channel.close()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(channel)

    @contextmanager
    def subscribe(self) -> Iterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        send, receive = trio.open_memory_channel[dict[str, Any]](QUEUE_SIZE)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
